"""Batches (farm-run) on a real farm: crashes, a million queued tasks, stragglers.

    python bench/batch_bench.py [--only kill9|million|stragglers|owner ...]
        [--tasks 10000] [--queued 1000000] [--sweep 300] [--task 0.5] [--rounds 1]
        [--owner-stays 30]

  kill9       a batch of --tasks tasks (each appends its index to a file) on two
              workers of 2 slots; the client leaves once it is submitted; the
              TaskManager is killed with SIGKILL at a third and at two thirds of
              the results and started again on its port. Printed: results (each
              task's one row), tasks lost, tasks that ran twice, the wall time,
              and the time from each restart to the batch's next result.
  million     --queued tasks submitted (distinct command lines) with no worker
              connected: the submission rate (client side, until every part is
              on disk), the TaskManager's RSS with them queued, the database's
              size; then SIGKILL and a restart: the time until it answers for the
              batch, and until a worker connected before the restart runs its
              first task (tasks past the last dispatch mark wait for no grace).
  stragglers  a sweep of --sweep sleeps of --task seconds on workers of 2 slots
              on 4 machines, one of them 4x slower (its tasks sleep 4x longer):
              the wall time with --speculate and without, against the same sweep
              on the 3 fast machines only. Alternated for --rounds; medians.
  owner       the same sweep on 4 equal machines, one with a monitor whose owner
              comes back halfway (a process of its own burning a core; the
              machine's policy suspends the farm's tasks) and stays --owner-stays
              seconds: the wall time with --speculate and without, against the 3
              other machines alone.
"""

import argparse
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import psutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import Farm, wait_until  # noqa: E402

from computefarm.client import Client  # noqa: E402


def status_of(farm, batch_id, timeout=10.0):
    with Client(farm.address, connect_timeout=timeout) as client:
        return client.batch(batch_id).status()


def finished(farm, batch_id):
    try:
        return status_of(farm, batch_id)["finished"]
    except Exception:           # restarting: not answering yet
        return -1


def kill9(args, folder):
    farm = Farm(folder)
    farm.start_taskmanager()
    try:
        farm.start_worker("shell", slots=2)
        farm.start_worker("shell", slots=2)
        runs = folder / "runs.txt"
        began = time.monotonic()
        with Client(farm.address, connect_timeout=10) as client:
            batch_id = client.submit_batch(["echo {index} >> %s" % runs],
                                           replicas=args.tasks).id
        submitted = time.monotonic() - began
        port = farm.address
        back = []
        for third in (1, 2):
            wait_until(lambda: finished(farm, batch_id) >= third * args.tasks // 3,
                       timeout=600, interval=0.2, what="a third of the results")
            farm.stop(farm.taskmanager, signal.SIGKILL)
            restarted = time.monotonic()
            farm.start_taskmanager(bind=port)
            before = status_of(farm, batch_id)["finished"]
            wait_until(lambda: finished(farm, batch_id) > before, timeout=120,
                       interval=0.05, what="a result after the restart")
            back.append(time.monotonic() - restarted)
        with Client(farm.address, connect_timeout=10) as client:
            batch = client.batch(batch_id)
            status = batch.wait(timeout=1200, interval=0.5)
            results = list(batch.results())
        took = time.monotonic() - began
        ran = {}
        for line in runs.read_text().split():
            ran[int(line)] = ran.get(int(line), 0) + 1
        rows = [r["n"] for r in results]
        print("kill9: %d tasks, SIGKILL x2: %d result rows (%d distinct), %d ok, lost %d, "
              "ran twice %d, never ran %d; submitted in %.2f s, all done in %.1f s; "
              "first result after each restart: %s s" % (
                  args.tasks, len(rows), len(set(rows)), status["ok"],
                  args.tasks - len(set(rows)), sum(1 for c in ran.values() if c > 1),
                  args.tasks - len(ran), submitted, took,
                  ", ".join("%.2f" % b for b in back)))
    finally:
        farm.close()


def million(args, folder):
    farm = Farm(folder)
    farm.start_taskmanager()
    try:
        commands = ["true %d" % i for i in range(args.queued)]
        rss_before = psutil.Process(farm.taskmanager.pid).memory_info().rss
        with Client(farm.address, connect_timeout=10) as client:
            began = time.monotonic()
            batch_id = client.submit_batch(commands, label="million").id
            took = time.monotonic() - began
        del commands
        status = status_of(farm, batch_id)
        rss = psutil.Process(farm.taskmanager.pid).memory_info().rss
        size = sum(os.path.getsize(p) for p in folder.glob("taskmanager.sqlite*")
                   if not str(p).endswith(".lock"))
        print("million: %d tasks submitted in %.1f s = %.0f tasks/s; TaskManager RSS %.0f "
              "MiB with them queued (%.0f MiB before); database %.0f MiB; queued %d" % (
                  args.queued, took, args.queued / took, rss / 2**20, rss_before / 2**20,
                  size / 2**20, status["queued"]))
        worker = farm.start_worker("shell", slots=2)
        wait_until(lambda: finished(farm, batch_id) > 0, timeout=60, what="a first task")
        port = farm.address
        farm.stop(farm.taskmanager, signal.SIGKILL)
        restarted = time.monotonic()
        farm.start_taskmanager(bind=port)
        listening = time.monotonic() - restarted
        before = status_of(farm, batch_id, timeout=30)
        answered = time.monotonic() - restarted
        wait_until(lambda: finished(farm, batch_id) > before["finished"], timeout=120,
                   interval=0.05, what="a task after the restart")
        served = time.monotonic() - restarted
        rss = psutil.Process(farm.taskmanager.pid).memory_info().rss
        print("million: restart (SIGKILL) with %d queued: listening after %.2f s, the batch "
              "answered after %.2f s, a worker's next task done after %.2f s; RSS %.0f MiB"
              % (before["queued"], listening, answered, served, rss / 2**20))
        farm.stop(worker)
    finally:
        farm.close()


def sweep(folder, machines, count, seconds, slow=False, speculate=False, owner_after=None,
          owner_stays=None):
    folder.mkdir(parents=True)
    farm = Farm(folder, extra={"machines": {"m0": {"policy": {
        "owner_cpu_limit": 20.0, "max_load": 100.0, "on_owner": "suspend"}}}})
    farm.start_taskmanager()
    owner = None
    try:
        if owner_after is not None:       # sleeps, then burns a core for owner_stays s
            owner = subprocess.Popen([sys.executable, "-c", OWNER, str(owner_after),
                                      str(owner_stays)])
            farm.start_monitor("m0", owner.pid, interval=0.5)
        for index in range(machines):
            env = {"TASK_SECONDS": str(seconds * (4 if slow and index == 0 else 1))}
            saved = os.environ.get("TASK_SECONDS")
            os.environ.update(env)
            try:
                farm.start_worker("shell", slots=2, machine="m%d" % index)
            finally:
                if saved is None:
                    del os.environ["TASK_SECONDS"]
                else:
                    os.environ["TASK_SECONDS"] = saved
        with Client(farm.address, connect_timeout=10) as client:
            began = time.monotonic()
            batch = client.submit_batch(["sleep $TASK_SECONDS"], replicas=count,
                                        speculate=speculate)
            status = batch.wait(timeout=3600, interval=0.1)
            took = time.monotonic() - began
        assert status["ok"] == count, status
        return took, status["copies"], status["copies_won"]
    finally:
        if owner is not None:
            owner.kill()
            owner.wait()
        farm.close()


OWNER = """
import sys, time
time.sleep(float(sys.argv[1]))
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pass
"""


def compare(args, folder, part, configs):
    """Run each of ``configs`` (name -> sweep's keyword arguments) in turn for
    --rounds; print the medians against the first one's."""
    times = {name: [] for name in configs}
    copies = []
    for round_ in range(args.rounds):
        for index, (name, options) in enumerate(configs.items()):
            took, started, won = sweep(folder / ("%d-%d" % (round_, index)), count=args.sweep,
                                       seconds=args.task, **options)
            times[name].append(took)
            if options.get("speculate"):
                copies.append((started, won))
    base = statistics.median(next(iter(times.values())))
    for name, values in times.items():
        print("%s: %-40s %6.2f s (x%.2f of the first)"
              % (part, name, statistics.median(values), statistics.median(values) / base))
    print("%s: copies started / won per --speculate round: %s"
          % (part, ", ".join("%d/%d" % c for c in copies)))


def stragglers(args, folder):
    compare(args, folder, "stragglers", {
        "3 fast machines": dict(machines=3),
        "+ a 4x slower one": dict(machines=4, slow=True),
        "+ a 4x slower one, --speculate": dict(machines=4, slow=True, speculate=True)})


def owner(args, folder):
    back = dict(owner_after=args.sweep * args.task / 8 / 2,   # 8 slots: halfway through
                owner_stays=args.owner_stays)
    compare(args, folder, "owner", {
        "3 machines": dict(machines=3),
        "+ 1 whose owner returns halfway": dict(machines=4, **back),
        "+ 1 whose owner returns, --speculate": dict(machines=4, speculate=True, **back)})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append",
                        choices=("kill9", "million", "stragglers", "owner"))
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--queued", type=int, default=1000000)
    parser.add_argument("--sweep", type=int, default=300)
    parser.add_argument("--task", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--owner-stays", type=float, default=30.0)
    args = parser.parse_args()
    parts = args.only or ("kill9", "million", "stragglers", "owner")
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as folder:
        for part in parts:
            path = pathlib.Path(folder) / part
            path.mkdir()
            {"kill9": kill9, "million": million, "stragglers": stragglers,
             "owner": owner}[part](args, path)


if __name__ == "__main__":
    main()
