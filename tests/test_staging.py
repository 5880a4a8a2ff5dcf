"""majordomo with workers that share nothing with the user's machine but the port.

The TaskManager, two workers and the user's laptop are hosts of their own
(network namespaces, tests/hosts.py); each worker's host also has a filesystem
of its own where the project, the laptop's files and the other worker's cache
are empty folders (a private mount namespace, tmpfs over each). The project's
files travel as blobs through the TaskManager's store.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import hosts
import pytest
import yaml
from support import Farm, SecureFarm, wait_until

from computefarm.storage.cas import digest_bytes, digest_file

PEERS = (("w1", "worker"), ("w2", "worker"), ("c1", "client"))

SOURCES = {
    "src/util.h": '#include "version.h"\nconst char *greeting(void);\nint count(int);\n',
    "src/util.c": '#include "util.h"\nconst char *greeting(void) { return "hello " VERSION; }\n',
    "src/count.c": '#include "util.h"\nint count(int n) { return n * 2; }\n',
    "src/main.c": '#include <stdio.h>\n#include "util.h"\n'
                  'int main(void) { printf("%s %d\\n", greeting(), count(21)); return 0; }\n',
    "tools/version.sh": '#!/bin/sh\necho "#define VERSION \\"$1\\""\n',
}
UNITS = ("util", "count", "main")

DODO = '''
UNITS = %r

def task_version():
    return {"actions": ["./tools/version.sh v1.2 > build/version.h"],
            "file_dep": ["tools/version.sh"], "targets": ["build/version.h"]}

def task_compile():
    for unit in UNITS:
        yield {"name": unit,
               "actions": ["gcc -c -Iinc -Ibuild src/%%s.c -o build/%%s.o" %% (unit, unit)],
               "file_dep": ["src/%%s.c" %% unit, "src/util.h", "build/version.h"],
               "targets": ["build/%%s.o" %% unit]}

def task_link():
    return {"actions": ["gcc build/*.o -o build/app"],
            "file_dep": ["build/%%s.o" %% unit for unit in UNITS],
            "targets": ["build/app"]}
''' % (UNITS,)


@pytest.fixture
def lan():
    with hosts.lan("tm", "w1", "w2", "laptop") as network:
        yield network


@pytest.fixture
def staged_farm(lan, tmp_path):
    """A keyed farm on the LAN: the TaskManager's store, two workers each with a
    cache and a filesystem of its own, and the project on the laptop."""
    farm = SecureFarm(tmp_path / "farm", peers=PEERS, store=str(tmp_path / "tm-store"))
    project = tmp_path / "laptop" / "project"
    (project / "build").mkdir(parents=True)
    for path, text in SOURCES.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)
    os.chmod(project / "tools" / "version.sh", 0o755)
    os.symlink("src", project / "inc")
    (project / "dodo.py").write_text(DODO)
    farm.project = project
    try:
        farm.start_taskmanager(bind="tcp://%s:0" % lan.hosts["tm"].address,
                               host=lan.hosts["tm"])
        for name in ("w1", "w2"):
            (tmp_path / name).mkdir()
        for name in ("w1", "w2"):
            host = lan.hosts[name]
            other = "w2" if name == "w1" else "w1"
            host.hide(tmp_path / "laptop", tmp_path / "tm-store", tmp_path / other)
            config = tmp_path / ("%s.yaml" % name)
            document = yaml.safe_load(farm.peer_config(name).read_text())
            document["machines"] = {name: {"cache": str(tmp_path / name / "cache")}}
            config.write_text(yaml.safe_dump(document))
            farm.start_worker("shell", slots=2, machine=name, config=config, host=host)
        yield farm
    finally:
        farm.close()


def majordomo(farm, lan, *args):
    argv = [sys.executable, "-m", "computefarm.majordomo", "run", "--taskmanager",
            farm.address, "--farm-config", str(farm.peer_config("c1"))] + list(args)
    return lan.hosts["laptop"].run(argv, cwd=str(farm.project), capture_output=True,
                                   text=True, timeout=180)


def store_figures(farm, lan):
    argv = [sys.executable, "-m", "computefarm.commands", "status", "--json",
            "--taskmanager", farm.address, "--config", str(farm.peer_config("c1"))]
    done = lan.hosts["laptop"].run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["store"]


def test_a_c_project_builds_on_workers_that_see_none_of_its_files(staged_farm, lan):
    farm, project = staged_farm, staged_farm.project
    for name in ("w1", "w2"):             # the workers' hosts really lack the project
        seen = lan.hosts[name].run(["ls", "-A", str(project.parent)], capture_output=True,
                                   text=True)
        assert seen.returncode == 0 and seen.stdout == "", seen
    done = majordomo(farm, lan)
    assert done.returncode == 0, done.stdout + done.stderr
    app = project / "build" / "app"
    assert os.access(app, os.X_OK)
    assert subprocess.run([str(app)], capture_output=True, text=True).stdout == \
        "hello v1.2 42\n"
    assert (project / "build" / "version.h").read_text() == '#define VERSION "v1.2"\n'
    assert os.stat(project / "build" / "util.o").st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (project / "build").iterdir()) == \
        ["app", "count.o", "main.o", "util.o", "version.h"]          # no temporary left
    before = store_figures(farm, lan)
    assert before["served"] > 0 and before["corrupt"] == 0

    again = majordomo(farm, lan)          # doit's own up-to-date checks: nothing runs
    assert again.returncode == 0, again.stderr
    assert sum(line.startswith(".  ") for line in again.stdout.splitlines()) == 0

    count = project / "src" / "count.c"
    count.write_text('#include "util.h"\nint count(int n) { return n * 3; }\n')
    rebuilt = majordomo(farm, lan)
    assert rebuilt.returncode == 0, rebuilt.stderr
    ran = sorted(line[3:].strip() for line in rebuilt.stdout.splitlines()
                 if line.startswith(".  "))
    assert ran == ["compile:count", "link"]
    assert subprocess.run([str(app)], capture_output=True, text=True).stdout == \
        "hello v1.2 63\n"
    after = store_figures(farm, lan)
    # into the store: the changed file, the new manifest of the tree, and the two
    # outputs that depend on it; nothing else of the project went again
    changed = os.path.getsize(count) + os.path.getsize(project / "build" / "count.o") + \
        os.path.getsize(app)
    manifest = after["received"] - before["received"] - changed
    assert 0 < manifest < 2000, (before, after, changed)


@pytest.fixture
def loopback_farm(tmp_path):
    """A farm on loopback whose worker runs where the project is an empty folder."""
    (tmp_path / "farm").mkdir()
    farm = Farm(tmp_path / "farm", store=str(tmp_path / "tm-store"))
    farm.project = tmp_path / "laptop" / "project"
    (farm.project / "build").mkdir(parents=True)
    farm.start_taskmanager()
    try:
        yield farm
    finally:
        farm.close()


def hidden_worker(farm, tmp_path, name):
    config = tmp_path / ("%s.yaml" % name)
    config.write_text(yaml.safe_dump({"machines": {name: {"cache": str(tmp_path / name)}}}))
    return farm.start_worker("shell", machine=name, config=config,
                             host=hosts.Elsewhere(farm.project.parent))


def run_here(farm, *args):
    return subprocess.run([sys.executable, "-m", "computefarm.majordomo", "run",
                           "--taskmanager", farm.address] + list(args),
                          cwd=str(farm.project), capture_output=True, text=True, timeout=120)


def test_a_task_that_writes_into_its_input_never_spoils_the_cache(loopback_farm, tmp_path):
    """Inputs are hard links into the worker's cache: one written into is noticed
    and its blob leaves the cache, so the next run gets the file as it is."""
    farm = loopback_farm
    hidden_worker(farm, tmp_path, "w1")
    (farm.project / "data.txt").write_text("original\n")
    (farm.project / "dodo.py").write_text(
        'def task_append():\n'
        '    return {"actions": ["echo extra >> data.txt; cat data.txt > build/out.txt"],\n'
        '            "file_dep": ["data.txt"], "targets": ["build/out.txt"]}\n')
    for _ in range(2):
        done = run_here(farm, "-a")           # -a: run again, whatever doit thinks
        assert done.returncode == 0, done.stdout + done.stderr
        assert (farm.project / "build" / "out.txt").read_text() == "original\nextra\n"
    assert (farm.project / "data.txt").read_text() == "original\n"


def test_a_blob_gone_from_the_store_is_sent_again_and_the_task_runs(loopback_farm, tmp_path):
    farm = loopback_farm
    first = hidden_worker(farm, tmp_path, "w1")
    (farm.project / "words.txt").write_text("alpha beta gamma\n")
    (farm.project / "dodo.py").write_text(
        'def task_count():\n'
        '    return {"actions": ["wc -w < words.txt > build/count.txt"],\n'
        '            "file_dep": ["words.txt"], "targets": ["build/count.txt"]}\n')
    assert run_here(farm).returncode == 0
    for folder in (tmp_path / "tm-store").iterdir():    # the store lost every blob
        if folder.name != "tmp":
            shutil.rmtree(folder)
    farm.stop(first)
    hidden_worker(farm, tmp_path, "w2")                  # a worker whose cache is empty
    done = run_here(farm, "-a")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (farm.project / "build" / "count.txt").read_text().strip() == "3"


CACHED_DODO = '''
def task_upper():
    return {"actions": ["tr a-z A-Z < words.txt > build/upper.txt"], "clean": True,
            "file_dep": ["words.txt"], "targets": ["build/upper.txt"]}

def task_count():
    return {"actions": ["wc -w < build/upper.txt > build/count.txt"], "clean": True,
            "file_dep": ["build/upper.txt"], "targets": ["build/count.txt"]}

def task_stamp():
    return {"actions": ["date +%%N > build/stamp.txt"], "clean": True,
            "targets": ["build/stamp.txt"], "meta": {"cache": False}}
'''


def cached_project(farm, tmp_path, words):
    """CACHED_DODO over ``words``, built once by a worker that does not see it."""
    hidden_worker(farm, tmp_path, "w1")
    (farm.project / "words.txt").write_text(words)
    (farm.project / "dodo.py").write_text(CACHED_DODO)
    done = run_here(farm)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def traced(farm, done):
    """The trace events of the run ``done`` (majordomo says where it wrote them)."""
    path = done.stderr.split("; timeline: ")[1].split(" (open it")[0]
    with open(path) as stream:
        return json.load(stream)["traceEvents"]


def report_of(done):
    path = done.stderr.split("majordomo: report: ")[1].split(";")[0]
    with open(path) as stream:
        return stream.read()


def clean_here(farm):
    cleaned = subprocess.run([sys.executable, "-m", "computefarm.majordomo", "clean"],
                             cwd=str(farm.project), capture_output=True, text=True)
    assert cleaned.returncode == 0 and not (farm.project / "build" / "count.txt").exists()


def test_a_clean_rebuild_comes_from_the_action_cache_even_after_a_restart(loopback_farm,
                                                                            tmp_path):
    farm = loopback_farm
    done = cached_project(farm, tmp_path, "alpha beta gamma\n")
    assert "action cache" not in done.stderr
    events = traced(farm, done)
    staged = [e for e in events if e.get("cat") == "task"]
    assert len(staged) == 3 and all(e["args"]["input_bytes"] > 0 for e in staged)
    assert sum(e["args"]["fetched_bytes"] for e in staged) > 0     # its cache was empty
    for phase in [e for e in events if e.get("cat") == "staging"]:   # inside its task's
        [task] = [e for e in staged if e["name"] == phase["name"].split(": ", 1)[1]]
        assert task["ts"] <= phase["ts"] and \
            phase["ts"] + phase["dur"] <= task["ts"] + task["dur"] + 1
    stamp = (farm.project / "build" / "stamp.txt").read_text()
    client = farm.client()
    for restart in (False, True):
        if restart:                         # entries and blobs are on disk: they stay
            address = farm.address
            assert farm.stop(farm.taskmanager) == 0
            farm.start_taskmanager(bind=address)
        clean_here(farm)
        again = run_here(farm)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "3 task(s) done, 0 failed" in again.stderr
        assert "2 action(s) from the action cache" in again.stderr     # not the stamp
        events = traced(farm, again)
        hits = [e for e in events if e.get("cat") == "cache"]
        assert sorted(e["name"] for e in hits) == ["cache hit: count", "cache hit: upper"]
        assert all(e["ph"] == "i" and e["args"]["machine"] for e in hits)
        assert [e["name"] for e in events if e.get("cat") == "task"] == ["stamp"]
        page = report_of(again)
        assert "2 action(s) not run: their outputs came from earlier runs" in page
        assert (farm.project / "build" / "upper.txt").read_text() == "ALPHA BETA GAMMA\n"
        assert (farm.project / "build" / "count.txt").read_text().strip() == "3"
        new_stamp = (farm.project / "build" / "stamp.txt").read_text()
        assert new_stamp != stamp              # meta cache False: it ran again
        stamp = new_stamp
    cache = client.status()["action_cache"]
    assert cache["hits"] == 2 and cache["entries"] >= 2     # since the restart


def test_a_cached_result_whose_output_left_the_store_simply_runs_again(loopback_farm,
                                                                         tmp_path):
    farm = loopback_farm
    cached_project(farm, tmp_path, "one two\n")
    upper = digest_file(str(farm.project / "build" / "upper.txt"))[0]
    os.unlink(tmp_path / "tm-store" / upper[:2] / upper)       # evicted, say
    clean_here(farm)
    again = run_here(farm)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 action(s) from the action cache" in again.stderr     # count's; upper ran
    assert (farm.project / "build" / "count.txt").read_text().strip() == "2"


NARROW_DODO = '''
def task_narrow():
    return {"actions": ["tr a-z A-Z < words.txt > build/narrow.txt"], "clean": True,
            "targets": ["build/narrow.txt"], "meta": {"inputs": ["words.txt"]}}

def task_whole():
    return {"actions": ["tr a-z A-Z < words.txt > build/whole.txt"], "clean": True,
            "targets": ["build/whole.txt"]}
'''


def test_meta_inputs_narrow_a_task_to_its_files_so_other_changes_keep_its_cached_result(
        loopback_farm, tmp_path):
    farm = loopback_farm
    hidden_worker(farm, tmp_path, "w1")
    (farm.project / "words.txt").write_text("kept words\n")
    (farm.project / "notes.txt").write_text("first notes\n")
    (farm.project / "dodo.py").write_text(NARROW_DODO)
    assert run_here(farm).returncode == 0
    (farm.project / "notes.txt").write_text("other notes\n")    # not an input of narrow
    cleaned = subprocess.run([sys.executable, "-m", "computefarm.majordomo", "clean"],
                             cwd=str(farm.project), capture_output=True, text=True)
    assert cleaned.returncode == 0
    again = run_here(farm)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 action(s) from the action cache" in again.stderr      # narrow's; whole ran
    for name in ("narrow", "whole"):
        assert (farm.project / "build" / ("%s.txt" % name)).read_text() == "KEPT WORDS\n"
    (farm.project / "dodo.py").write_text(NARROW_DODO.replace('["words.txt"]', '"words.txt"'))
    bad = run_here(farm)
    assert bad.returncode != 0 and "meta.inputs must be a list" in bad.stdout + bad.stderr


EXCLUDED_DODO = '''
DOIT_CONFIG = {"farm_exclude": %r}

def task_seen():
    return {"actions": ["find . -type f ! -path './build/*' | sort > build/seen.txt"],
            "targets": ["build/seen.txt"],
            "meta": {"cache": False}}
'''


def test_dodo_config_farm_exclude_leaves_files_out_of_what_workers_get(loopback_farm, tmp_path):
    farm = loopback_farm
    hidden_worker(farm, tmp_path, "w1")
    (farm.project / "words.txt").write_text("kept\n")
    (farm.project / "notes.log").write_text("left out\n")
    (farm.project / "secret").mkdir()
    (farm.project / "secret" / "key.pem").write_text("left out\n")
    (farm.project / "dodo.py").write_text(EXCLUDED_DODO % (["secret/", "*.log"],))
    done = run_here(farm)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "staged 2 file(s) of project" in done.stderr                # dodo.py, words.txt
    seen = (farm.project / "build" / "seen.txt").read_text().split()
    assert seen == ["./dodo.py", "./words.txt"]
    (farm.project / "dodo.py").write_text(EXCLUDED_DODO % ("secret/",))
    bad = run_here(farm)
    assert bad.returncode != 0
    assert "ERROR: dodo.py: DOIT_CONFIG['farm_exclude'] must be a list of gitignore-style " \
        "patterns (strings), not 'secret/'" in bad.stderr


def test_a_staged_task_s_big_output_never_costs_its_worker_a_heartbeat(tmp_path):
    """A staged task's outputs are hashed in the worker's hashing thread: with
    heartbeats taken for dead after 0.3 s, a 300 MB target, whose hashing and
    storing alone take longer, comes back from the task's one run."""
    (tmp_path / "farm").mkdir()
    farm = Farm(tmp_path / "farm", store=str(tmp_path / "tm-store"),
                heartbeat_interval=0.1, heartbeat_liveness=3)
    farm.project = tmp_path / "laptop" / "project"
    (farm.project / "build").mkdir(parents=True)
    farm.start_taskmanager()
    try:
        hidden_worker(farm, tmp_path, "w1")
        (farm.project / "dodo.py").write_text(
            'def task_big():\n'
            '    return {"actions": ["head -c 300M /dev/urandom > build/big.bin"],\n'
            '            "targets": ["build/big.bin"], "meta": {"cache": False}}\n')
        done = run_here(farm)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (farm.project / "build" / "big.bin").stat().st_size == 300 << 20
        assert not re.search(r"worker \S+ on host \S+ stopped answering",
                             farm.taskmanager.log.read_text())
    finally:
        farm.close()


REMOTE_DODO = CACHED_DODO[:CACHED_DODO.index("def task_stamp")] + '''
def task_show():
    def show():                  # a python action: it reads the project's files
        print("shown:", open("build/upper.txt").read().strip())
    return {"actions": [show], "file_dep": ["build/upper.txt"], "verbosity": 2,
            "uptodate": [False]}
'''


PYTHON_DODO = """
import os

def task_upper():
    return {"actions": ["tr a-z A-Z < words.txt > build/upper.txt"],
            "file_dep": ["words.txt"], "targets": ["build/upper.txt"]}

def task_report():
    def report(targets):        # reads an input and a file of the tree, writes a target
        words = open("build/upper.txt").read().split()
        note = open("notes/extra.txt").read().strip()
        with open(targets[0], "w") as stream:
            stream.write("%d words from %s; %s\\n" % (len(words), words[0], note))
        print("ran in", os.getcwd())
    return {"actions": [report], "file_dep": ["build/upper.txt"],
            "targets": ["build/report.txt"], "verbosity": 2}
"""


def test_a_python_action_runs_on_a_worker_that_sees_none_of_the_project(loopback_farm,
                                                                         tmp_path):
    """Python actions are staged as command tasks are: the tree and their inputs
    (here one left on the farm) laid out where the slot runs them, their targets
    brought back."""
    farm = loopback_farm
    hidden_worker(farm, tmp_path, "w1")
    config = tmp_path / "p1.yaml"
    config.write_text(yaml.safe_dump({"machines": {"p1": {"cache": str(tmp_path / "p1")}}}))
    farm.start_worker("python", machine="p1", config=config,
                      host=hosts.Elsewhere(farm.project.parent))
    (farm.project / "words.txt").write_text("alpha beta gamma\n")
    (farm.project / "notes").mkdir()
    (farm.project / "notes" / "extra.txt").write_text("a note\n")
    (farm.project / "dodo.py").write_text(PYTHON_DODO)
    done = run_here(farm, "--download", "toplevel", "report")
    assert done.returncode == 0, done.stdout + done.stderr
    assert executed(done) == ["report", "upper"]
    report = farm.project / "build" / "report.txt"
    assert report.read_text() == "3 words from ALPHA; a note\n"
    assert not (farm.project / "build" / "upper.txt").exists()     # it stayed on the farm
    [ran_in] = [line.split(" ", 2)[2] for line in done.stdout.splitlines()
                if line.startswith("ran in ")]
    assert ran_in.startswith(str(tmp_path / "p1" / "scratch"))       # not in the project
    assert executed(run_here(farm, "--download", "toplevel", "report")) == []


def executed(done):
    """The tasks a majordomo run executed (doit's '. NAME' lines); ``done`` a
    finished run, or its output."""
    text = done if isinstance(done, str) else done.stdout
    return sorted(line[2:].strip() for line in text.splitlines() if line.startswith(". "))


def test_download_toplevel_leaves_what_only_feeds_other_tasks_on_the_farm(loopback_farm,
                                                                          tmp_path):
    """Building without the bytes: upper.txt only feeds count, asked for alone; it
    stays in the store, doit sees it there, and it lands as soon as something
    here needs it or the run asks for its task."""
    farm = loopback_farm
    hidden_worker(farm, tmp_path, "w1")
    farm.start_worker("python", machine="here")        # python actions: on this machine
    (farm.project / "words.txt").write_text("alpha beta gamma\n")
    (farm.project / "dodo.py").write_text(REMOTE_DODO)
    upper, count = farm.project / "build" / "upper.txt", farm.project / "build" / "count.txt"
    record = farm.project / ".doit.db.farm-outputs"

    def toplevel(*tasks):
        done = run_here(farm, "--download", "toplevel", *tasks)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    assert executed(toplevel("count")) == ["count", "upper"]
    assert count.read_text().strip() == "3" and not upper.exists()
    assert list(json.loads(record.read_text())["files"]) == ["build/upper.txt"]
    assert executed(toplevel("count")) == []                # doit sees it on the farm
    listed = subprocess.run([sys.executable, "-m", "computefarm.majordomo", "list",
                             "--status"], cwd=str(farm.project), capture_output=True,
                            text=True, timeout=60)             # and so do its other commands
    assert listed.returncode == 0 and {"U count", "U upper"} <= {
        line.strip() for line in listed.stdout.splitlines()}, listed.stdout + listed.stderr
    shown = toplevel("show")              # a python action, staged: it reads it there
    assert executed(shown) == ["show"] and "shown: ALPHA BETA GAMMA" in shown.stdout
    assert not upper.exists() and list(json.loads(record.read_text())["files"]) == \
        ["build/upper.txt"]
    assert executed(toplevel("upper")) == []                # asked for: it lands
    assert upper.read_text() == "ALPHA BETA GAMMA\n" and not record.exists()
    assert executed(toplevel("count")) == []                # the same content: up to date

    upper.unlink()
    assert executed(toplevel("count")) == ["upper"]         # count's input did not change
    for folder in (tmp_path / "tm-store").iterdir():        # the store lost every blob
        if folder.name != "tmp":
            shutil.rmtree(folder)
    assert executed(toplevel("count")) == ["upper"]         # made again, not a failure
    clean_here(farm)                                        # forgets what it cleaned
    assert not record.exists()
    assert executed(toplevel("count")) == ["count", "upper"] and not upper.exists()
    assert executed(toplevel()) == ["show"]                 # all asked for: all land here
    assert upper.read_text() == "ALPHA BETA GAMMA\n" and not record.exists()

    escaping = {"taskmanager": farm.address, "files": {"../../outside": {
        "digest": "0" * 64, "size": 1, "task": "upper"}}}
    for text in ('{"files": [', json.dumps(escaping)):    # damaged: set aside, said
        record.write_text(text)
        damaged = toplevel("count")
        assert "is damaged" in damaged.stderr and executed(damaged) == []
        assert not record.exists()

    bad = run_here(farm, "--download", "some")
    assert bad.returncode != 0
    assert "ERROR: --download (or DOIT_CONFIG['farm_download']) must be one of all, " \
        "toplevel, not 'some'" in bad.stderr


HELD_DODO = """
import os, time

def task_early():
    return {"actions": ["head -c 300000 /dev/urandom > build/early.bin"],
            "targets": ["build/early.bin"], "meta": {"cache": False}}

def task_pause():
    def pause():                # a python action on this machine: waits for the test
        open(%(pausing)r, "w").close()
        deadline = time.monotonic() + 90
        while not os.path.exists(%(go)r):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    return {"actions": [pause], "task_dep": ["early"], "uptodate": [False]}

def task_late():
    return {"actions": ["wc -c < build/early.bin > build/late.txt"],
            "file_dep": ["build/early.bin"], "task_dep": ["pause"],
            "targets": ["build/late.txt"], "meta": {"cache": False}}
"""


class PausedRun:
    """HELD_DODO's ``majordomo run --download toplevel late`` on a farm whose store
    holds 1 MB: early.bin (300 KB) is left on the farm, then the run pauses until
    ``resume`` while another client may fill the store; late then reads early.bin
    on a worker whose cache is empty."""

    def __init__(self, tmp_path):
        (tmp_path / "farm").mkdir()
        self.farm = farm = Farm(tmp_path / "farm", store=str(tmp_path / "tm-store"),
                                store_size=1_000_000)
        self.tmp_path = tmp_path
        farm.project = tmp_path / "laptop" / "project"
        (farm.project / "build").mkdir(parents=True)
        farm.start_taskmanager()
        self.pausing, self.go = tmp_path / "pausing", tmp_path / "go"
        (farm.project / "dodo.py").write_text(HELD_DODO % {"pausing": str(self.pausing),
                                                            "go": str(self.go)})
        self.run = None
        self.workers = 1
        self.worker = hidden_worker(farm, tmp_path, "w1")
        farm.start_worker("python", machine="here")

    def start(self):
        self.pausing.unlink(missing_ok=True)
        self.go.unlink(missing_ok=True)
        self.run = subprocess.Popen([sys.executable, "-m", "computefarm.majordomo", "run",
                                     "--taskmanager", self.farm.address, "--download",
                                     "toplevel", "late"], cwd=str(self.farm.project),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(self.pausing.exists, timeout=90, what="the run to reach its pause")
        self.farm.stop(self.worker)                  # late's worker: an empty cache
        self.workers += 1
        self.worker = hidden_worker(self.farm, self.tmp_path, "w%d" % self.workers)

    def resume(self):
        self.go.touch()
        out, err = self.run.communicate(timeout=120)
        return self.run.returncode, out + err

    def close(self):
        if self.run is not None and self.run.poll() is None:
            self.run.kill()
            self.run.communicate()
        self.farm.close()


def fill(client, hold):
    """Another client's 900 KB: with early.bin, more than the store holds."""
    fillers = [os.urandom(300_000) for _ in range(3)]
    client.upload([(digest_bytes(data), len(data), data) for data in fillers],
                  hold=hold).result(60)
    return client.status()["store"]


def test_an_output_left_on_the_farm_outlasts_other_users_uploads_while_its_run_needs_it(
        tmp_path):
    """The store holds what a run uploaded and left there: another client filling
    it mid-run pushes out its own older blobs, not the output a later task of the
    run reads; once the run is gone, nothing is held."""
    paused = PausedRun(tmp_path)
    try:
        paused.start()
        other = paused.farm.client()
        store = fill(other, hold=False)
        assert store["evicted"] >= 1 and store["evicted_held"] == 0 and store["held"] >= 2
        assert store["bytes"] <= 1_000_000
        code, output = paused.resume()
        assert code == 0, output
        build = paused.farm.project / "build"
        assert (build / "late.txt").read_text().strip() == "300000"
        assert not (build / "early.bin").exists()                     # it stayed there
        wait_until(lambda: other.status()["store"]["held"] == 0, timeout=30,
                   what="the run's holds to go with it")
    finally:
        paused.close()


def test_an_output_a_store_too_small_lost_mid_run_is_named_and_made_again_next_run(tmp_path):
    """When what runs hold fills the store, held blobs go too: the task that needed
    one fails naming the file and the task that made it, and the next run makes
    it again."""
    paused = PausedRun(tmp_path)
    try:
        paused.start()
        store = fill(paused.farm.client(), hold=True)            # everything is held
        assert store["evicted_held"] >= 1
        code, output = paused.resume()
        assert code != 0
        assert "farm: build/early.bin (made by early) left the TaskManager's store during " \
            "the run: it had to evict blobs runs held, being too small for them (see " \
            "farm-status); the next run makes it again" in output, output
        paused.start()
        code, output = paused.resume()
        assert code == 0, output
        assert executed(output) == ["early", "late", "pause"]
        assert (paused.farm.project / "build" / "late.txt").read_text().strip() == "300000"
    finally:
        paused.close()
