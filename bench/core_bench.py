"""Core benchmark: no-op tasks through a real TaskManager and two workers.

    python bench/core_bench.py [--tasks 20000] [--latency 2000] [--shell 2000]
                               [--queued 100000] [--slots 2] [--rounds 3] [--curve]

Measures, on this machine:
  0. the limit: a bare pyzmq ROUTER broker with 2 DEALER workers and msgpack
     (bench/barebroker.py), no-op tasks/s and round trip, in the same run: each
     of --rounds rounds runs the brokers, Client and FarmExecutor in turn, and
     the figures are the medians (the machines here are shared and noisy). Two
     brokers: workers holding 64 tasks at once (pipelined: the wire's limit),
     and one at a time (ZeroMQ's guide's load-balancing broker, the setup of
     the FarmExecutor issue's table);
  1. python no-op tasks/s with many in flight: ``Client.submit`` with a payload
     pickled once, and ``FarmExecutor.submit(noop)`` as a user calls it; each
     as a share of each bare broker's rate;
  2. round-trip latency p50/p99 with one task in flight (both ways), and as a
     multiple of the bare broker's;
  3. shell ``true`` tasks/s against ``doit -n 2`` running the same command actions
     (``--shell 0``: not measured);
  4. TaskManager memory (RSS) with --queued requests waiting, and after they ran
     (``--queued 0``: not measured).
Everything runs on 127.0.0.1; every process started is stopped.
"""

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time

import cloudpickle
import psutil
from barebroker import BareBroker

from computefarm.client import Client, FarmExecutor, LocalFarm


def noop():
    return None


def python_throughput(client, count):
    payload = cloudpickle.dumps((noop, (), {}))
    started = time.perf_counter()
    futures = [client.submit("python", {"payload": payload}) for _ in range(count)]
    for future in futures:
        assert future.result(300).ok
    return count / (time.perf_counter() - started)


def executor_throughput(executor, count):
    started = time.perf_counter()
    futures = [executor.submit(noop) for _ in range(count)]
    for future in futures:
        future.result(300)
    return count / (time.perf_counter() - started)


def executor_latency(executor, count):
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        executor.submit(noop).result(60)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000


def cpu_seconds(farm):
    """CPU seconds used so far by each part of the farm (and this client)."""
    parts = {"client": psutil.Process()}
    parts["taskmanager"] = psutil.Process(farm.processes[0].pid)
    for index, proc in enumerate(farm.processes[1:]):
        parts["worker%d" % index] = psutil.Process(proc.pid)
    used = {}
    for name, proc in parts.items():
        times = proc.cpu_times()
        used[name] = times.user + times.system
        if name.startswith("worker"):
            used[name + " slots"] = sum(c.cpu_times().user + c.cpu_times().system
                                        for c in proc.children(recursive=True))
    return used


def latency(client, capability, request, count):
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        assert client.submit(capability, request).result(60).ok
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000


def shell_throughput(client, count):
    started = time.perf_counter()
    futures = [client.submit("shell", {"cmd": "true"}) for _ in range(count)]
    for future in futures:
        assert future.result(300).ok
    return count / (time.perf_counter() - started)


def doit_throughput(count):
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "dodo.py"), "w") as dodo:
            dodo.write("def task_noop():\n"
                       "    for i in range(%d):\n"
                       "        yield {'name': str(i), 'actions': ['true'], 'verbosity': 0}\n"
                       % count)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "doit", "-n", "2", "-P", "process",
                        "--db-file", os.path.join(tmp, ".doit.db")], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        return count / (time.perf_counter() - started)


def memory(count):
    """RSS of the TaskManager: idle, with ``count`` queued, after they all ran."""
    payload = cloudpickle.dumps((noop, (), {}))
    farm = LocalFarm(["python"], slots=1)
    farm.start()
    try:
        manager = psutil.Process(farm.processes[0].pid)
        with Client(farm.address) as client:
            baseline = manager.memory_info().rss
            waiting = set()
            client.on_notice = lambda level, code, text, ids: waiting.update(ids)
            futures = [client.submit("python", {"payload": payload}, requires={"pool": "late"},
                                     priority=i % 2) for i in range(count)]
            # One notice names every task of a submission batch; a second batch with
            # the same reason is not announced again, so wait for the TaskManager to idle.
            while not waiting or manager.cpu_percent(0.5) > 2:
                pass
            queued = manager.memory_info().rss
            farm.add_worker(["python"], 2, attributes=["pool=late"])
            for future in futures:
                future.result(600)
            manager.cpu_percent(None)
            while manager.cpu_percent(0.5) > 2:
                pass
            after = manager.memory_info().rss
        return baseline, queued, after
    finally:
        farm.stop()


def curve_config(directory):
    """A farm.yaml whose TaskManager and peers use keys made here (one admin key)."""
    import io

    import yaml

    from computefarm.commands import keys
    from computefarm.config import load_config
    keys.main(["--dir", directory, "init"], out=io.StringIO())
    keys.main(["--dir", directory, "add", "bench", "--role", "admin"], out=io.StringIO())
    path = os.path.join(directory, "farm.yaml")
    with open(path, "w") as stream:
        yaml.safe_dump({"logging": {"records": os.path.join(directory, "records.jsonl"),
                                    "cutelog": None},
                        "keys": {"server": os.path.join(directory, "taskmanager.key"),
                                 "server_secret": os.path.join(directory,
                                                               "taskmanager.key_secret"),
                                 "authorized": os.path.join(directory, "authorized"),
                                 "secret": os.path.join(directory, "peers",
                                                        "bench.key_secret")}}, stream)
    return path, load_config(path).keys.peer_curve()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--latency", type=int, default=2000)
    parser.add_argument("--shell", type=int, default=2000)
    parser.add_argument("--queued", type=int, default=100000)
    parser.add_argument("--slots", type=int, default=2, help="slots of each of the 2 workers")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the bare broker, Client and FarmExecutor, alternated")
    parser.add_argument("--curve", action="store_true",
                        help="keys made for the run with farm-keys (else the embedded "
                             "farm's: this user's local keys; CURVE either way)")
    args = parser.parse_args(argv)
    print("machine: %d cores, Python %s, CURVE with %s, medians of %d alternated rounds"
          % (os.cpu_count(), sys.version.split()[0], "keys made by farm-keys" if args.curve
             else "this user's local keys", args.rounds))
    keydir = tempfile.TemporaryDirectory()
    config, curve = (curve_config(keydir.name) if args.curve else (None, None))
    broker = BareBroker(cloudpickle.dumps((noop, (), {})))
    lockstep = BareBroker(cloudpickle.dumps((noop, (), {})), credit=1)
    farm = LocalFarm(["python", "shell"], slots=args.slots, workers=2, config=config)
    farm.start()
    median = statistics.median
    try:
        with Client(farm.address, curve=curve) as client, \
                FarmExecutor(farm.address, curve=curve) as executor:
            broker.throughput(1000)                    # warm up: slots, caches, connections
            lockstep.throughput(1000)
            python_throughput(client, 1000)
            executor_throughput(executor, 1000)
            rates = {"bare": [], "lockstep": [], "client": [], "executor": []}
            used = collections.Counter()
            for _ in range(args.rounds):               # each round all three, in turn
                rates["bare"].append(broker.throughput(args.tasks))
                rates["lockstep"].append(lockstep.throughput(args.tasks))
                before = cpu_seconds(farm)
                rates["client"].append(python_throughput(client, args.tasks))
                after = cpu_seconds(farm)
                used.update({name: after[name] - before[name] for name in after})
                rates["executor"].append(executor_throughput(executor, args.tasks))
            bare, lock = median(rates["bare"]), median(rates["lockstep"])
            print("bare pyzmq broker, 2 DEALER workers, msgpack: %.0f tasks/s" % bare)
            print("bare broker, one task a worker at a time (the issue's setup): %.0f tasks/s"
                  % lock)

            def shares(rate):
                return "%.0f%% of the bare broker, %.0f%% of the one a task at a time" % (
                    100.0 * rate / bare, 100.0 * rate / lock)
            print("python no-op: %.0f tasks/s (%d tasks, 2 workers x %d slot(s)), %s"
                  % (median(rates["client"]), args.tasks, args.slots,
                     shares(median(rates["client"]))))
            print("  CPU microseconds per task: " + ", ".join(
                "%s %.0f" % (name, used[name] * 1e6 / args.tasks / args.rounds)
                for name in sorted(used)))
            print("FarmExecutor.submit(noop): %.0f tasks/s, %s"
                  % (median(rates["executor"]), shares(median(rates["executor"]))))
            payload = cloudpickle.dumps((noop, (), {}))
            trips = {"bare": [], "client": [], "executor": []}
            for _ in range(args.rounds):
                trips["bare"].append(broker.latency(args.latency))
                trips["client"].append(latency(client, "python", {"payload": payload},
                                               args.latency))
                trips["executor"].append(executor_latency(executor, args.latency))
            p50s = {name: median(p50 for p50, _ in runs) for name, runs in trips.items()}
            p99s = {name: median(p99 for _, p99 in runs) for name, runs in trips.items()}
            print("bare broker round trip, one in flight: p50 %.3f ms, p99 %.3f ms"
                  % (p50s["bare"], p99s["bare"]))
            for name, label in (("client", "python"), ("executor", "FarmExecutor")):
                print("%s round trip, one in flight: p50 %.3f ms, p99 %.3f ms, p50 %.1fx the "
                      "bare broker's" % (label, p50s[name], p99s[name],
                                         p50s[name] / p50s["bare"]))
            p50, p99 = latency(client, "shell", {"cmd": "true"}, min(args.latency, 500))
            print("shell `true` round trip, one in flight: p50 %.3f ms, p99 %.3f ms" % (p50, p99))
            shell = shell_throughput(client, args.shell) if args.shell else None
    finally:
        farm.stop()
        broker.close()
        lockstep.close()
    if args.shell:
        doit = doit_throughput(args.shell)
        print("shell `true`: farm %.0f tasks/s, doit -n 2 %.0f tasks/s: %.0f%% of doit"
              % (shell, doit, 100.0 * shell / doit))
    if args.queued:
        base, queued, after = memory(args.queued)
        mib = 1024.0 * 1024.0
        print("TaskManager RSS: %.1f MiB idle, %.1f MiB with %d queued, %.1f MiB after they ran"
              % (base / mib, queued / mib, args.queued, after / mib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
