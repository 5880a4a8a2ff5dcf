"""Faults the farm must survive, each run again and again: the hardening figures.

    python bench/faults_bench.py [--runs 10] [--tasks 200] [--partitions 5,30,120]
                                 [--faults kill9,sigterm,partition,fuzz,local-user]

Every run is a fresh ``majordomo run`` of a build of --tasks tasks (each appends
its pid to a file of its own, sleeps 0.2 s and writes its target) on a farm of
two workers with 4 slots each, started in its own folder:

- kill9: the TaskManager is killed with SIGKILL once a third of the tasks ran,
  and started again on the same port 5 s later;
- sigterm: the same with SIGTERM (a handover: running tasks go on);
- partition: the TaskManager, majordomo and each worker on hosts of their own
  (network namespaces on a bridge, no default route); one worker's host is cut
  off with iptables for S seconds once a third of the tasks ran, then healed.

For each it prints how many runs ended with majordomo's exit code 0, and over
all runs the targets missing (lost), the tasks that ran more than once, and the
results the client was sent twice. Two more, without majordomo:

- fuzz: 12,000 messages made from the wire's schemas with wrong types and sizes
  (tests/wirefuzz.py, a new seed each run), from authorized client, worker and
  monitor keys, while a client runs --tasks tasks: the TaskManager's peak RSS,
  its longest loop iteration, its internal errors, and whether the build was right;
- local-user: user ``nobody`` tries to run a task on a farm without keys
  (tests/test_taskmanager_gate.py's test, run again): tasks run as you. After a partition longer than the peer
timeout the cut-off worker's tasks are rerun elsewhere (that is how the run goes
on); their late results must still be taken once.
"""

import argparse
import io
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import zmq

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from computefarm.commands import keys  # noqa: E402

DODO = '''
import json, os
DOIT_CONFIG = {"verbosity": 0}

def task_step():
    for i in range(%(tasks)d):
        yield {"name": str(i), "targets": ["out/%%d" %% i],
               "actions": ["echo $$ >> runs/%%d; sleep 0.2; echo %%d > out/%%d" %% (i, i, i)]}
'''


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def command(name):
    return [sys.executable, "-m", "computefarm.commands", name]


class Run:
    """One build on a fresh farm in folder ``where``."""

    def __init__(self, where, tasks, host_of=None, tm_address="127.0.0.1"):
        self.dir = where
        self.tasks = tasks
        self.host_of = host_of or {}          # role -> hosts.Host (partition runs)
        self.project = where / "project"
        (self.project / "runs").mkdir(parents=True)
        (self.project / "out").mkdir()
        (self.project / "dodo.py").write_text(DODO % {"tasks": tasks})
        self.address = "tcp://%s:%d" % (tm_address, free_port() if tm_address == "127.0.0.1"
                                        else 5555)
        common = {"taskmanager": {"address": self.address},
                  "logging": {"records": str(where / "records.jsonl"), "cutelog": None}}
        self.configs = {role: dict(common) for role in ("tm", "worker", "client")}
        if tm_address != "127.0.0.1":       # beyond loopback: keys of the farm's own
            keydir = where / "keys"
            keys.main(["--dir", str(keydir), "init"], out=io.StringIO())
            self.configs["tm"]["keys"] = {
                "server": str(keydir / "taskmanager.key"),
                "server_secret": str(keydir / "taskmanager.key_secret"),
                "authorized": str(keydir / "authorized")}
            for role in ("worker", "client"):
                keys.main(["--dir", str(keydir), "add", role, "--role", role],
                          out=io.StringIO())
                self.configs[role]["keys"] = {
                    "server": str(keydir / "taskmanager.key"),
                    "secret": str(keydir / "peers" / ("%s.key_secret" % role))}
        for role, config in self.configs.items():
            (where / ("%s.yaml" % role)).write_text(json.dumps(config))
        (self.project / "farm.yaml").write_text(json.dumps(self.configs["client"]))
        self.processes = []
        self.taskmanager = None

    def spawn(self, role, argv, log):
        host = self.host_of.get(role)
        if host is not None:
            argv = host.argv(argv)
            host.check_isolated()
        stream = open(self.dir / log, "a")
        proc = subprocess.Popen(argv, cwd=self.project, stdout=stream, stderr=stream,
                                start_new_session=True)
        stream.close()
        self.processes.append(proc)
        return proc

    def start_taskmanager(self):
        ready = self.dir / "ready"
        if ready.exists():
            ready.unlink()
        self.taskmanager = self.spawn("tm", command("taskmanager") + [
            "--config", str(self.dir / "tm.yaml"), "--bind", self.address,
            "--ready-file", str(ready)], "taskmanager.log")
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.taskmanager.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the TaskManager did not start: see %s" % self.dir)
            time.sleep(0.05)

    def start_workers(self):
        """Both workers, once the TaskManager has welcomed them (a build started
        before would find no worker of its capability and stop at once)."""
        ready = [self.dir / ("worker%d.ready" % n) for n in (1, 2)]
        workers = [self.spawn("worker%d" % n, command("worker") + [
            "--config", str(self.dir / "worker.yaml"), "--taskmanager", self.address,
            "--capability", "shell", "--slots", "4", "--machine", "w%d" % n,
            "--ready-file", str(path)], "worker%d.log" % n) for n, path in zip((1, 2), ready)]
        deadline = time.monotonic() + 30
        while not all(path.exists() for path in ready):
            if any(w.poll() is not None for w in workers) or time.monotonic() > deadline:
                raise RuntimeError("the workers did not start; the last lines of the logs:"
                                   "\n%s" % self.tails())
            time.sleep(0.05)

    def start_build(self):
        return self.spawn("client", [sys.executable, "-m", "computefarm.majordomo", "run",
                                     "--taskmanager", self.address], "majordomo.log")

    def ran(self):
        return len(os.listdir(self.project / "runs"))

    def wait_ran(self, count, build, timeout=120):
        deadline = time.monotonic() + timeout
        while self.ran() < count:
            if build.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the build %s after %d of %d tasks; the last lines of "
                                   "its logs:\n%s" % (
                                       "stalled" if build.poll() is None else "stopped",
                                       self.ran(), count, self.tails()))
            time.sleep(0.02)

    def tails(self, lines=15):
        """The end of each process's log (the folder goes with the benchmark)."""
        return "\n".join("== %s\n%s" % (log.name, "\n".join(
            log.read_text(errors="replace").splitlines()[-lines:]))
            for log in sorted(self.dir.glob("*.log")))

    def outcome(self, build, timeout=600):
        try:
            code = build.wait(timeout)
        except subprocess.TimeoutExpired:
            code = "timeout"
        runs = [len((self.project / "runs" / str(i)).read_text().split())
                if (self.project / "runs" / str(i)).exists() else 0
                for i in range(self.tasks)]
        lost = sum(not (self.project / "out" / str(i)).exists() for i in range(self.tasks))
        duplicates = 0
        log = (self.dir / "majordomo.log").read_text()
        for line in log.splitlines():                   # majordomo says it at the end
            if "duplicate result(s)" in line:
                duplicates += int(line.split("sent ")[1].split()[0])
        return {"rc": code, "lost": lost, "twice": sum(r > 1 for r in runs),
                "never": sum(r == 0 for r in runs), "duplicates": duplicates}

    def close(self):
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def restart(where, tasks, sig):
    run = Run(where, tasks)
    try:
        run.start_taskmanager()
        run.start_workers()
        build = run.start_build()
        run.wait_ran(tasks // 3, build)
        run.taskmanager.send_signal(sig)
        run.taskmanager.wait(30)
        time.sleep(5.0)                     # the outage: the TaskManager is away 5 s
        run.start_taskmanager()
        return run.outcome(build)
    finally:
        run.close()


def partition(where, tasks, seconds, network):
    hosts = network.hosts
    run = Run(where, tasks, host_of={"tm": hosts["tm"], "client": hosts["laptop"],
                                     "worker1": hosts["w1"], "worker2": hosts["w2"]},
              tm_address=hosts["tm"].address)
    try:
        run.start_taskmanager()
        run.start_workers()
        build = run.start_build()
        run.wait_ran(tasks // 3, build)
        hosts["w1"].partition()
        time.sleep(seconds)                 # the partition itself
        hosts["w1"].heal()
        return run.outcome(build)
    finally:
        if hosts["w1"].partitioned:
            hosts["w1"].heal()
        run.close()


def fuzz(where, tasks, seed):
    import random

    import psutil
    from support import SecureFarm
    from wirefuzz import Fuzzer
    keys_of = {"client": "fc", "worker": "fw", "monitor": "fm"}
    farm = SecureFarm(where, peers=(("w1", "worker"), ("c1", "client"), ("fc", "client"),
                                    ("fw", "worker"), ("fm", "monitor")),
                      max_queued_bytes_per_client=32 * 1024 * 1024)
    try:
        farm.start_taskmanager()
        farm.start_worker("shell", slots=2, config=farm.peer_config("w1"))
        client = farm.secure_client("c1", on_notice=lambda *args: None)
        build = [client.submit("shell", {"cmd": "sleep 0.02; echo %d" % i})
                 for i in range(tasks)]
        peers = {role: farm.raw_peer(farm.curve(key)) for role, key in keys_of.items()}
        manager = psutil.Process(farm.taskmanager.pid)
        fuzzer, rng, peak = Fuzzer(random.Random(seed), bad=0.02), random.Random(seed), 0
        for n in range(12000):
            role = rng.choice(sorted(peers))
            try:
                peers[role].send(fuzzer.message(role)[1], zmq.NOBLOCK)
            except zmq.Again:
                pass
            for peer in peers.values():
                while peer.poll(0):
                    peer.recv()
            if n % 200 == 0:
                peak = max(peak, manager.memory_info().rss)
        results = [future.result(300) for future in build]
        status = client.status()
        peak = max(peak, manager.memory_info().rss)
        for peer in peers.values():
            peer.close(0)
        return {"alive": farm.taskmanager.poll() is None, "rss": peak,
                "loop_ms": status["loop"]["longest_ms"], "bugs": status["internal_errors"],
                "loop_cpu_ms": status["loop"]["longest_cpu_ms"],
                "refused": status["refused_messages"],
                "right": [r.stdout for r in results] == [[str(i)] for i in range(tasks)]}
    finally:
        farm.close()


def local_user():
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_taskmanager_gate.py"), "-k",
                           "another_local_user"], cwd=ROOT, capture_output=True, text=True)
    return done.returncode == 0


def summary(label, outcomes):
    ok = sum(o["rc"] == 0 for o in outcomes)
    total = {key: sum(o[key] for o in outcomes) for key in ("lost", "twice", "never",
                                                            "duplicates")}
    print("%-22s rc 0 in %d of %d; lost %d, ran twice %d, never ran %d, results twice %d"
          % (label, ok, len(outcomes), total["lost"], total["twice"], total["never"],
             total["duplicates"]), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--faults", default="kill9,sigterm,fuzz,local-user,partition")
    parser.add_argument("--partitions", default="5,30,120",
                        help="seconds each partition lasts, comma separated")
    args = parser.parse_args(argv)
    faults = args.faults.split(",")
    print("machine: %d cores, Python %s; %d runs of a %d-task build each"
          % (os.cpu_count(), sys.version.split()[0], args.runs, args.tasks), flush=True)
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        tmp = pathlib.Path(tmp)
        for name, sig in (("kill9", signal.SIGKILL), ("sigterm", signal.SIGTERM)):
            if name in faults:
                summary("%s, back in 5 s" % name, [
                    restart(tmp / ("%s-%d" % (name, n)), args.tasks, sig)
                    for n in range(args.runs)])
        if "fuzz" in faults:
            outcomes = [fuzz(tmp / ("fuzz-%d" % n), args.tasks, n) for n in range(args.runs)]
            print("%-22s alive in %d of %d, build right in %d; peak RSS %d MB (max), longest "
                  "loop %.0f ms (max), %.0f ms (median), in CPU time %.0f ms (max); internal "
                  "errors %d; refused %d messages a run (median)" % (
                      "fuzz, 12,000 messages", sum(o["alive"] for o in outcomes),
                      len(outcomes), sum(o["right"] for o in outcomes),
                      max(o["rss"] for o in outcomes) // (1 << 20),
                      max(o["loop_ms"] for o in outcomes),
                      statistics.median(o["loop_ms"] for o in outcomes),
                      max(o["loop_cpu_ms"] for o in outcomes),
                      sum(o["bugs"] for o in outcomes),
                      statistics.median(o["refused"] for o in outcomes)), flush=True)
        if "local-user" in faults:
            refused = sum(local_user() for _ in range(args.runs))
            print("%-22s refused, 0 tasks run, in %d of %d" % ("another local user", refused,
                                                               args.runs), flush=True)
        if "partition" in faults:
            import hosts
            reason = hosts.available()
            if reason is not None:
                print("partition: cannot make hosts: %s" % reason)
                return 1
            network = hosts.Network()
            try:
                for name in ("tm", "laptop", "w1", "w2"):
                    network.add(name)
                for seconds in [float(s) for s in args.partitions.split(",")]:
                    summary("partition %gs" % seconds, [
                        partition(tmp / ("partition-%g-%d" % (seconds, n)), args.tasks,
                                  seconds, network) for n in range(args.runs)])
            finally:
                network.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
