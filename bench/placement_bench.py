"""Load-aware placement against round robin, with a machine whose owner is busy.

    python bench/placement_bench.py [--tasks 16] [--work 3000000]

Two "machines" on this computer, each pinned to one CPU with taskset: machine A
(CPU 0) has an owner running two CPU-bound processes, machine B (CPU 1) is
idle. Each has a 1-slot shell worker; A has a monitor. The owner limit is set
high (95%) so A stays eligible and only the ranking differs: a batch of
CPU-bound tasks is run with load-aware placement (the default) and with
``--placement round-robin`` (each worker in turn, load ignored). Prints both
makespans and their ratio. (With the default policy A would get no work at all
while its owner is busy: that protects the owner, it is not measured here.)
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import yaml

from computefarm.client import Client

HOG = "while True: pass"


def spawn(args, log, cpu=None):
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return subprocess.Popen(prefix + [sys.executable] + args, stdout=log, stderr=log,
                            start_new_session=True)


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def makespan(placement, tasks, work, tmp):
    config = os.path.join(tmp, "farm.yaml")
    with open(config, "w") as stream:
        yaml.safe_dump({"load": {"monitor_interval": 0.5, "placement": placement,
                                 "policy": {"owner_cpu_limit": 95, "max_load": 1000,
                                            "on_owner": "continue"}}}, stream)
    ready = os.path.join(tmp, "ready-" + placement)
    log = open(os.path.join(tmp, placement + ".log"), "w")
    procs = [spawn(["-m", "computefarm.commands", "taskmanager", "--config", config,
                    "--bind", "tcp://127.0.0.1:0", "--ready-file", ready], log)]
    owner = subprocess.Popen(["taskset", "-c", "0", "sh", "-c", '%s -c "%s" & %s -c "%s" & wait'
                              % (sys.executable, HOG, sys.executable, HOG)],
                             stdout=log, stderr=log, start_new_session=True)
    hogs = [owner]
    owner_root = owner.pid
    try:
        wait_for(lambda: os.path.exists(ready))
        address = open(ready).read().strip()
        for machine, cpu in (("A", 0), ("B", 1)):
            procs.append(spawn(["-m", "computefarm.commands", "worker", "--taskmanager", address,
                                "--capability", "shell", "--slots", "1", "--machine",
                                machine], log, cpu=cpu))
        procs.append(spawn(["-m", "computefarm.commands", "monitor", "--config", config,
                            "--taskmanager", address, "--machine", "A", "--owner-scope",
                            str(owner_root)], log))
        with Client(address) as client:
            wait_for(lambda: len(client.status()["workers"]) == 2 and any(
                (m["owner_cpu"] or 0) > 40 for m in client.status()["machines"]))
            command = "python3 -c 'x = 0\nfor i in range(%d): x += i'" % work
            started = time.perf_counter()
            futures = [client.submit("shell", {"cmd": command}) for _ in range(tasks)]
            machines = [f.result(600).machine for f in futures]
            elapsed = time.perf_counter() - started
        return elapsed, {m: machines.count(m) for m in sorted(set(machines))}
    finally:
        os.killpg(owner.pid, signal.SIGKILL)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in hogs + procs:
            proc.wait(10)
        log.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--work", type=int, default=3000000, help="loop iterations per task")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        aware, spread_a = makespan("load", args.tasks, args.work, tmp)
        robin, spread_r = makespan("round-robin", args.tasks, args.work, tmp)
    print("load-aware:  %.2fs  tasks per machine %s" % (aware, spread_a))
    print("round robin: %.2fs  tasks per machine %s" % (robin, spread_r))
    print("makespan ratio load-aware / round robin: %.2f" % (aware / robin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
