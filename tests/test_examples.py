"""Each example end to end: majordomo's outputs and database equal plain doit's."""

import pathlib
import shutil

import pytest
from support import read_doit_db, run_tool, tree

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def executed(proc):
    return [line[3:] for line in proc.stdout.splitlines() if line.startswith(".  ")]


@pytest.mark.parametrize("name, tasks", [("cprogram", 36), ("sweep", 301), ("pipeline", 17)])
def test_example_matches_doit_and_second_run_does_nothing(tmp_path, name, tasks):
    plain, farm = tmp_path / "plain", tmp_path / "farm"
    for copy in (plain, farm):
        shutil.copytree(EXAMPLES / name, copy, ignore=shutil.ignore_patterns(
            ".doit.db*", "build", "results", "data", "work", "__pycache__"))
    expected = run_tool("doit", plain, "run", "-n", "2")
    assert expected.returncode == 0, expected.stdout + expected.stderr
    got = run_tool("majordomo", farm, "run")
    assert got.returncode == 0, got.stdout + got.stderr
    assert len(executed(got)) == len(executed(expected)) == tasks
    assert tree(farm) == tree(plain)
    assert read_doit_db(farm) == read_doit_db(plain)
    again = run_tool("majordomo", farm, "run")
    assert again.returncode == 0 and executed(again) == []
    if name == "cprogram":
        assert (farm / "build" / "report.txt").read_text().rstrip().endswith("ALL OK")
