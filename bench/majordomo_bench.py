"""majordomo run (embedded farm) against doit -n 2 -P process, side by side.

    python bench/majordomo_bench.py [--tasks 2000] [--repeat 5]

Two graphs, each run from clean by both tools in fresh copies:
  1. --tasks no-op command tasks (``true``);
  2. examples/cprogram (34 compiles, a link, a check).
Prints wall-clock seconds (medians of --repeat rounds, doit and majordomo
alternated) and the ratio majordomo / doit, for majordomo as it runs by
default (its local farm kept between runs: started once before the rounds, in
a data folder of the bench's own, and stopped after) and with --keep-farm 0 (a
farm started and stopped within each run). Both tools run with Python's bytecode
cache on, as users have it ($PYTHONDONTWRITEBYTECODE is unset for them).
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
    per_run = majordomo + ["--keep-farm", "0"]
    print("machine: %d cores, Python %s" % (os.cpu_count(), sys.version.split()[0]))
    with tempfile.TemporaryDirectory(prefix="cf-majordomo-bench-") as data:
        os.environ["COMPUTEFARM_DATA"] = data        # a kept farm of the bench's own
        os.environ.pop("COMPUTEFARM_KEEP_FARM", None)
        # as users run them: Python's bytecode cached (a sandbox may turn that off,
        # and then every start compiles every module it imports, more for majordomo)
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        try:
            for label, make in (("%d no-op command tasks" % args.tasks,
                                 noop_project(args.tasks)),
                                ("C example from clean", c_project)):
                with tempfile.TemporaryDirectory() as tmp:   # the kept farm starts
                    timed(majordomo, make(pathlib.Path(tmp) / "project"))
                plain, kept, cold = alternated(make, [doit, majordomo, per_run], args.repeat)
                print("%-26s doit -n 2: %6.2fs  majordomo: %6.2fs ratio %.2f  --keep-farm "
                      "0: %6.2fs ratio %.2f (medians of %d alternated runs)"
                      % (label, statistics.median(plain), statistics.median(kept),
                         statistics.median(kept) / statistics.median(plain),
                         statistics.median(cold),
                         statistics.median(cold) / statistics.median(plain), args.repeat))
        finally:
            subprocess.run([sys.executable, "-m", "computefarm.commands", "localfarm",
                            "stop"], stdout=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
