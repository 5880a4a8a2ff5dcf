"""Properties of the TaskManager's State under random sequences of what peers say.

``Model`` drives a ``State`` as the server does (``seen`` before each message of a
registered peer, then the same call) and keeps its own account beside it: what each
client submitted and is still owed, what each worker process runs (what it was
dispatched or listed in its hello), the reports of each machine and the load placed
on it since. ``FarmMachine`` feeds it random clients (hellos, departures, SUBMITs,
CANCELs), workers (hellos, repeated or after a TaskManager restart with what they
run; departures; RESULTs, also repeated or stale; undeliverable DISPATCHes),
monitors (hellos, departures, reports with the owner back or not), ``schedule``,
time and expiry. After every step:

- every live task is in exactly one place: queued (in its own queue, counted once
  in ``queue.live``), held, or on the ``running`` of exactly one registered worker;
  the registry, ``adopted``, ``held`` and each client's ``tasks`` agree;
- a worker runs only what it was dispatched or said it runs, at that attempt; a
  RESULT is taken only from the worker and attempt running the task, and one for a
  task nobody had asked for is handed to a later SUBMIT at most once;
- slots: a DISPATCH never takes a worker beyond its capacity: the slots of its
  last hello plus its pipelining depth, which the test computes itself from the
  durations of the results the worker reported (``defaults.PIPELINE_*``), from 0
  at registration (the placement replay below checks each DISPATCH). A hello may
  list more tasks than that (its worker is the authority on what it runs); such a
  worker has no free slot, and the scheduler's ``free`` per capability must be the
  sum of ``max(0, capacity - running)`` over the registered workers offering it.
- each DISPATCH goes to a registered worker offering the capability, with
  attributes matching the constraints, on an eligible machine (by the test's own
  reading of reports and policies), and is the worker a full scan picks: least
  ``rank`` (computed by the test, replaying the call's assignments one by one),
  then registration order. Queues are served in the order of their best task, each
  highest priority first in submission order, filling every slot it can before the
  next; after ``schedule`` no queued task has a free, matching, eligible worker;
- a task lost with its worker (expiry, or leaving without handing it back) is
  requeued, or fails ``lost`` once at ``max_attempts``; expiry drops exactly the
  peers silent for longer than the timeout; the owner policy suspends and resumes;
- a result goes to a client only for a submission it made and is still owed: never
  twice, never after it left; an owed submission stays live (owned by its client,
  or waiting to be revived for it) until it is answered or its client leaves, and
  ``drain`` checks that each one is answered in the end; an owner's CANCEL is never
  refused; effects name registered peers; ``state.bugs`` stays 0.

``test_placement_matches_a_full_scan`` replays placement on farms of 2-8 workers on
2-4 monitored machines. The tests at the end pin seven bugs these properties found
(each fixed): their shortest reproductions.
"""

import contextlib
import itertools
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from computefarm import defaults
from computefarm.config import Policy
from computefarm.defaults import TASK_OVERHEAD
from computefarm.taskmanager.state import Effects, State
from computefarm.taskmanager.tasks import CANCELLING, HELD, QUEUED, RUNNING
from computefarm.wire import protocol
from computefarm.wire.protocol import Code

CAPS = ("shell", "gcc")
ATTRS = ({"platform": "linux-x86_64"},
         {"platform": "linux-x86_64", "gcc": "12.2"},
         {"platform": "linux-aarch64", "gcc": "9.4"})
REQUIRES = (None, {"platform": "linux-x86_64"}, {"gcc": ">=10"}, {"platform": "linux-aarch64"})
TASK_IDS = tuple("t%d" % i for i in range(6))   # few, so ids are resubmitted and collide
CLIENTS = (b"c0", b"c1")
MACHINE_OF = {b"w0": "m0", b"w1": "m0", b"w2": "m1", b"w3": "m2"}
MACHINES = ("m0", "m1", "m2")
MONITOR_OF = {m: b"mon-" + m.encode() for m in MACHINES}
TIMEOUT = 3.0                                    # heartbeat 1 s x liveness 3
GRACE = 3.0
LIMIT = 10 ** 6
MIB = 1024 * 1024
NOTICE_CODES = {Code.NO_CAPABILITY, Code.NO_MATCH, Code.ID_IN_USE, Code.NOT_YOURS,
                Code.SUSPENDED, Code.RESUMED}

policies = st.builds(Policy, on_owner=st.sampled_from(["suspend", "requeue", "continue"]),
                     stale=st.sampled_from(["hold", "run"]),
                     requeue_grace=st.sampled_from([0.0, 2.0]))
sometimes = st.sampled_from([False, False, False, True])
capabilities = st.dictionaries(st.sampled_from(CAPS), st.sampled_from(ATTRS), min_size=1)


def reference_matches(attributes, requires):
    """The constraints of REQUIRES, read without computefarm: equality or ``>=N``."""
    for key, wanted in (requires or {}).items():
        have = attributes.get(key)
        if have is None:
            return False
        if wanted.startswith(">="):
            if tuple(map(int, have.split("."))) < tuple(map(int, wanted[2:].split("."))):
                return False
        elif have != wanted:
            return False
    return True


def report_body(machine, cores, cpu, owner, busy, low_memory):
    return {"machine": machine, "host": "h-" + machine, "interval": 1.0, "cores": cores,
            "cpu_percent": cpu, "memory_available": (100 if low_memory else 4096) * MIB,
            "owner_cpu": 80.0 if owner else 5.0, "load_avg": [3.0 * cores if busy else 0.1]}


def spec_body(task_id, capability, requires, priority, resume, max_attempts, load):
    spec = {"id": task_id, "capability": capability, "body": b"x", "priority": priority,
            "load": load}
    if requires:
        spec["requires"] = dict(requires)
    if resume:
        spec["resume"] = True
    if max_attempts:
        spec["max_attempts"] = max_attempts
    return spec


class Submission:
    __slots__ = ("task_id", "client", "serial")

    def __init__(self, task_id, client, serial):
        self.task_id, self.client, self.serial = task_id, client, serial


class Model:
    """A State and the test's own account of the farm around it."""

    def __init__(self, state, now, machine_of, policies=None, limit=LIMIT):
        self.state = state
        self.now = now
        self.machine_of = dict(machine_of)  # worker rid -> its machine id
        self.policies = dict(policies or {})
        self.limit = limit
        self.open = {}                      # (task id, client Peer) -> Submission owed a result
        self.closed = {}                    # (task id, client Peer) -> why it is owed none now
        self.delivered = Counter()          # Submission serial -> results it got
        self.believed = {}                  # worker rid -> {task id: attempt} the process runs
        self.history = set()                # (worker rid, task id, attempt) it may report (again)
        self.slots = {}                     # worker rid -> slots of its last hello
        self.registered = {}                # worker rid -> (slots, capabilities, machine)
        self.pace = {}                      # worker rid -> moving average of its durations
        self.depth = Counter()              # worker rid -> tasks it may hold beyond slots
        self.caps = {}                      # worker rid -> capabilities of its last hello
        self.order = {}                     # Peer -> registration order
        self.assigned = Counter()           # worker Peer -> DISPATCHes since it registered
        self.reports = {}                   # machine id -> (report, when)
        self.load = Counter()               # machine id -> task load placed since its report
        self.last_dispatch = {}             # worker rid -> ids of the previous step's DISPATCH
        self.stopping = set()               # (worker rid, task id) it was told to CANCEL
        self.suspended = set()              # (worker rid, task id) told SUSPEND, not RESUME
        self.unanswered = Counter()         # (id, attempt, status) of worker RESULTs no client got
        self.serials = itertools.count()
        self.orders = itertools.count()
        self.dispatches = 0

    # -- the test's reading of machines and workers ------------------------------
    def eligible(self, machine):
        policy = self.policies.get(machine, Policy())
        if machine not in self.reports:
            return True                                  # unmonitored
        report = self.reports[machine][0]
        if self.stale(machine):
            return policy.stale == "run"
        cores = max(1, report["cores"])
        return (report["owner_cpu"] <= policy.owner_cpu_limit
                and report["load_avg"][0] / cores <= policy.max_load
                and report["memory_available"] >= policy.min_free_memory * MIB)

    def stale(self, machine):
        report, when = self.reports.get(machine, (None, None))
        return report is not None and \
            self.now > when + defaults.STALE_INTERVALS * report["interval"]

    def rank(self, worker, running, assigned, load):
        machine = self.machine_of[worker.rid]
        if machine not in self.reports:
            first = (load[machine], 0)
        else:
            report = self.reports[machine][0]
            cores = max(1, report["cores"])
            first = (report["cpu_percent"] / 100.0 + load[machine] / cores,
                     -report["memory_available"])
        return first + (running / self.slots[worker.rid], assigned)

    def capacity(self, worker):
        return self.slots[worker.rid] + self.depth[worker.rid]

    def paced(self, rid, duration):
        """The pipelining depth after an accepted result that took ``duration``."""
        pace = self.pace[rid] = duration if self.pace.get(rid) is None else \
            self.pace[rid] + defaults.PIPELINE_SMOOTHING * (duration - self.pace[rid])
        per_slot = min(defaults.PIPELINE_MAX, int(defaults.PIPELINE_WINDOW / pace)) \
            if pace > 0 else defaults.PIPELINE_MAX
        others = [self.caps[r] for r in self.state.workers if r != rid]
        if not per_slot and pace < defaults.PIPELINE_SOLE_WINDOW and \
                not any(set(caps) & set(self.caps[rid]) for caps in others):
            per_slot = 1                    # the only worker of its capabilities
        self.depth[rid] = per_slot * self.slots[rid]

    def offers(self, worker, task):
        attributes = self.caps[worker.rid].get(task.capability)
        return attributes is not None and reference_matches(attributes, task.requires)

    # -- one step: what the server does for one message ---------------------------
    @contextlib.contextmanager
    def step(self, removal=False):
        before = dict(self.state.peers)
        self.runs = {i: (t.worker.name, t.attempt) for i, t in self.state.tasks.items()
                     if t.worker is not None}
        fx = Effects()
        yield fx
        self.settle(fx, before, removal)
        self.check()

    def settle(self, fx, before, removal):
        """Account for a step's effects: each must be possible, each result owed."""
        state = self.state
        self.last_dispatch = {}
        for worker, task in fx.dispatch:
            assert before.get(worker.rid) is worker, "DISPATCH to an unregistered worker"
            self.believed[worker.rid][task.id] = task.attempt
            self.history.add((worker.rid, task.id, task.attempt))
            self.assigned[worker] += 1
            self.load[self.machine_of[worker.rid]] += task.load
            self.last_dispatch.setdefault(worker.rid, []).append(task.id)
            self.dispatches += 1
        for kind in ("cancel", "suspend", "resume"):
            for worker, task_id in getattr(fx, kind):
                assert worker in (before.get(worker.rid), state.peers.get(worker.rid)), \
                    "%s of %s to an unregistered worker" % (kind, task_id)
        self.stopping.update((worker.rid, task_id) for worker, task_id in fx.cancel)
        for worker, task_id in fx.suspend:
            assert (worker.rid, task_id) not in self.suspended, "suspended twice"
            self.suspended.add((worker.rid, task_id))
        for worker, task_id in fx.resume:
            assert (worker.rid, task_id) in self.suspended, "RESUME of a task not suspended"
            self.suspended.discard((worker.rid, task_id))
        self.suspended = {(rid, i) for rid, i in self.suspended
                          if i in getattr(state.workers.get(rid), "running", ())}
        # A task being cancelled may lose its suspension without a RESUME: the
        # worker continues a stopped process itself to stop it (Run.stop).
        running = {i for i, t in state.tasks.items() if t.state == RUNNING}
        assert {i for _, i in self.suspended} & running == set().union(
            *(m.suspended for m in state.machines.values())) & running, "suspended: %s, %s" % (
            self.suspended, [m.suspended for m in state.machines.values()])
        told = {Code.SUSPENDED: set(), Code.RESUMED: set()}
        for client, _level, code, _text, ids in fx.notices:
            assert code in NOTICE_CODES, code
            assert before.get(client.rid) is client, "NOTICE to an unregistered client"
            if code in told:
                told[code].update(client.scope + i for i in ids)
        # each client hears of its own tasks suspended and resumed, exactly those
        for code, effects in ((Code.SUSPENDED, fx.suspend), (Code.RESUMED, fx.resume)):
            owned = {i for _, i in effects if getattr(state.tasks.get(i), "client", None)}
            assert told[code] == owned, (code, told[code], owned)
        for client, result in fx.results:
            key = (result["id"], client)
            sub = self.open.pop(key, None)
            assert sub is not None, "RESULT %s for task %s to client %s: %s" % (
                result["status"], result["id"], client.name,
                {"resolved": "a second result for one submission",
                 "client left": "its client left before"}.get(self.closed.get(key),
                                                              "it never submitted it"))
            assert before.get(client.rid) is client or state.clients.get(client.rid) is client
            if "code" not in result:            # a worker's: from the run the TM knows of
                if result["id"] in self.runs:
                    assert self.runs[result["id"]] == (result["worker"], result["attempt"]), (
                        "RESULT of %s attempt %d from %s accepted; it runs attempt %d on %s"
                        % (result["id"], result["attempt"], result["worker"],
                           self.runs[result["id"]][1], self.runs[result["id"]][0]))
                else:                           # kept while nobody had asked for it
                    origin = (result["id"], result["attempt"], result["status"])
                    assert self.unanswered[origin] > 0, "RESULT %s made up" % (origin,)
                    self.unanswered[origin] -= 1
            self.closed[key] = "resolved"
            self.delivered[sub.serial] += 1
            assert self.delivered[sub.serial] == 1
        if removal:
            for key, sub in list(self.open.items()):
                if state.clients.get(sub.client.rid) is not sub.client:
                    del self.open[key]
                    self.closed[key] = "client left"
        else:
            for rid, peer in before.items():
                assert state.peers.get(rid) is peer, "peer %r vanished" % rid

    def check(self):
        """Everything the State holds agrees with itself and with the test's account."""
        state = self.state
        assert state.bugs == 0, list(state.transitions)[-5:]
        for rid, peer in state.peers.items():
            assert state.roles[peer.role].get(rid) is peer
        assert sum(map(len, state.roles.values())) == len(state.peers)
        workers, clients = state.workers, state.clients
        on_workers = {}
        for worker in workers.values():
            for task_id, task in worker.running.items():
                assert task_id not in on_workers, "task %s on two workers" % task_id
                on_workers[task_id] = worker
                assert state.tasks.get(task_id) is task and task.worker is worker
                assert self.believed.get(worker.rid, {}).get(task_id) == task.attempt, (
                    "worker %s was never told to run %s attempt %d"
                    % (worker.name, task_id, task.attempt))
        queued = Counter()
        for task_id, task in state.tasks.items():
            assert task.id == task_id
            assert task.state in (QUEUED, HELD, RUNNING, CANCELLING), task.state
            if task.state == QUEUED:
                queue = state.queues.get(task.key, {}).get(task.run)
                assert queue is not None and task.queue is queue, "queued %s in no queue" % task_id
                assert task.run.lanes.get(task.key) is queue
                queued[task.key, task.run] += 1
            else:
                assert task.queue is None
            assert (task.state == HELD) == (state.held.get(task_id) is task)
            assert (task.state in (RUNNING, CANCELLING)) == (task_id in on_workers), task.state
            assert task.client is None or clients.get(task.client.rid) is task.client, (
                "live task %s (%s) belongs to client %s, which left"
                % (task_id, task.state, task.client.name))
        assert len(state.held) == sum(t.state == HELD for t in state.tasks.values())
        lanes = {(key, run): queue for key, runs in state.queues.items()
                 for run, queue in runs.items()}
        for (key, run), queue in lanes.items():
            assert queue.live == queued[key, run] > 0, "queue %s counts %d, holds %d" % (
                key, queue.live, queued[key, run])
        assert set(queued) == set(lanes)
        self.check_ledger()
        for client in clients.values():      # its tasks, and its resubmissions waiting
            owned = {i: len(t.body) if t.client is client else len(t.revive[1]["body"])
                     for i, t in state.tasks.items() if t.client is client
                     or (t.revive is not None and t.revive[0] is client)}
            assert set(client.tasks) == set(owned) and len(client.tasks) == len(owned)
            assert client.tasks.bytes == sum(owned.values()) + len(owned) * TASK_OVERHEAD
        assert set(state.adopted) == {i for i, t in state.tasks.items()
                                      if t.client is None and t.state == RUNNING}
        free = {c: 0 for w in workers.values() for c in w.capabilities}
        for worker in workers.values():
            assert worker.slots == self.slots[worker.rid]
            assert worker.depth == self.depth[worker.rid], (worker.name, worker.pace)
            for capability in worker.capabilities:
                free[capability] += max(0, self.capacity(worker) - len(worker.running))
        assert state.scheduler.free == free, "scheduler.free %s, free slots %s" % (
            state.scheduler.free, free)
        for task_id, client in self.open:
            assert clients.get(client.rid) is client
            task = state.tasks.get(task_id)
            assert task is not None, "task %s of client %s was dropped" % (task_id, client.name)
            assert task.client is client or (
                task.client is None and task.state == CANCELLING and task.revive is not None
                and task.revive[0] is client), "task %s of client %s is now %s's" % (
                task_id, client.name, task.client.name if task.client else None)
        for machine in state.machines.values():
            running = {i for w in machine.workers for i in w.running}
            assert machine.suspended <= running, "suspended tasks that are not running"

    # -- what peers say -----------------------------------------------------------
    def check_ledger(self):
        """Each run and user counts exactly its queued tasks and the slots it holds."""
        ledger, tasks = self.state.ledger, list(self.state.tasks.values())
        for account in ledger.accounts.values():
            mine = [t for t in tasks if t.run is not None and t.run.account is account]
            assert account.queued == sum(t.state == QUEUED for t in mine)
            charged = [t for t in tasks if t.charged is not None
                       and t.charged.account is account]
            assert all(t.state in (RUNNING, CANCELLING) for t in charged)
            assert account.running == len(charged), (account.name, account.running)
            assert abs(account.started - sum(t.started for t in charged)) < 1e-6
            assert ledger.usage(account, self.now) >= -1e-6
            for run in account.runs:
                assert run.queued == sum(t.state == QUEUED for t in mine if t.run is run)
                assert run.running == sum(t.charged is run for t in charged)
        for task in tasks:                   # every claimed task holding a slot is charged
            if task.client is not None and task.state in (RUNNING, CANCELLING):
                assert task.charged is task.run, task.id

    def hello(self, rid, body):
        state = self.state
        old = state.peers.get(rid)
        with self.step() as fx:
            if old is not None:
                state.seen(old, self.now)
            peer, code = state.hello(rid, body, None, self.now, fx)
            if old is not None and old.role != body["role"]:
                assert peer is None and code == Code.ROLE_FIXED
                assert state.peers[rid] is old and old.role != body["role"]
                return
            assert code is None and peer is not None and (old is None or peer is old)
            if old is None:
                self.order[peer] = next(self.orders)
            if body["role"] == "worker":
                registered = (max(1, body["slots"]), body["capabilities"], body["machine"])
                if old is None or self.registered.get(rid) != registered:
                    self.pace[rid], self.depth[rid] = None, 0    # it starts anew
                self.registered[rid] = registered
                self.slots[rid] = max(1, body["slots"])
                self.caps[rid] = body["capabilities"]
                listed = {e["id"]: e["attempt"] for e in body["running"]}
                self.believed[rid] = listed
                self.history.update((rid, i, a) for i, a in listed.items())

    def client_hello(self, rid):
        self.hello(rid, protocol.hello("client", rid.decode(), "h", "mc", 1))

    def worker_hello(self, rid, slots, caps, running):
        self.hello(rid, protocol.hello("worker", rid.decode(), "h-" + rid.decode(),
                                       self.machine_of[rid], 1, slots=slots, capabilities=caps,
                                       running=running, version="0"))

    def monitor_hello(self, machine, rid):
        self.hello(rid, protocol.hello("monitor", "mon", "h-" + machine, machine, 1))

    def leave(self, rid, requeue_only=True):
        peer = self.state.peers.get(rid)
        if peer is None:
            return
        with self.step(removal=True) as fx:
            self.state.seen(peer, self.now)
            lost = self.at_risk([peer] if not requeue_only else [])
            self.state.remove_peer(peer, "left", fx, requeue_only=requeue_only)
            self.check_lost(lost, fx)

    def at_risk(self, workers):
        """The owned, running tasks of workers about to be lost: each counts an attempt."""
        return [(t, t.attempt, t.max_attempts, t.client) for w in workers if w.role == "worker"
                for t in w.running.values() if t.state == RUNNING and t.client is not None]

    def check_lost(self, lost, fx):
        """A task lost with its worker is requeued, or fails as lost after max_attempts."""
        for task, attempt, most, client in lost:
            if self.state.clients.get(client.rid) is not client:
                continue                         # its client left in the same step
            results = [r for c, r in fx.results if r["id"] == task.id and c is client]
            if attempt >= most:
                assert [(r["status"], r.get("code")) for r in results] == [
                    ("lost", Code.OUT_OF_ATTEMPTS)], "task %s lost at attempt %d of %d: %s" % (
                    task.id, attempt, most, results)
            else:
                assert not results and task.state == QUEUED, "task %s lost at attempt %d of " \
                    "%d is %s" % (task.id, attempt, most, task.state)

    def submit(self, rid, specs):
        client = self.state.clients[rid]
        with self.step() as fx:
            self.state.seen(client, self.now)
            owed = {s["id"]: (s["id"], client) in self.open for s in specs}
            self.state.submit(client, specs, self.now, fx, limit=self.limit)
            in_use = {i for c, _, code, _, ids in fx.notices if c is client
                      and code == Code.ID_IN_USE for i in ids}
            for spec in specs:
                if not owed[spec["id"]] and spec["id"] not in in_use:
                    self.open[(spec["id"], client)] = Submission(spec["id"], client,
                                                                 next(self.serials))

    def cancel(self, rid, ids):
        client = self.state.clients[rid]
        with self.step() as fx:
            self.state.seen(client, self.now)
            self.state.cancel(client, ids, self.now, fx)
            for _, _, code, _, refused in fx.notices:
                assert code == Code.NOT_YOURS
                for task_id in refused:
                    assert (task_id, client) not in self.open, (
                        "client %s may not cancel its own task %s" % (client.name, task_id))

    def result(self, rid, task_id, attempt, status, duration=0.0):
        worker = self.state.workers.get(rid)
        if worker is None:
            return                          # the server answers RECONNECT
        task = worker.running.get(task_id)
        if task is not None and task.attempt == attempt and status in ("ok", "failed"):
            self.paced(rid, duration)
        with self.step() as fx:
            self.state.seen(worker, self.now)
            self.state.finish(worker, protocol.result_item(task_id, attempt, status,
                                                           exit_code=int(status != "ok"),
                                                           duration=duration),
                              self.now, fx)
            if not any(r["id"] == task_id for _, r in fx.results):
                self.unanswered[(task_id, attempt, status)] += 1
        self.history.add((rid, task_id, attempt))
        if self.believed.get(rid, {}).get(task_id) == attempt:
            del self.believed[rid][task_id]   # sent: the process forgets it (it may resend)
            self.stopping.discard((rid, task_id))

    def undeliverable(self, rid, ids):
        worker = self.state.workers[rid]
        with self.step():
            self.state.undeliverable(worker, ids, self.now)
        for task_id in ids:
            attempt = self.believed[rid].pop(task_id, None)
            self.history.discard((rid, task_id, attempt))

    def report(self, monitor_rid, body):
        monitor = self.state.peers[monitor_rid]
        with self.step() as fx:
            self.state.seen(monitor, self.now)
            self.state.report(monitor, body, self.now, fx)
        self.reports[body["machine"]] = (body, self.now)
        self.load[body["machine"]] = 0.0
        machine = self.state.machines[body["machine"]]
        on_machine = {(w.rid, i) for w in machine.workers for i, t in w.running.items()
                      if t.state == RUNNING}
        owner = body["owner_cpu"] > machine.policy.owner_cpu_limit
        if owner and machine.policy.on_owner == "suspend":
            assert on_machine <= self.suspended, "owner back, not suspended: %s" % (
                on_machine - self.suspended)
        elif not owner:
            assert not on_machine & self.suspended, "owner gone, still suspended"

    def expire(self):
        state = self.state
        silent = {r for r, p in state.peers.items() if self.now - p.last_seen > TIMEOUT}
        expected = set(state.peers) - silent
        with self.step(removal=True) as fx:
            lost = self.at_risk([state.peers[r] for r in silent])
            state.expire(self.now, TIMEOUT, fx)
            self.check_lost(lost, fx)
        assert set(state.peers) == expected, "expired %s, silent were %s" % (
            expected ^ set(state.peers), silent)

    def heartbeat(self, rid=None):
        with self.step():
            for peer in self.state.peers.values():
                if rid is None or peer.rid == rid:
                    self.state.seen(peer, self.now)

    def schedule(self):
        state = self.state
        running = {w: len(w.running) for w in state.workers.values()}
        with self.step() as fx:
            state.schedule(self.now, fx)
            self.check_placement(fx.dispatch, running)
            self.check_order(fx.dispatch)
        for task in state.tasks.values():
            if task.state == QUEUED:
                idle = [w.name for w in state.workers.values()
                        if self.capacity(w) > len(w.running) and self.offers(w, task)
                        and self.eligible(self.machine_of[w.rid])]
                assert not idle, "task %s stays queued while %s are free" % (task.id, idle)
        assert not (state.held and self.now >= state.recovery_until)

    def heads(self, which):
        """The best ``(-priority, submission)`` of each run's queue of the tasks that
        ``which`` picks, by (queue key, run)."""
        heads = {}
        for task in self.state.tasks.values():
            if which(task):
                lane = task.key, task.run
                heads[lane] = min(heads.get(lane, (1,)), (-task.priority, task.seq))
        return heads

    def check_order(self, dispatch):
        """Within a run: a queue's tasks by priority, then submission; and each task
        dispatched was the run's best that its worker could take: no better one of
        the run still waits that the worker matches. (Between runs and users, fair
        share: tests/test_taskmanager_fairshare.py.)"""
        left = self.heads(lambda t: t.state == QUEUED)
        waiting = [t for t in self.state.tasks.values() if t.state == QUEUED]
        taken = {}
        for worker, task in dispatch:
            rank = (-task.priority, task.seq)
            lane = task.key, task.run
            assert rank > taken.get(lane, (-10 ** 9,)), "queue %s out of order" % (lane,)
            taken[lane] = rank
            assert lane not in left or rank < left[lane], \
                "task %s dispatched before a better one of its queue" % task.id
            for other in waiting:
                if other.run is task.run and (-other.priority, other.seq) < rank:
                    key = other.key
                    assert not (key[0] in self.caps[worker.rid] and reference_matches(
                        self.caps[worker.rid][key[0]], dict(key[1]))), (
                        "%s took %s while %s of the same run, ahead of it, waits" % (
                            worker.name, task.id, other.id))

    def check_placement(self, dispatch, running):
        """Replay the DISPATCHes of one ``schedule`` against a full scan of the workers."""
        running, assigned, load = dict(running), Counter(self.assigned), Counter(self.load)
        for worker, task in dispatch:
            candidates = [w for w in running if running[w] < self.capacity(w)
                          and self.offers(w, task) and self.eligible(self.machine_of[w.rid])]
            assert worker in candidates, "task %s went to %s, which is not free, matching " \
                "and eligible (%s are)" % (task.id, worker.name, [w.name for w in candidates])
            ranked = sorted((self.rank(w, running[w], assigned[w], load), self.order[w], w.name)
                            for w in candidates)
            assert ranked[0][2] == worker.name, "task %s went to %s, the best is %s: %s" % (
                task.id, worker.name, ranked[0][2], ranked)
            running[worker] += 1
            assigned[worker] += 1
            load[self.machine_of[worker.rid]] += task.load

    def drain(self, drainers):
        """Let every submission finish: workers matching everything on an idle machine,
        every running task finishing ``ok``. Each owed submission must get its result."""
        self.now = max(self.now, self.state.recovery_until)
        self.heartbeat()
        for index, (rid, machine) in enumerate(drainers):
            self.machine_of[rid] = machine
            self.worker_hello(rid, 8, {c: ATTRS[index % len(ATTRS)] for c in CAPS}, [])
        for _ in range(6):
            self.schedule()
            for worker in list(self.state.workers.values()):
                for task_id, task in list(worker.running.items()):
                    self.result(worker.rid, task_id, task.attempt, "ok")
            if not self.open:
                break
        assert not self.open, "never finished: %s" % sorted(
            (t, c.name) for t, c in self.open)
        for rid, _ in drainers:
            self.leave(rid)


class FarmMachine(RuleBasedStateMachine):
    """Random clients, workers and monitors talking to one State."""

    @initialize(restarted=st.booleans(), max_attempts=st.integers(1, 3),
                limit=st.sampled_from([4, LIMIT, LIMIT]),
                machine_policies=st.lists(policies, min_size=3, max_size=3),
                clients=st.lists(st.sampled_from(CLIENTS), min_size=1, unique=True),
                workers=st.dictionaries(st.sampled_from(sorted(MACHINE_OF)),
                                        st.tuples(st.integers(1, 3), capabilities), min_size=1),
                before=st.dictionaries(st.sampled_from(sorted(MACHINE_OF)), st.dictionaries(
                    st.sampled_from(TASK_IDS), st.integers(1, 3), max_size=1), max_size=2),
                unmonitored=st.lists(st.sampled_from(MACHINES), max_size=1),
                first=st.lists(st.tuples(st.sampled_from(TASK_IDS), st.sampled_from(CAPS)),
                               min_size=1, max_size=4, unique_by=lambda t: t[0]))
    def start(self, restarted, max_attempts, limit, machine_policies, clients, workers, before,
              unmonitored, first):
        """A TaskManager just started, as the first or after a restart (when workers
        still run what the previous one gave them), and the peers that said hello."""
        now = 100.0
        policy_of = dict(zip(MACHINES, machine_policies))
        state = State(max_attempts=max_attempts, policies=policy_of,
                      recovery_until=now + GRACE if restarted else 0.0)
        self.model = Model(state, now, MACHINE_OF, policy_of, limit)
        if restarted:
            self.model.believed.update(before)
        for rid in clients:
            self.model.client_hello(rid)
        for rid, (slots, caps) in sorted(workers.items()):
            running = self.model.believed.get(rid, {})
            self.model.worker_hello(rid, slots, caps, [
                {"id": i, "attempt": a, "capability": "shell"} for i, a in running.items()])
        for machine in MACHINES:
            if machine not in unmonitored:
                self.model.monitor_hello(machine, MONITOR_OF[machine])
        self.model.submit(clients[0], [spec_body(i, c, None, 0, restarted, None, 1.0)
                                           for i, c in first])

    def registered(self, role):
        return sorted(self.model.state.roles[role])

    def loop(self, data):
        """The server schedules at the end of the loop iteration that handled a message
        (unless more messages were waiting: then after them)."""
        if data.draw(st.booleans(), label="then schedule"):
            self.model.schedule()

    # -- clients ----------------------------------------------------------------
    @rule(rid=st.sampled_from(CLIENTS))
    def client_hello(self, rid):
        self.model.client_hello(rid)

    @precondition(lambda self: self.model.state.clients)
    @rule(data=st.data())
    def client_leaves(self, data):
        self.model.leave(data.draw(st.sampled_from(self.registered("client"))))
        self.loop(data)

    @precondition(lambda self: self.model.state.clients)
    @rule(data=st.data(),
          ids=st.lists(st.sampled_from(TASK_IDS), min_size=1, max_size=4, unique=True),
          capability=st.sampled_from(CAPS), requires=st.sampled_from((None,) + REQUIRES),
          priority=st.integers(0, 2), resume=sometimes,
          max_attempts=st.sampled_from([None, 1, 2, 3]), load=st.sampled_from([0.5, 1.0, 2.0]))
    def submit(self, data, ids, capability, requires, priority, resume, max_attempts, load):
        self.model.submit(data.draw(st.sampled_from(self.registered("client"))), [
            spec_body(i, capability, requires, priority, resume, max_attempts, load)
            for i in ids])
        self.loop(data)

    @precondition(lambda self: self.model.state.clients)
    @rule(data=st.data(),
          ids=st.lists(st.sampled_from(TASK_IDS), min_size=1, max_size=3, unique=True))
    def cancel(self, data, ids):
        self.model.cancel(data.draw(st.sampled_from(self.registered("client"))), ids)
        self.loop(data)

    # -- workers ----------------------------------------------------------------
    @rule(rid=st.sampled_from(sorted(MACHINE_OF)), slots=st.integers(1, 3), caps=capabilities,
          data=st.data())
    def worker_hello(self, rid, slots, caps, data):
        """A first hello, a reconnection after expiry, or a repeat, saying what it runs
        (up to one task beyond its slots: a real worker never runs more, but the
        State must cope with a hello that lists more)."""
        most = slots + 1
        believed = self.model.believed.get(rid, {})
        keep = data.draw(st.lists(st.sampled_from(sorted(believed)), unique=True, max_size=most)
                         if believed else st.just([]), label="still running")
        claims = data.draw(st.dictionaries(st.sampled_from(TASK_IDS), st.integers(1, 3),
                                           max_size=min(1, most - len(keep)))
                           if data.draw(sometimes) else st.just({}), label="also running")
        running = [{"id": i, "attempt": believed[i], "capability": "shell"} for i in keep]
        running += [{"id": i, "attempt": a, "capability": data.draw(st.sampled_from(CAPS))}
                    for i, a in claims.items() if i not in believed]
        self.model.worker_hello(rid, slots, caps, running)
        self.loop(data)

    @precondition(lambda self: self.model.state.workers)
    @rule(data=st.data(), requeue_only=st.booleans(), dies=st.booleans())
    def worker_leaves(self, data, requeue_only, dies):
        rid = data.draw(st.sampled_from(self.registered("worker")))
        self.model.leave(rid, requeue_only)
        if dies:
            self.model.believed.pop(rid, None)
        self.loop(data)

    @precondition(lambda self: self.model.state.workers)
    @rule(data=st.data(), status=st.sampled_from(["ok", "failed", "cancelled", "timeout"]),
          which=st.sampled_from(["running", "running", "sent before", "earlier attempt"]),
          duration=st.sampled_from([0.0, 0.0004, 0.003, 0.015, 0.1, 0.5, 30.0]))
    def worker_result(self, data, status, which, duration):
        """A result for a task a worker runs; or one it sent before (its ACK was lost),
        or of an earlier attempt of a task it runs again (stale)."""
        live = sorted((rid, i, a) for rid, tasks in self.model.believed.items()
                      for i, a in tasks.items())
        if which == "earlier attempt":
            pool = [(rid, i, a - 1) for rid, i, a in live if a > 1]
        else:
            pool = live if which == "running" else sorted(self.model.history)
        if pool:
            rid, task_id, attempt = data.draw(st.sampled_from(pool))
            if (rid, task_id) in self.model.stopping and data.draw(st.booleans()):
                status = "cancelled"        # as told; else it finished before the CANCEL came
            self.model.result(rid, task_id, attempt, status, duration)
            self.loop(data)

    @precondition(lambda self: self.model.last_dispatch)
    @rule(data=st.data())
    def undeliverable(self, data):
        """The DISPATCH just made to a worker could not be sent."""
        rid = data.draw(st.sampled_from(sorted(self.model.last_dispatch)))
        ids = self.model.last_dispatch[rid]
        self.model.undeliverable(rid, data.draw(st.lists(st.sampled_from(ids), min_size=1,
                                                         unique=True)))

    # -- monitors -----------------------------------------------------------------
    @rule(data=st.data(), machine=st.sampled_from(MACHINES),
          action=st.sampled_from(["report", "report", "report", "hello", "leave"]),
          cores=st.integers(1, 8), cpu=st.integers(0, 100), owner=st.booleans(),
          busy=sometimes, low_memory=sometimes)
    def monitor(self, data, machine, action, cores, cpu, owner, busy, low_memory):
        """A monitor says hello, leaves, or reports (more often from a machine where
        tasks run, for the owner policy)."""
        state, rid = self.model.state, MONITOR_OF[machine]
        if action == "hello":
            self.model.monitor_hello(machine, rid)
        elif action == "leave":
            self.model.leave(rid)
        elif state.roles["monitor"]:
            busy_machines = {w.machine for w in state.workers.values() if w.running}
            rids = [r for r in self.registered("monitor")
                    if state.peers[r].machine in busy_machines]
            rid = data.draw(st.sampled_from(rids if rids and data.draw(st.booleans())
                                            else self.registered("monitor")))
            machine = state.peers[rid].machine
            self.model.report(rid, report_body(machine, cores, cpu, owner, busy, low_memory))
            self.loop(data)

    @precondition(lambda self: self.model.state.peers)
    @rule(data=st.data(), role=st.sampled_from(["client", "worker", "monitor"]))
    def hello_as_another_role(self, data, role):
        """Refused with "role-fixed"; the first registration stays."""
        rid = data.draw(st.sampled_from(sorted(self.model.state.peers)))
        if self.model.state.peers[rid].role != role:
            self.model.hello(rid, protocol.hello(role, "x", "h", "m0", 1, slots=1,
                                                 capabilities={"shell": {}}, running=[]))

    # -- the TaskManager's loop -----------------------------------------------------
    @rule()
    def schedule(self):
        self.model.schedule()

    @rule(data=st.data(), dt=st.sampled_from([0.5, 0.5, 1.0, 2.0, 4.0, 400.0]),
          heard=st.sampled_from(["everyone", "everyone", "one", "nobody"]), expire=st.booleans())
    def time_passes(self, data, dt, heard, expire):
        """Time passes; everyone, one peer or nobody was heard from; a tick expires
        the silent."""
        self.model.now += dt
        if heard == "everyone":
            self.model.heartbeat()
        elif heard == "one" and self.model.state.peers:
            self.model.heartbeat(data.draw(st.sampled_from(sorted(self.model.state.peers))))
        if expire:
            self.model.expire()

    @rule()
    def drain(self):
        self.model.drain([(b"d%d" % i, "m-drain") for i in range(len(ATTRS))])

    @invariant()
    def consistent(self):
        self.model.check()


FarmMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50,
                                         deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestFarmStateMachine = FarmMachine.TestCase


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_placement_matches_a_full_scan(data):
    """Each DISPATCH of ``schedule`` goes to the free, matching, eligible worker of least
    rank (registration order breaking ties), as a scan of every worker would choose,
    over rounds of submissions, reports, finished tasks and time."""
    machines = ["pm%d" % i for i in range(data.draw(st.integers(2, 4), label="machines"))]
    policy_of = {m: data.draw(policies, label="policy") for m in machines}
    workers = data.draw(st.lists(st.tuples(st.sampled_from(machines), st.integers(1, 4),
                                           capabilities), min_size=2, max_size=8), label="workers")
    machine_of = {b"pw%d" % i: m for i, (m, _, _) in enumerate(workers)}
    model = Model(State(policies=policy_of), 10.0, machine_of, policy_of)
    reports = st.builds(report_body, st.just(""), st.integers(1, 16), st.integers(0, 100),
                        st.booleans(), st.booleans(), st.booleans())

    def report(machine):
        model.report(b"pmon-" + machine.encode(),
                     dict(data.draw(reports, label="report"), machine=machine))

    for machine in machines:
        model.monitor_hello(machine, b"pmon-" + machine.encode())
        report(machine)
    for i, (_, slots, caps) in enumerate(workers):
        model.worker_hello(b"pw%d" % i, slots, caps, [])
    model.client_hello(b"pc")
    ids = itertools.count()
    for _ in range(data.draw(st.integers(2, 14), label="steps")):
        op = data.draw(st.sampled_from(["submit", "schedule", "finish", "report", "time"]))
        if op == "submit":
            model.submit(b"pc", [spec_body("p%d" % next(ids), data.draw(st.sampled_from(CAPS)),
                                           data.draw(st.sampled_from(REQUIRES)),
                                           data.draw(st.integers(0, 2)), False, None,
                                           data.draw(st.sampled_from([0.5, 1.0, 4.0])))
                                 for _ in range(data.draw(st.integers(1, 8)))])
        elif op == "schedule":
            model.schedule()
        elif op == "finish":
            running = sorted((w.rid, i, t.attempt) for w in model.state.workers.values()
                             for i, t in w.running.items())
            for rid, task_id, attempt in data.draw(st.lists(st.sampled_from(running), unique=True)
                                                   if running else st.just([])):
                model.result(rid, task_id, attempt, "ok")
        elif op == "report":
            report(data.draw(st.sampled_from(machines)))
        else:
            model.now += data.draw(st.sampled_from([0.5, 2.0, 5.0]))
            model.heartbeat()
    model.schedule()


# -- the bugs these properties found, one small case each (all fixed) ----------------

def peer(state, rid, role, now=0.0, **extra):
    body = protocol.hello(role, rid.decode(), "h-" + rid.decode(),
                          extra.pop("machine", "m-" + rid.decode()), 1, **extra)
    return state.hello(rid, body, None, now, Effects())[0]


def shell(task_id, **extra):
    return dict(spec_body(task_id, "shell", None, 0, False, None, 1.0), **extra)


def running_task(state):
    """Client c's task t, running on worker w (one slot, shell)."""
    client = peer(state, b"c", "client")
    worker = peer(state, b"w", "worker", slots=1, capabilities={"shell": dict(ATTRS[0])},
                  running=[])
    state.submit(client, [shell("t")], 0.0, Effects(), limit=LIMIT)
    fx = Effects()
    state.schedule(0.0, fx)
    assert [(w.name, t.id) for w, t in fx.dispatch] == [("w", "t")]
    return client, worker


def test_a_cancelled_task_whose_worker_is_lost_is_answered():
    state = State()
    client, worker = running_task(state)
    state.cancel(client, ["t"], 1.0, Effects())
    fx = Effects()
    state.remove_peer(worker, "stopped answering", fx)
    assert [(c.name, r["id"]) for c, r in fx.results] == [("c", "t")]


def test_a_task_cancelling_when_its_client_leaves_forgets_the_client():
    state = State()
    client, _ = running_task(state)
    state.cancel(client, ["t"], 1.0, Effects())
    state.remove_peer(client, "left", Effects())
    back = peer(state, b"c", "client", now=2.0)          # the same client, reconnected
    fx = Effects()
    state.submit(back, [shell("t", resume=True)], 2.0, fx, limit=LIMIT)
    assert state.tasks["t"].client is not client
    assert not [n for n in fx.notices if n[2] == Code.ID_IN_USE]


def test_a_resubmission_whose_client_left_is_not_revived():
    state = State()
    client, worker = running_task(state)
    state.remove_peer(client, "stopped answering", Effects())   # t: cancelling, for nobody
    second = peer(state, b"c", "client", now=1.0)
    state.submit(second, [shell("t", resume=True)], 1.0, Effects(), limit=LIMIT)
    state.remove_peer(second, "stopped answering", Effects())   # gone too
    peer(state, b"c", "client", now=2.0)                        # its routing id is back
    state.finish(worker, protocol.result_item("t", 1, "cancelled"), 3.0, Effects())
    assert "t" not in state.tasks, "revived for %s, which left" % state.tasks["t"].client.name


def test_a_client_may_cancel_its_resubmission_while_the_old_copy_stops():
    state = State()
    client, worker = running_task(state)
    state.remove_peer(client, "stopped answering", Effects())
    back = peer(state, b"c", "client", now=1.0)
    state.submit(back, [shell("t", resume=True)], 1.0, Effects(), limit=LIMIT)
    fx = Effects()
    state.cancel(back, ["t"], 2.0, fx)
    state.finish(worker, protocol.result_item("t", 1, "cancelled"), 3.0, fx)
    assert not fx.notices and "t" not in state.tasks
    assert [(c is back, r["status"]) for c, r in fx.results] == [(True, "cancelled")]


def test_a_second_client_cannot_take_an_id_waiting_to_be_revived():
    state = State()
    client, _ = running_task(state)
    state.remove_peer(client, "stopped answering", Effects())
    first, second = peer(state, b"b1", "client"), peer(state, b"b2", "client")
    state.submit(first, [shell("t")], 1.0, Effects(), limit=LIMIT)
    fx = Effects()
    state.submit(second, [shell("t")], 1.0, fx, limit=LIMIT)
    assert [(n[0].name, n[2]) for n in fx.notices] == [("b2", Code.ID_IN_USE)]


def test_a_worker_listing_more_tasks_than_slots_hides_no_other_slot():
    state = State()
    client = peer(state, b"c", "client")
    peer(state, b"w1", "worker", slots=1, capabilities={"shell": {}},
         running=[{"id": "x", "attempt": 1}, {"id": "y", "attempt": 1}])
    peer(state, b"w2", "worker", slots=1, capabilities={"shell": {}}, running=[])
    state.submit(client, [shell("t")], 0.0, Effects(), limit=LIMIT)
    fx = Effects()
    state.schedule(0.0, fx)
    assert [(w.name, t.id) for w, t in fx.dispatch] == [("w2", "t")]


def test_a_busy_machine_turning_stale_under_stale_run_gets_work():
    state = State(policies={"m": Policy(stale="run")})
    client = peer(state, b"c", "client")
    monitor = peer(state, b"mon", "monitor", machine="m")
    peer(state, b"w", "worker", machine="m", slots=1, capabilities={"shell": {}}, running=[])
    state.report(monitor, report_body("m", 1, 90, False, True, False), 0.0, Effects())  # busy
    state.submit(client, [shell("t")], 0.0, Effects(), limit=LIMIT)
    fx = Effects()
    state.schedule(0.5, fx)
    assert not fx.dispatch
    later = defaults.STALE_INTERVALS * 1.0 + 1.0          # its monitor fell silent
    assert state.machines["m"].eligible(later)
    state.schedule(later, fx)
    assert [(w.name, t.id) for w, t in fx.dispatch] == [("w", "t")]
