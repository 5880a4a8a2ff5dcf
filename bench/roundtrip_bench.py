"""Where a round trip's time goes: one no-op task at a time, each process's part.

    python bench/roundtrip_bench.py [--tasks 2000] [--slots 2] [--workers 2] [--show K]

Starts an embedded farm (core_bench.py's: a TaskManager, 2 workers of 2 python
slots) with ``COMPUTEFARM_TRACE`` set, so every process marks when its loop
waits and wakes, when it has decoded a message and when it sends one
(computefarm/tracing.py); runs --tasks no-op tasks one at a time through
``FarmExecutor.submit``, marking each submit and result; stops the farm (the
marks are written) and lays each task's marks of every process in time order.

The table is the median of each step of the most common sequence: within a
process, its work (the caller is the thread that calls ``submit`` and
``result``; the client is the client library's thread); from one process to
the next, a hop: ZeroMQ over loopback with CURVE, a pipe to or from a python
slot, or the wake-up of another thread. Below it, the work each process went
on doing after its last send of the task (on 2 cores it delays the next hop:
the ZeroMQ I/O threads need a core too). The bare broker's round trip
(bench/barebroker.py) is measured in the same run for scale, and so is the same
broker taking the hops a FarmExecutor task takes (CURVE, a slot process behind
each worker, a client thread) with no other work: the least those hops cost
here, and so what is left for the farm's own work within 2.5x the bare
broker's. Everything runs on 127.0.0.1; every process started is stopped.
``--show K`` prints the K-th task's marks as they came, the waits included.
"""

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile

import cloudpickle
import psutil
from barebroker import BareBroker

from computefarm import tracing
from computefarm.client import FarmExecutor, LocalFarm
from computefarm.wire.protocol import Msg

HOPS = {frozenset(pair): kind for pair, kind in (       # what joins two roles
    (("client", "taskmanager"), "ZeroMQ"), (("taskmanager", "worker"), "ZeroMQ"),
    (("worker", "slot"), "pipe"), (("caller", "client"), "thread"))}


def noop():
    return None


def read_marks(folder, roles):
    """Every mark of every process: (time, role, event) in time order."""
    marks = []
    for name in os.listdir(folder):
        role = roles.get(int(name))
        if role is None:
            continue
        with open(os.path.join(folder, name)) as stream:
            for line in stream:
                stamp, event = line.rstrip("\n").split(" ", 1)
                kind, _, code = event.partition(" ")
                if code:
                    event = "%s %s" % (kind, Msg(int(code)).name)
                marks.append((int(stamp), role, event))
    marks.sort()
    return marks


def per_task(marks):
    """Each task's marks, from its submit to its result: lists of (time, role, event)."""
    tasks, current = [], None
    for mark in marks:
        if mark[1] == "caller" and mark[2] == "submit":
            current = [mark]
        elif current is not None:
            current.append(mark)
            if mark[1] == "caller" and mark[2] == "done":
                tasks.append(current)
                current = None
    return tasks


def report(tasks, bare_p50, hops_p50):
    chains = collections.defaultdict(list)    # the path: marks other than the waits
    tails = collections.defaultdict(list)     # role -> from its last send to its next wait
    for task in tasks:
        path = [m for m in task if m[2] != "poll"]
        chains[tuple((role, event) for _, role, event in path)].append(
            [stamp for stamp, _, _ in path])
        last_send = {}
        for stamp, role, event in task:
            if event.startswith("send") or event == "request" or event == "slot-out":
                last_send[role] = stamp
            elif event == "poll" and role in last_send:
                tails[role].append(stamp - last_send.pop(role))
    shape, runs = max(chains.items(), key=lambda item: len(item[1]))
    median = statistics.median
    print("%d tasks one at a time; the most common sequence (%d of them), medians in us:"
          % (len(tasks), len(runs)))
    work, hops = collections.Counter(), collections.Counter()
    hop_count = collections.Counter()
    for i in range(1, len(shape)):
        spent = median(run[i] - run[i - 1] for run in runs) / 1000.0
        (role_a, event_a), (role_b, event_b) = shape[i - 1], shape[i]
        if role_a == role_b:
            what = "work"
            work[role_a] += spent
        else:
            what = "hop (%s)" % HOPS.get(frozenset((role_a, role_b)), "?")
            hops[what] += spent
            hop_count[what] += 1
        print("  %7.0f  %-12s %-16s -> %-12s %-16s %s"
              % (spent, role_a, event_a, role_b, event_b, what))
    total = median(run[-1] - run[0] for run in runs) / 1000.0
    print("round trip: %.0f us (the median of these tasks'), the bare broker's %.0f us: %.1fx"
          % (total, bare_p50, total / bare_p50))
    print("  the bare broker with these hops and no other work: %.0f us (%.1fx), leaving "
          "%.0f us of work within 2.5x" % (hops_p50, hops_p50 / bare_p50,
                                           2.5 * bare_p50 - hops_p50))
    print("  work: " + ", ".join("%s %.0f" % item for item in work.most_common()))
    print("  hops: " + ", ".join("%d %s %.0f" % (hop_count[name], name, spent)
                                 for name, spent in hops.most_common()))
    print("  after the last send, each went on (us): " + ", ".join(
        "%s %.0f" % (role, median(values) / 1000.0) for role, values in sorted(tails.items())))


def bare_round_trip(count, farm_hops):
    """The bare broker's round trip p50 in us, one task in flight."""
    broker = BareBroker(cloudpickle.dumps((noop, (), {})), credit=1, farm_hops=farm_hops)
    try:
        broker.latency(200)
        return broker.latency(count)[0] * 1000.0
    finally:
        broker.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--show", type=int, help="print this task's marks as they came")
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="roundtrip-")
    bare_p50 = bare_round_trip(args.tasks, farm_hops=False)
    hops_p50 = bare_round_trip(args.tasks, farm_hops=True)
    os.environ["COMPUTEFARM_TRACE"] = folder       # the farm's processes inherit it
    tracing.start(folder)                          # and this one, started before
    farm = LocalFarm(["python"], slots=args.slots, workers=args.workers)
    farm.start()
    roles = {os.getpid(): "client"}
    try:
        roles[farm.processes[0].pid] = "taskmanager"
        for proc in farm.processes[1:]:
            roles[proc.pid] = "worker"
            for child in psutil.Process(proc.pid).children(recursive=True):
                roles[child.pid] = "slot"
        with FarmExecutor(farm.address) as executor:
            for _ in range(200):                       # warm up: slots, caches
                executor.submit(noop).result(60)
            for _ in range(args.tasks):
                tracing.mark("submit")
                executor.submit(noop).result(60)
                tracing.mark("done")
    finally:
        farm.stop()
        tracing.stop()
    try:
        marks = read_marks(folder, roles)
        marks = [(stamp, "caller" if event in ("submit", "done") else role, event)
                 for stamp, role, event in marks]
        tasks = per_task(marks)
        if args.show is not None:
            first = tasks[args.show][0][0]
            for stamp, role, event in tasks[args.show]:
                print("%7.0f us  %-12s %s" % ((stamp - first) / 1000.0, role, event))
        report(tasks, bare_p50, hops_p50)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
