"""Fair share on a real farm: a newcomer's wait, and long-run shares against weights.

    python bench/fairshare_bench.py [--only newcomer|shares ...] [--slots 8]
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
"""

import argparse
import os
import pathlib
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import SecureFarm, wait_until  # noqa: E402

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=("newcomer", "shares"),
                        default=("newcomer", "shares"))
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


if __name__ == "__main__":
    main()
