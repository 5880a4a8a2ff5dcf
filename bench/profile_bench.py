"""Where each microsecond of a no-op python task goes, in each process of the farm.

    python bench/profile_bench.py [--tasks 20000] [--api executor|client] [--top 10]
                                  [--one] [--inclusive]

Starts an embedded farm (a TaskManager, 2 workers of 2 python slots), warms it
up, then runs --tasks no-op tasks through ``FarmExecutor.submit`` (or
``Client.submit`` with a payload pickled once) while py-spy samples every
process: this client, the TaskManager, the workers and their slots. For each
process it prints its CPU microseconds per task (samples holding the GIL, so
waits in poll and read do not count) and the functions that spent them (self
time, the innermost frame), largest first. Time in C code that releases the GIL
(ZeroMQ's sends, CURVE in its I/O threads) is not counted: the process's CPU
per task from core_bench.py is the total.

py-spy (``pip install py-spy``; root or ptrace rights) does the sampling: it
attaches from outside, so nothing in the farm's code is instrumented and the
figures are the code's own, give or take the sampling's few percent.
"""

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import cloudpickle
import psutil

from computefarm.client import Client, FarmExecutor, LocalFarm

RATE = 1000          # samples a second of each process


def noop():
    return None


def processes(farm):
    """{label: pid} of the farm's processes and this client."""
    found = {"client": os.getpid(), "taskmanager": farm.processes[0].pid}
    for index, proc in enumerate(farm.processes[1:]):
        found["worker%d" % index] = proc.pid
        for n, child in enumerate(psutil.Process(proc.pid).children()):
            if "pyslot" in " ".join(child.cmdline()):
                found["worker%d slot%d" % (index, n)] = child.pid
    return found


def sample(pids, folder):
    spies = {}
    for label, pid in pids.items():
        out = os.path.join(folder, "%s.txt" % label.replace(" ", "-"))
        spies[label] = (subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw",
             "--nonblocking", "--gil", "--output", out], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL), out)
    time.sleep(1.0)                   # py-spy attaches
    return spies


def stop(spies):
    for proc, _ in spies.values():
        proc.send_signal(signal.SIGINT)          # it writes its file and exits
    for proc, _ in spies.values():
        proc.wait(60)


def self_times(path, inclusive=False):
    """{innermost frame: samples} from py-spy's raw (collapsed stacks) output; with
    ``inclusive``, {function: samples with it anywhere in the stack}."""
    counts = collections.Counter()
    try:
        with open(path) as stream:
            for line in stream:
                stack, _, count = line.rstrip().rpartition(" ")
                if inclusive:
                    for function in {_function(frame) for frame in stack.split(";")}:
                        counts[function] += int(count)
                else:
                    counts[stack.rsplit(";", 1)[-1]] += int(count)
    except FileNotFoundError:
        pass
    return counts


def _function(frame):
    """``name (path:line)`` -> ``name (path)``."""
    name, _, where = frame.partition(" (")
    return "%s (%s)" % (name, where.rpartition(":")[0]) if where else name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--api", choices=("executor", "client"), default="executor")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--one", action="store_true",
                        help="one task in flight at a time (where a round trip's time goes)")
    parser.add_argument("--inclusive", action="store_true",
                        help="time per function including what it calls, not per line")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("ERROR: py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    farm = LocalFarm(["python"], slots=2, workers=2)
    farm.start()
    folder = tempfile.mkdtemp(prefix="profile-")
    try:
        if args.api == "executor":
            runner = FarmExecutor(farm.address)

            def run(count):
                if args.one:
                    for _ in range(count):
                        runner.submit(noop).result(300)
                for future in [runner.submit(noop) for _ in range(0 if args.one else count)]:
                    future.result(300)
        else:
            runner = Client(farm.address)
            payload = cloudpickle.dumps((noop, (), {}))

            def run(count):
                if args.one:
                    for _ in range(count):
                        assert runner.submit("python", {"payload": payload}).result(300).ok
                for future in [runner.submit("python", {"payload": payload})
                               for _ in range(0 if args.one else count)]:
                    assert future.result(300).ok
        run(1000)                                      # slots started, caches warm
        spies = sample(processes(farm), folder)
        started = time.perf_counter()
        run(args.tasks)
        elapsed = time.perf_counter() - started
        stop(spies)
        runner.shutdown() if args.api == "executor" else runner.close()
    finally:
        farm.stop()
    print("%d no-op python tasks%s through %s: %.0f tasks/s while sampled at %d Hz"
          % (args.tasks, ", one at a time," if args.one else "", "FarmExecutor.submit" if args.api == "executor" else "Client.submit",
             args.tasks / elapsed, RATE))
    for label, (_, path) in spies.items():
        total = sum(self_times(path).values())
        counts = self_times(path, args.inclusive)
        per_task = total * 1e6 / RATE / args.tasks
        print("\n%s: %.0f us of CPU per task" % (label, per_task))
        for frame, count in counts.most_common(args.top):
            print("  %6.1f us  %s" % (count * 1e6 / RATE / args.tasks, frame))
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
