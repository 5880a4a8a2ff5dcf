"""Fair share on a real farm: a newcomer's wait, and long-run shares against weights.

    python bench/fairshare_bench.py [--only newcomer|shares|taskmanagers ...] [--slots 8]
        [--task 1.0] [--queued 2000] [--late 20] [--after 10] [--window 60]

Each part starts a real TaskManager (keys for users alice, bob and carol; their
weights in farm.yaml) and one worker of --slots slots; tasks are `sleep`.

  newcomer  alice queues --queued tasks of --task seconds; --after seconds later
            bob submits --late such tasks. Printed: the time from bob's submission
            to his first task's start (in task durations: the goal is <= 1) and
            until his last result, against the same --late tasks on the empty
            farm (carol, just before: the goal is <= 2x).
  shares    alice and bob each queue far more than --window seconds of tasks of
            --task/2 seconds at once, with weights 1:1 and then 3:1; the slot-
            seconds each gets during --window (their results' durations) against
            the weights (goal: within 10%).
  taskmanagers  two TaskManagers, A and B, each with its own client, and two
            workers of --slots/2 slots each serving both (weights 1:1); a monitor
            reporting to both. Both queue far more than --window seconds of
            --task/2 second tasks: each one's share of the slot-seconds in the
            window (goal: within 10% of half); then A's queue is cancelled: B's
            busy slots over the next --window/2 (goal: all of them); then A is
            killed (kill -9) while B runs: B's busy slots in the --window/2 after
            (goal: not fewer).
"""

import argparse
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import Farm, SecureFarm, wait_until, welcomes  # noqa: E402

USERS = ("alice", "bob", "carol")


def farm_of(folder, slots, weights=None):
    users = {name: {"weight": weight} for name, weight in (weights or {}).items()}
    farm = SecureFarm(pathlib.Path(folder), peers=[("w1", "worker")] + [
        (name, "client") for name in USERS], users=users)
    farm.start_taskmanager()
    farm.start_worker("shell", slots=slots, config=farm.peer_config("w1"))
    return farm, {name: farm.secure_client(name) for name in USERS}


def batch(client, count, seconds):
    """Submit ``count`` sleeps: (submitted at, start times, futures)."""
    starts, lock = [], threading.Lock()

    def started(host):
        with lock:
            starts.append(time.monotonic())
    submitted = time.monotonic()
    futures = [client.submit("shell", {"cmd": "sleep %s" % seconds}, on_start=started)
               for _ in range(count)]
    return submitted, starts, futures


def finish(futures, timeout):
    for future in futures:
        assert future.result(timeout).ok, future.result()
    return time.monotonic()


def newcomer(args, folder):
    farm, clients = farm_of(folder, args.slots)
    try:
        submitted, _, futures = batch(clients["carol"], args.late, args.task)
        alone = finish(futures, 600) - submitted
        _, _, hers = batch(clients["alice"], args.queued, args.task)
        wait_until(lambda: clients["alice"].status()["users"]["alice"]["running"]
                   == args.slots, timeout=60, what="alice on every slot")
        time.sleep(args.after)                     # the scenario: bob comes 10 s later
        submitted, starts, futures = batch(clients["bob"], args.late, args.task)
        together = finish(futures, 600) - submitted
        first = min(starts) - submitted
        for future in hers:
            future.cancel()
    finally:
        farm.close()
    print("newcomer: %d slots, alice %d x %gs queued, bob %d x %gs after %gs"
          % (args.slots, args.queued, args.task, args.late, args.task, args.after))
    print("  bob's first task started after %.2f s = %.2f task durations (goal <= 1)"
          % (first, first / args.task))
    print("  bob's %d tasks took %.2f s; on the empty farm %.2f s: %.2fx (goal <= 2x)"
          % (args.late, together, alone, together / alone))


def shares(args, folder, weights):
    farm, clients = farm_of(folder, args.slots, {"alice": weights[0], "bob": weights[1]})
    seconds = args.task / 2
    count = int(2 * args.window * args.slots / seconds)    # more than the window holds
    spent = {}
    try:
        futures = {}
        for name in ("alice", "bob"):
            futures[name] = batch(clients[name], count, seconds)[2]
        begun = time.monotonic()
        wait_until(lambda: time.monotonic() - begun >= args.window, timeout=args.window + 5,
                   interval=0.5, what="the window")
        for name in ("alice", "bob"):
            done = [f.result(0) for f in futures[name] if f.done() and not f.cancelled()]
            spent[name] = sum(r.duration or 0.0 for r in done if r.ok)
            for future in futures[name]:
                future.cancel()
    finally:
        farm.close()
    total = sum(spent.values())
    wanted = weights[0] / sum(weights)
    got = spent["alice"] / total
    print("shares %d:%d over %gs on %d slots (%gs tasks): alice %.0f, bob %.0f slot-s; "
          "alice's share %.3f, weights say %.3f: off by %.1f%% (goal <= 10%%); "
          "slots busy %.0f%%" % (weights[0], weights[1], args.window, args.slots, seconds,
                                 spent["alice"], spent["bob"], got, wanted,
                                 100 * abs(got - wanted) / wanted,
                                 100 * total / (args.window * args.slots)))


def busy_slots(results, begin, end):
    """Slot-seconds of ``results`` (their run, by the worker's clock) within
    [begin, end] (wall time), divided by the window: the slots kept busy."""
    total = 0.0
    for result in results:
        if result.started is None or result.duration is None:
            continue
        total += max(0.0, min(result.started + result.duration, end) -
                     max(result.started, begin))
    return total / (end - begin)


def finished(futures):
    return [f.result(0) for f in futures if f.done() and not f.cancelled()]


def taskmanagers(args, folder):
    seconds, half = args.task / 2, args.window / 2
    root = pathlib.Path(folder)
    farms = []
    try:
        for name in "ab":
            (root / name).mkdir(parents=True)
            farms.append(Farm(root / name))
            farms[-1].start_taskmanager()
        a, b = farms
        both = ["--taskmanager", a.address, "--taskmanager", b.address]
        for number in range(2):
            proc = a.spawn("farm-worker", ["--config", str(a.config), "--slots",
                                           str(args.slots // 2), "--capability", "shell",
                                           "--machine", "shared-%d" % number] + both, "worker")
            wait_until(lambda: welcomes(proc) >= 2, timeout=30, what="a shared worker")
            a.spawn("farm-monitor", ["--config", str(a.config), "--machine",
                                     "shared-%d" % number, "--interval", "0.5"] + both,
                    "monitor")
        clients = {"a": a.client(), "b": b.client()}
        count = int(2 * args.window * args.slots / seconds)
        futures = {n: [c.submit("shell", {"cmd": "sleep %s" % seconds}) for _ in range(count)]
                   for n, c in clients.items()}
        begun = time.time() + 2.0                  # both under way
        time.sleep(2.0 + args.window)              # the window (a bench: wall time is the point)
        ended = time.time()
        shares = {n: busy_slots(finished(f), begun, ended) for n, f in futures.items()}
        for future in futures["a"]:
            future.cancel()
        time.sleep(seconds * 2)                    # A's last tasks end
        alone_begun = time.time()
        time.sleep(half)
        alone = busy_slots(finished(futures["b"]), alone_begun, time.time())
        more = [clients["a"].submit("shell", {"cmd": "sleep %s" % seconds})
                for _ in range(count)]
        time.sleep(2.0)                            # A busy again
        before_begun = time.time()
        time.sleep(half)
        killed_at = time.time()
        a.taskmanager.send_signal(signal.SIGKILL)
        a.taskmanager.wait(10)
        time.sleep(half)
        results = finished(futures["b"])
        before = busy_slots(results, before_begun, killed_at)
        after = busy_slots(results, killed_at, time.time())
        for future in futures["b"] + more:
            future.cancel()
    finally:
        for farm in reversed(farms):
            farm.close()
    total = sum(shares.values())
    print("taskmanagers: 2 TaskManagers, 2 workers x %d slots serving both, weights 1:1, "
          "%gs tasks" % (args.slots // 2, seconds))
    print("  both busy for %gs: A kept %.2f slots busy, B %.2f: A's share %.3f (goal 0.5 "
          "+- 10%%)" % (args.window, shares["a"], shares["b"], shares["a"] / total))
    print("  A idle: B kept %.2f of %d slots busy over %gs (goal: all)" % (alone, args.slots,
                                                                        half))
    print("  A killed (kill -9) while both busy: B kept %.2f slots busy in the %gs before, "
          "%.2f in the %gs after (its own share, then A's slots once A's link is down and "
          "A's last tasks end)" % (before, half, after, half))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=("newcomer", "shares", "taskmanagers"),
                        default=("newcomer", "shares", "taskmanagers"))
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--task", type=float, default=1.0)
    parser.add_argument("--queued", type=int, default=2000)
    parser.add_argument("--late", type=int, default=20)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fairshare-") as folder:
        if "newcomer" in args.only:
            newcomer(args, os.path.join(folder, "newcomer"))
        if "shares" in args.only:
            for weights in ((1, 1), (3, 1)):
                shares(args, os.path.join(folder, "shares-%d-%d" % weights), weights)
        if "taskmanagers" in args.only:
            taskmanagers(args, os.path.join(folder, "taskmanagers"))


if __name__ == "__main__":
    main()
