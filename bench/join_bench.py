"""Joining and pilots, timed on real processes (needs root: network namespaces, SLURM).

    python bench/join_bench.py [--only join|slurm ...] [--rounds 5] [--tasks 200]

  join   a TaskManager on one network-namespace host, a client waiting with one
         task on another, and `farm-join TOKEN` started on a third host that does
         not see the key directory: the time from farm-join starting to the task
         running there. Median, min and max of --rounds, each with a new network,
         new keys and a new invitation.
  slurm  a single-node SLURM cluster (tests/cluster.py) and farm-factory (max 8
         pilots of one slot, idle_exit 3 s) with no pilot running, then --tasks
         short tasks at once: the time until 8 pilots are in SLURM's queue, until
         the first task runs, until all are done, and from the last result until
         every pilot has left SLURM's queue. Median of --rounds.
"""

import argparse
import io
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import cluster  # noqa: E402
import hosts  # noqa: E402
import yaml  # noqa: E402
from support import SecureFarm, wait_until  # noqa: E402

from computefarm.commands import keys  # noqa: E402


def join_round(folder):
    with hosts.lan("tm", "laptop", "newbox") as lan:
        tm, laptop, newbox = lan.hosts["tm"], lan.hosts["laptop"], lan.hosts["newbox"]
        farm = SecureFarm(folder, peers=(("c1", "client"),))
        client = None
        try:
            farm.start_taskmanager(bind="tcp://%s:0" % tm.address, host=tm)
            out = io.StringIO()
            keys.main(["--dir", str(farm.keydir), "invite", "--address", farm.address,
                       "--capability", "shell"], out=out)
            marks = folder / "marks"
            marks.mkdir()
            client = laptop.popen(hosts.python(str(ROOT / "tests" / "netclient.py"),
                                               farm.address, "--mark", str(marks)),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=dict(os.environ, **farm.curve_env("c1")))
            newbox.hide(farm.keydir)
            home = folder / "newbox"
            started = time.monotonic()
            farm.spawn("farm-join", [out.getvalue().strip(), "--dir", str(home / "keys"),
                                     "--config", str(home / "farm.yaml")], "join", newbox)
            wait_until(lambda: os.listdir(marks), timeout=60, what="the first task")
            return time.monotonic() - started
        finally:
            if client is not None:
                client.kill()
                client.wait()
            farm.close()


def slurm_round(folder, slurm, tasks):
    farm = SecureFarm(folder, peers=(("c1", "client"), ("factory", "client"),
                                     ("pilots", "worker")))
    try:
        farm.start_taskmanager()
        name = "cf-bench-%d" % time.monotonic_ns()
        config = folder / "factory.yaml"
        config.write_text(yaml.safe_dump({
            "taskmanager": {"address": farm.address},
            "keys": {"server": str(farm.keydir / "taskmanager.key"),
                     "secret": str(farm.keydir / "peers" / "factory.key_secret")},
            "factory": {"backend": "slurm", "name": name, "max": 8, "interval": 0.5,
                        "idle_exit": 3.0, "pilot_config": str(farm.peer_config("pilots")),
                        "workdir": str(folder / "factory"), "slurm": {"conf": slurm.conf}}}))
        client = farm.secure_client("c1")
        futures = [client.submit("shell", {"cmd": "sleep 0.05; echo %d" % i})
                   for i in range(tasks)]
        started = time.monotonic()
        farm.spawn("farm-factory", ["--config", str(config)], "factory")
        wait_until(lambda: len(slurm.jobs(name)) >= 8, timeout=60, what="8 pilots")
        queued = time.monotonic() - started
        wait_until(lambda: client.status()["running"] or any(f.done() for f in futures),
                   timeout=120, what="a first task", interval=0.05)
        first = time.monotonic() - started
        results = [f.result(600) for f in futures]
        assert all(r.ok for r in results)
        done = time.monotonic()
        wait_until(lambda: not slurm.jobs(name), timeout=120, what="pilots gone")
        return queued, first, done - started, time.monotonic() - done
    finally:
        farm.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=("join", "slurm"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    only = args.only or ("join", "slurm")
    figures = {}
    with tempfile.TemporaryDirectory(prefix="cf-join-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        if "join" in only:
            times = [join_round(tmp / ("join-%d" % i)) for i in range(args.rounds)]
            figures["join"] = {"median_s": round(statistics.median(times), 2),
                               "min_s": round(min(times), 2), "max_s": round(max(times), 2)}
            print("farm-join to its first task: median %.2f s (min %.2f, max %.2f) over %d"
                  % (statistics.median(times), min(times), max(times), args.rounds))
        if "slurm" in only:
            reason = cluster.available()
            if reason:
                sys.exit("slurm: %s" % reason)
            slurm = cluster.SlurmCluster(tmp / "slurm")
            try:
                slurm.start()
                rounds = [slurm_round(tmp / ("slurm-%d" % i), slurm, args.tasks)
                          for i in range(args.rounds)]
            finally:
                slurm.stop()
            names = ("8 pilots queued", "first task", "all done", "pilots gone after")
            medians = [statistics.median(r[i] for r in rounds) for i in range(4)]
            figures["slurm"] = {n: round(m, 2) for n, m in zip(names, medians)}
            print("SLURM, %d tasks, no pilot running: %s (medians of %d, s)" % (
                args.tasks, ", ".join("%s %.2f" % item for item in zip(names, medians)),
                args.rounds))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
