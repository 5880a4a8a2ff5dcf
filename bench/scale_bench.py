"""Scale benchmark: a TaskManager under 1,000 workers, 100 constraint groups and a burst.

    python bench/scale_bench.py [--only scale|rate|burst ...] [--workers 1000] [--slots 8]
        [--tasks 100000] [--rate-tasks 20000] [--repeat 3] [--burst 1000000]
        [--burst-workers 200] [--procs 4] [--chunk 1000] [--users 1] [--clients N]
        [--deadline 600] [--baseline DIR]

Each run starts a real TaskManager (`python -m computefarm.commands taskmanager`, or
`computefarm.cli` in an older tree given with --baseline DIR) on 127.0.0.1 port 0. Its
peers are light, so the figures are the TaskManager's: --procs processes hold the workers
as DEALERs in one poll loop each (HELLO with `slots` and `shell` attributes rack r0..r9,
version 1.0/2.0/3.1; HEARTBEAT after an interval of sending nothing; HELLO again on
RECONNECT; RESULT ok at once for each dispatched task; at nice 10, since they stand for
other machines but share this one's cores); one client sends SUBMITs of
--chunk tasks and, expired, resubmits what has no result (--clients N: N clients take
turns, each saying hello as user uK, K = its number modulo --users, with the local admin
key: fair share's cost against that of more clients). All speak this tree's wire module.

  scale  --workers x --slots register; --tasks tasks over 100 `requires` maps drain:
         tasks/s from first SUBMIT to last RESULT; the TaskManager's longest loop and
         expired peers (its STATUS `loop.longest_ms`, `expired`, else "n/a"); RECONNECTs;
         the longest silence from the TaskManager a worker or the client saw (heartbeat
         1 s, expiry after 3 s; includes the light peers' own delays on 2 shared cores).
  rate   the same drain, --rate-tasks unconstrained, with 2 workers and with --workers,
         alternated --repeat times: medians and their ratio (goal >= 80%).
  burst  --burst tasks with no worker: TaskManager RSS idle, peak while they arrive, once
         STATUS counts all queued; the client's longest silence; --burst-workers drain
         them; RSS once the TaskManager idles again.
"""

import argparse
import collections
import json
import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from computefarm import localkeys  # noqa: E402
from computefarm.wire import protocol  # noqa: E402  (this tree's wire format, always)
from computefarm.wire.protocol import Msg  # noqa: E402

RACKS = ["r%d" % i for i in range(10)]
VERSIONS = ["1.0", "2.0", "3.1"]
RANGES = [">=2", "<3", "!=1.0", ">1.0", "<=2.0", "!=3.1"]
BODY = protocol.pack_body({"cmd": "true"})
HWM = 100000          # messages queued per socket, as the farm's own peers
TICK = 0.05           # seconds between heartbeat checks in a worker process
WELCOME_WAIT = 180    # seconds for all workers to be welcomed


def constraint_groups():
    """100 distinct `requires` maps, each met by some worker once there are >= 30."""
    groups = [{}] + [{"version": v} for v in VERSIONS + RANGES]
    for rack in RACKS:
        groups += [{"rack": rack}] + [{"rack": rack, "version": v} for v in VERSIONS + RANGES[:5]]
    return groups


class LightPeer:
    """One DEALER speaking the protocol by hand: HELLO until welcomed, HEARTBEAT after an
    interval of sending nothing, HELLO again on RECONNECT; notes its longest silence."""

    def __init__(self, context, address, identity, hello, curve=None):
        self.identity, self.hello = identity, hello
        self.socket = context.socket(zmq.DEALER)
        for option, value in ((zmq.IDENTITY, identity.encode()), (zmq.LINGER, 0),
                              (zmq.SNDHWM, HWM), (zmq.RCVHWM, HWM)):
            self.socket.setsockopt(option, value)
        if curve:                     # (public, secret, server public): as a farm's peers
            (self.socket.curve_publickey, self.socket.curve_secretkey,
             self.socket.curve_serverkey) = curve
        self.socket.connect(address)
        self.last_sent = 0.0          # a HELLO not sent yet goes at the next tick
        self.interval, self.welcomed, self.reconnects = 1.0, False, 0
        self.last_recv, self.longest_gap = None, 0.0
        self.send(Msg.HELLO, hello)

    def send(self, mtype, body):
        try:
            protocol.send(self.socket, mtype, body)
        except zmq.Again:             # not connected yet (its handshake): tick sends again
            return
        self.last_sent = time.monotonic()

    def receive(self):
        """Messages that arrived, but HEARTBEATs; RECONNECT is answered here."""
        messages = []
        while True:
            try:
                mtype, body = protocol.recv_dealer(self.socket)
            except zmq.Again:
                return messages
            except protocol.ProtocolError:
                continue
            now = time.monotonic()
            if self.last_recv is not None:
                self.longest_gap = max(self.longest_gap, now - self.last_recv)
            self.last_recv = now
            if mtype == Msg.WELCOME:
                self.interval, self.welcomed = float(body["heartbeat"]), True
            elif mtype == Msg.RECONNECT:     # the TaskManager forgot us: we were expired
                self.reconnects += 1
                self.welcomed = False
                self.send(Msg.HELLO, self.hello)
            if mtype != Msg.HEARTBEAT:
                messages.append((mtype, body))

    def tick(self, now):
        if now - self.last_sent >= self.interval:
            self.send(*((Msg.HEARTBEAT, {}) if self.welcomed else (Msg.HELLO, self.hello)))

    def gap(self, now):
        """The longest silence from the TaskManager so far, the current one included."""
        return max(self.longest_gap, now - self.last_recv) if self.last_recv else 0.0


def worker_group(address, first, count, slots, conn, lifetime, curve=None):
    """A worker process: light workers first..first+count-1 until "stop" on `conn`.
    At low priority: they stand for other machines, and share these 2 cores with
    the TaskManager under test."""
    os.nice(int(os.environ.get("BENCH_NICE", "10")))
    context, poller, peers = zmq.Context(), zmq.Poller(), {}
    for index in range(first, first + count):
        identity = "worker-bench-%d-%s" % (index, secrets.token_hex(3))
        attributes = {"rack": RACKS[index % 10], "version": VERSIONS[index // 10 % 3]}
        peer = LightPeer(context, address, identity, {
            "role": "worker", "id": identity, "host": "bench", "machine": "bench-%d" % index,
            "pid": os.getpid(), "version": "bench", "slots": slots, "running": [],
            "capabilities": {"shell": attributes}}, curve)
        peer.outbox = {}              # results sent, not yet ACKed: resent after a WELCOME
        peers[peer.socket] = peer
        poller.register(peer.socket, zmq.POLLIN)
    poller.register(conn.fileno(), zmq.POLLIN)
    deadline, next_tick, running = time.monotonic() + lifetime, 0.0, True
    while running and time.monotonic() < deadline:
        for sock, _ in poller.poll(100):
            if sock == conn.fileno():
                try:
                    running = conn.recv() != "stop"
                except EOFError:                  # the benchmark is gone
                    running = False
                now, every = time.monotonic(), peers.values()
                if running:
                    conn.send({"welcomed": sum(p.welcomed for p in every),
                               "gap": max(p.gap(now) for p in every),
                               "reconnects": sum(p.reconnects for p in every)})
                continue
            peer = peers[sock]
            for mtype, body in peer.receive():
                if mtype == Msg.DISPATCH:
                    for task_id in body.get("acks") or ():
                        peer.outbox.pop(task_id, None)
                    results = [{"id": task["id"], "attempt": task["attempt"], "status": "ok",
                                "exit_code": 0} for task in body["tasks"]]
                    peer.outbox.update((result["id"], result) for result in results)
                    peer.send(Msg.RESULT, {"results": results})
                elif mtype == Msg.ACK:
                    for task_id in body["ids"]:
                        peer.outbox.pop(task_id, None)
                elif mtype == Msg.WELCOME and peer.outbox:
                    peer.send(Msg.RESULT, {"results": list(peer.outbox.values())})
        now = time.monotonic()
        if now >= next_tick:
            for peer in peers.values():
                peer.tick(now)
            next_tick = now + TICK
    for peer in peers.values():
        if peer.welcomed:
            peer.send(Msg.BYE, {"reason": "benchmark over"})
        peer.socket.close(linger=500)
    context.term()


class Workers:
    """`count` light workers spread over up to `procs` OS processes."""

    def __init__(self, address, count, slots, procs, lifetime, curve=None):
        spawn = multiprocessing.get_context("spawn")
        share = -(-count // min(procs, count))
        self.groups = []
        for first in range(0, count, share):
            parent, child = spawn.Pipe()
            proc = spawn.Process(target=worker_group, daemon=True, args=(
                address, first, min(share, count - first), slots, child, lifetime, curve))
            proc.start()
            child.close()
            self.groups.append((proc, parent))

    def stats(self):
        """Welcomed workers, the longest silence any saw, RECONNECTs they got."""
        answers = []
        for proc, conn in self.groups:
            conn.send("stats")
            if not conn.poll(10):
                raise RuntimeError("worker process %d did not answer in 10 s" % proc.pid)
            answers.append(conn.recv())
        return {key: (max if key == "gap" else sum)(a[key] for a in answers)
                for key in ("welcomed", "gap", "reconnects")}

    def stop(self):
        for _, conn in self.groups:
            try:
                conn.send("stop")
            except OSError:
                pass
        for proc, conn in self.groups:
            for end in (lambda: None, proc.terminate, proc.kill):   # then SIGTERM, SIGKILL
                end()
                proc.join(5)
                if not proc.is_alive():
                    break
            conn.close()


class TaskManagerProcess:
    """A TaskManager from the tree `source`; its farm.yaml, records and log in `workdir`."""

    def __init__(self, source, workdir):
        config, ready = os.path.join(workdir, "farm.yaml"), os.path.join(workdir, "ready")
        with open(config, "w") as stream:     # JSON is YAML
            json.dump({"taskmanager": {"max_queued_per_client": 2000000},
                       "logging": {"records": os.path.join(workdir, "records.jsonl"),
                                   "cutelog": None}}, stream)
        new = os.path.exists(os.path.join(source, "computefarm", "commands", "__main__.py"))
        self.logfile = os.path.join(workdir, "taskmanager.log")
        with open(self.logfile, "wb") as log:    # cwd is workdir, so PYTHONPATH comes first
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "computefarm.commands" if new else "computefarm.cli",
                 "taskmanager", "--config", config, "--bind", "tcp://127.0.0.1:0",
                 "--ready-file", ready], cwd=workdir, env=dict(os.environ, PYTHONPATH=source),
                stdout=log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError("TaskManager not listening after 30 s: " + self.logfile)
            time.sleep(0.05)
        with open(ready) as stream:
            self.address = stream.read().strip()
        # since the hardening a TaskManager on loopback speaks CURVE with this user's
        # local keys, as the embedded farm does; the first release spoke none
        keyed = os.path.exists(os.path.join(source, "computefarm", "localkeys.py"))
        self.curve = localkeys.peer_curve(self.address) if keyed else None

    def check(self):
        if self.proc.poll() is not None:
            with open(self.logfile, errors="replace") as stream:
                tail = stream.read()[-1500:]
            raise RuntimeError("TaskManager exited (%s):\n%s" % (self.proc.returncode, tail))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Run:
    """One TaskManager and a light client that submits, counts each task's result once
    and asks for STATUS; light workers come with `add_workers`."""

    def __init__(self, source, root, args):
        self.args, self.pools, self.sample = args, [], lambda: None
        self.tm = TaskManagerProcess(source, tempfile.mkdtemp(dir=root))
        self.context, self.poller = zmq.Context(), zmq.Poller()
        try:                          # a run that cannot start stops its TaskManager
            self.clients = []         # one per user (--users): task n goes to n % users
            users = max(1, getattr(args, "users", 1))
            for number in range(max(users, getattr(args, "clients", None) or 1)):
                identity = "client-bench-%d-%s" % (os.getpid(), secrets.token_hex(3))
                hello = {"role": "client", "id": identity, "host": "bench",
                         "machine": "bench-client"}
                if users > 1:             # (a tree before fair share refuses the field)
                    hello["user"] = "u%d" % (number % users)
                client = LightPeer(self.context, self.tm.address, identity, hello,
                                   self.tm.curve)
                self.poller.register(client.socket, zmq.POLLIN)
                self.clients.append(client)
            self.client = self.clients[0]
            self.state, self.asking, self.expired = None, False, False
            self.expect(0, [{}])
            if not self.wait(lambda: all(c.welcomed for c in self.clients), 30):
                raise RuntimeError("the clients were not welcomed in 30 s")
        except BaseException:
            self.close()
            raise

    def expect(self, count, groups):
        self.seen, self.results, self.last_result, self.sent = bytearray(count), 0, None, 0
        self.statuses, self.groups = collections.Counter(), groups

    def pump(self, timeout):
        ready = dict(self.poller.poll(timeout * 1000))
        for client in self.clients:
            if client.socket not in ready:
                continue
            for mtype, body in client.receive():
                if mtype == Msg.RESULT:
                    for result in body["results"]:
                        number = int(result["id"].rpartition(":")[2])
                        if not self.seen[number]:
                            self.seen[number] = 1
                            self.results += 1
                            self.statuses[result["status"]] += 1
                    self.last_result = time.monotonic()
                elif mtype == Msg.STATE:
                    self.state = body["status"]
                elif mtype == Msg.WELCOME and client.reconnects:
                    self.expired = True        # the TaskManager dropped our tasks
        now = time.monotonic()
        for client in self.clients:
            client.tick(now)
        self.tm.check()
        self.sample()

    def wait(self, done, seconds):
        """Serve the client until done() (True) or `seconds` pass (False)."""
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                return False
            self.pump(0.1)
            if self.expired:               # as a real client: ask again, resubmit the rest
                self.expired = False
                if self.asking:
                    self.client.send(Msg.STATUS, {})
                self.send_tasks([n for n in range(self.sent) if not self.seen[n]], True)
        return True

    def add_workers(self, count):
        """Start `count` light workers; seconds until all are welcomed."""
        started = time.monotonic()
        pool = Workers(self.tm.address, count, self.args.slots, self.args.procs,
                       self.args.deadline * 3 + 300, self.tm.curve)
        self.pools.append(pool)
        if not self.wait(lambda: pool.stats()["welcomed"] >= count, WELCOME_WAIT):
            raise RuntimeError("%d workers not all welcomed in %d s" % (count, WELCOME_WAIT))
        return time.monotonic() - started

    def submit(self, count, groups):
        """Send `count` tasks over `groups`; the time the first SUBMIT went."""
        self.expect(count, groups)
        self.cpu0, started = self.cpu(), time.monotonic()
        self.send_tasks(range(count))
        return started

    def send_tasks(self, numbers, resume=False):
        """SUBMITs of --chunk tasks, as fast as they are built, reading between them."""
        users = len(self.clients)
        for first in range(0, len(numbers), self.args.chunk):
            part = numbers[first:first + self.args.chunk]
            for index, client in enumerate(self.clients):
                mine = part if users == 1 else [n for n in part if n % users == index]
                if mine:
                    client.send(Msg.SUBMIT, {"tasks": [
                        {"id": "%s:%d" % (client.identity, n), "capability": "shell",
                         "body": BODY, "requires": self.groups[n % len(self.groups)],
                         "priority": 0, "resume": resume} for n in mine]})
            self.sent = max(self.sent, part[-1] + 1)
            self.pump(0)

    def cpu(self):
        """CPU seconds used so far by the TaskManager, this process, the worker processes."""
        procs = [self.tm.ps, psutil.Process()] + [
            psutil.Process(proc.pid) for pool in self.pools for proc, _ in pool.groups]
        used = [sum(proc.cpu_times()[:2]) for proc in procs]
        return used[0], used[1], sum(used[2:])

    def status(self):
        self.state, self.asking = None, True
        self.client.send(Msg.STATUS, {})
        self.wait(lambda: self.state is not None, 60)
        self.asking = False
        return self.state or {}

    def drain(self, count, since):
        """Wait up to --deadline for `count` results: the rate and silences, as rows."""
        complete = self.wait(lambda: self.results >= count, self.args.deadline)
        self.rate = self.results / max((self.last_result or time.monotonic()) - since, 1e-9)
        peers = [pool.stats() for pool in self.pools]
        cpu = tuple(now - then for now, then in zip(self.cpu(), self.cpu0))
        self.tm_cpu = cpu[0]
        state = self.status()
        loop, expired = (state.get("loop") or {}).get("longest_ms"), state.get("expired")
        partial = "" if complete else " (DEADLINE: %d of %d results)" % (self.results, count)
        return [
            ("dispatch rate", "%.0f tasks/s%s" % (self.rate, partial)),
            ("results", ", ".join("%s %d" % item for item in self.statuses.items())),
            ("CPU s: TaskManager / client / workers", "%.1f / %.1f / %.1f" % cpu),
            ("TaskManager messages in / out per task", "n/a" if "messages" not in state else
             "%.2f / %.2f" % (state["messages"]["received"] / count,
                              state["messages"]["sent"] / count)),
            ("TaskManager longest loop", "n/a" if loop is None else "%.0f ms (%s)" % (
                loop, ", ".join("%s %.0f" % item for item in
                                sorted(state["loop"].get("longest_phases_ms", {}).items())))),
            ("peers expired (STATUS)", "n/a" if expired is None else
             ", ".join("%s %s" % item for item in sorted(expired.items())) or "none"),
            ("RECONNECTs received by peers",
             "%d" % (sum(p["reconnects"] for p in peers) +
                     sum(c.reconnects for c in self.clients))),
            ("longest silence, any worker", ms(max(p["gap"] for p in peers))),
            ("longest silence, a client", ms(max(c.gap(time.monotonic())
                                                 for c in self.clients)))]

    def settle(self, seconds):
        """Serve the client until the TaskManager used under 5% CPU in each of 3 seconds
        in a row (3 heartbeat ticks, where it reclaims memory), or `seconds` pass."""
        deadline, quiet = time.monotonic() + seconds, 0
        self.tm.ps.cpu_percent(None)
        while quiet < 3 and time.monotonic() < deadline:
            self.wait(lambda: False, 1.0)
            quiet = quiet + 1 if self.tm.ps.cpu_percent(None) < 5 else 0

    def close(self):
        for pool in self.pools:
            pool.stop()
        self.context.destroy(linger=0)
        self.tm.stop()


def ms(seconds):
    return "%.0f ms" % (seconds * 1000)


def mib(size):
    return "%.0f MiB" % (size / 1048576)


def drain_run(source, root, args, workers, tasks, groups):
    """Register `workers`, drain `tasks` over `groups`: (rows, rate)."""
    run = Run(source, root, args)
    try:
        registered = run.add_workers(workers)
        rows = run.drain(tasks, run.submit(tasks, groups))
        print("  %d workers x %d, %d tasks: %s" % (workers, args.slots, tasks, rows[0][1]),
              flush=True)
        return [("registration (all welcomed)", "%.1f s" % registered)] + rows, \
            (run.rate, tasks / max(run.tm_cpu, 1e-9))
    finally:
        run.close()


def scale(source, root, args):
    return drain_run(source, root, args, args.workers, args.tasks, constraint_groups())[0]


def _medians(title, values):
    """Rows: the median of each worker count's runs, then the ratio of the two."""
    medians = {count: statistics.median(runs) for count, runs in values.items()}
    big = max(values)
    return [("%s, %d workers" % (title, count), "%.0f (%s)" % (
        medians[count], ", ".join("%.0f" % value for value in runs)))
        for count, runs in values.items()] + [
        ("%s ratio (goal >= 80%%)" % title, "%.0f%%" % (100 * medians[big] / medians[2]))]


def rate(source, root, args):
    """Tasks/s of the whole run, and tasks per CPU-second of the TaskManager: the light
    peers share these 2 cores and cost more with 1,000 sockets to poll, which real
    workers on their own machines would not take from the TaskManager."""
    rates, per_cpu = {2: [], args.workers: []}, {2: [], args.workers: []}
    messages = {}
    for rep in range(args.repeat):          # alternated, so drifts of the machine cancel
        for count in (2, args.workers)[::1 if rep % 2 == 0 else -1]:
            rows, (rate, efficiency) = drain_run(source, root, args, count, args.rate_tasks,
                                                 [{}])
            rates[count].append(rate)
            per_cpu[count].append(efficiency)
            messages[count] = dict(rows).get("TaskManager messages in / out per task")
    return _medians("tasks/s", rates) + _medians("tasks per TaskManager CPU-s", per_cpu) + [
        ("messages in / out per task, %d workers" % count, text)
        for count, text in messages.items()]


def burst(source, root, args):
    run = Run(source, root, args)
    rss, peak = (lambda: run.tm.ps.memory_info().rss), [0]
    try:
        idle = rss()
        run.sample = lambda: peak.__setitem__(0, max(peak[0], rss()))
        started = run.submit(args.burst, [{}])
        all_in = run.wait(lambda: sum(run.status().get("queues", {}).values()) >= args.burst,
                          args.deadline)
        arrived = time.monotonic() - started
        rows = [("TaskManager RSS idle", mib(idle)),
                ("RSS peak while arriving", mib(peak[0])),
                ("all queued (STATUS)", "%s after %.1f s" % ("yes" if all_in else "NO", arrived)),
                ("RSS with all queued", mib(rss())),
                ("client's longest silence, arriving", ms(run.client.gap(time.monotonic())))]
        print("  %d queued: %s" % (args.burst, rows[2][1]), flush=True)
        run.sample = lambda: None
        rows.append(("registration of %d x %d" % (args.burst_workers, args.slots),
                     "%.1f s" % run.add_workers(args.burst_workers)))
        run.cpu0 = run.cpu()
        rows += run.drain(args.burst, time.monotonic())
        run.settle(30)
        return rows + [("RSS after the drain", mib(rss()))]
    finally:
        run.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--only", action="append", choices=("scale", "rate", "burst"),
        help="run this section only (repeatable; default: all three)")
    add("--workers", type=int, default=1000, help="light workers (at least 30)")
    add("--slots", type=int, default=8, help="slots per worker")
    add("--tasks", type=int, default=100000, help="scale: tasks over 100 constraint groups")
    add("--rate-tasks", type=int, default=20000, help="rate: tasks per drain")
    add("--repeat", type=int, default=3, help="rate: drains of each size, alternated")
    add("--burst", type=int, default=1000000, help="burst: tasks")
    add("--burst-workers", type=int, default=200, help="burst: workers that drain them")
    add("--procs", type=int, default=4, help="OS processes holding the light workers")
    add("--chunk", type=int, default=1000, help="tasks per SUBMIT")
    add("--users", type=int, default=1, help="users (u0, u1, ...) of the clients, which "
        "share the tasks (fair share's cost)")
    add("--clients", type=int, default=None, help="light clients, client k of user k %% "
        "--users [default: one per user]")
    add("--deadline", type=float, default=600,
        help="seconds one drain or one burst's arrival may take (then partial figures)")
    add("--baseline", metavar="DIR", help="run the TaskManager of this source tree instead")
    args = parser.parse_args(argv)
    if args.workers < 30:
        parser.error("--workers must be at least 30 (every rack and version combination)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # run the clean-ups on TERM
    source = os.path.abspath(args.baseline or ROOT)
    titles = {"scale": "scale: %d workers x %d slots, %d tasks over 100 constraint groups, "
                       "%d client(s) of %d user(s)" % (args.workers, args.slots, args.tasks,
                                                       max(args.users, args.clients or 1),
                                                       args.users),
              "rate": "rate: %d unconstrained tasks, medians of %d" % (args.rate_tasks,
                                                                       args.repeat),
              "burst": "burst: %d tasks with no worker, then %d workers x %d"
                       % (args.burst, args.burst_workers, args.slots)}
    table = []
    print("TaskManager from %s" % source, flush=True)
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as root:
        for name in args.only or ["scale", "rate", "burst"]:
            print(titles[name], flush=True)
            try:
                rows = {"scale": scale, "rate": rate, "burst": burst}[name](source, root, args)
            except RuntimeError as exc:       # a TaskManager that died, peers never welcomed
                print("  FAILED: %s" % exc, flush=True)
                rows = [("FAILED", str(exc))]
            table.append((titles[name], rows))
    print("\nTaskManager: %s" % source)
    for title, rows in table:
        print("\n" + title)
        for name, value in rows:
            print("  %-38s %s" % (name, value))
    return 0


if __name__ == "__main__":
    sys.exit(main())
