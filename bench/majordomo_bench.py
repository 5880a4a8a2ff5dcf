"""majordomo run (embedded farm) against doit -n 2 -P process, side by side.

    python bench/majordomo_bench.py [--tasks 2000] [--repeat 5]

Two graphs, each run from clean by both tools in fresh copies:
  1. --tasks no-op command tasks (``true``);
  2. examples/cprogram (34 compiles, a link, a check).
Prints wall-clock seconds (medians of --repeat rounds, doit and majordomo
alternated) and the ratio majordomo / doit.
majordomo's time includes starting and stopping its embedded farm.
"""

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOOP = ("def task_noop():\n"
        "    for i in range({n}):\n"
        "        yield {{'name': str(i), 'actions': ['true']}}\n")


def timed(command, cwd):
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def alternated(make_project, commands, repeat):
    """Seconds of each command (lists), ``repeat`` rounds of all of them in turn
    (the order alternating between rounds), each run from clean in a fresh copy."""
    times = [[] for _ in commands]
    for round_ in range(repeat):
        order = list(range(len(commands)))
        if round_ % 2:
            order.reverse()
        for index in order:
            with tempfile.TemporaryDirectory() as tmp:
                project = make_project(pathlib.Path(tmp) / "project")
                times[index].append(timed(commands[index], project))
    return times


def noop_project(count):
    def make(path):
        path.mkdir()
        (path / "dodo.py").write_text(NOOP.format(n=count))
        return path
    return make


def c_project(path):
    shutil.copytree(ROOT / "examples" / "cprogram", path,
                    ignore=shutil.ignore_patterns(".doit.db*", "build", "__pycache__"))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    doit = [sys.executable, "-m", "doit", "run", "-n", "2", "-P", "process"]
    majordomo = [sys.executable, "-m", "computefarm.majordomo", "run"]
    print("machine: %d cores, Python %s" % (os.cpu_count(), sys.version.split()[0]))
    for label, make in (("%d no-op command tasks" % args.tasks, noop_project(args.tasks)),
                        ("C example from clean", c_project)):
        plain, farm = alternated(make, [doit, majordomo], args.repeat)
        print("%-26s doit -n 2: %6.2fs  majordomo: %6.2fs  ratio %.2f (medians of %d "
              "alternated runs; best %.2fs and %.2fs)"
              % (label, statistics.median(plain), statistics.median(farm),
                 statistics.median(farm) / statistics.median(plain), args.repeat,
                 min(plain), min(farm)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
