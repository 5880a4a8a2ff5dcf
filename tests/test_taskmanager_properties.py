"""Properties of the TaskManager's State under random sequences of what peers say.

``Model`` drives a ``State`` the way the server does (``seen`` before each message
of a registered peer, the same calls in the same order) and keeps its own account
beside it: what each client submitted and is owed, what each worker process runs
(what it was dispatched or listed in its hello), the reports each machine sent and
the load placed on it. After every step it checks the State against that account:

- every live task is in exactly one place: queued (in its queue, counted once in
  ``queue.live``), held, or on the ``running`` of exactly one registered worker;
  the registry, ``adopted``, ``held`` and each client's ``tasks`` agree with it;
- a worker runs only what it was dispatched or said it runs, at that attempt;
- the scheduler's ``free`` per capability is the sum of the free slots of the
  registered workers offering it. Slots: a worker's hello is the truth about what
  it runs, so a hello may list more tasks than slots (a worker re-registering with
  fewer slots); such a worker has 0 free slots, never a negative number, and gets
  no DISPATCH until it is below its slots again. A DISPATCH never takes a worker
  beyond its slots;
- each DISPATCH goes to a registered worker offering the task's capability with
  attributes matching its constraints, on an eligible machine (the test's own
  reading of the reports and policies), and it is the worker a full scan picks:
  the least ``rank`` (the test's own computation, replaying the assignments of
  the call one by one), ties broken by registration order; after ``schedule`` no
  queued task has a free, matching, eligible worker;
- a result goes to a client only for a submission it made that is still owed
  one: never twice, never after the client left; a submission with no result yet
  is live (owned by its client, or waiting to be revived for it), until its client
  leaves; ``drain`` checks that each one does get its result in the end;
- an owner's cancel is never refused; effects name peers registered when the step
  began; ``state.bugs`` stays 0.
"""

import contextlib
import itertools
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from computefarm import defaults
from computefarm.config import Policy
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
NOTICE_CODES = {Code.NO_CAPABILITY, Code.NO_MATCH, Code.ID_IN_USE, Code.NOT_YOURS}

policies = st.builds(Policy, on_owner=st.sampled_from(["suspend", "requeue", "continue"]),
                     stale=st.sampled_from(["hold", "run"]),
                     requeue_grace=st.sampled_from([0.0, 2.0]))
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
        self.closed = {}                    # (task id, client Peer) -> "resolved" / "client left"
        self.delivered = Counter()          # Submission serial -> results it got
        self.believed = {}                  # worker rid -> {task id: attempt} the process runs
        self.history = set()                # (worker rid, task id, attempt) it may report (again)
        self.slots = {}                     # worker rid -> slots of its last hello
        self.caps = {}                      # worker rid -> capabilities of its last hello
        self.order = {}                     # Peer -> registration order
        self.assigned = Counter()           # worker Peer -> DISPATCHes since it registered
        self.reports = {}                   # machine id -> (report, when)
        self.load = Counter()               # machine id -> task load placed since its report
        self.last_dispatch = {}             # worker rid -> ids of the previous step's DISPATCH
        self.serials = itertools.count()
        self.orders = itertools.count()
        self.dispatches = 0

    # -- the test's reading of machines and workers ------------------------------
    def eligible(self, machine):
        policy = self.policies.get(machine, Policy())
        if machine not in self.reports:
            return True                                  # unmonitored
        report, when = self.reports[machine]
        if self.now > when + defaults.STALE_INTERVALS * report["interval"]:
            return policy.stale == "run"
        cores = max(1, report["cores"])
        return (report["owner_cpu"] <= policy.owner_cpu_limit
                and report["load_avg"][0] / cores <= policy.max_load
                and report["memory_available"] >= policy.min_free_memory * MIB)

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

    def offers(self, worker, task):
        attributes = self.caps[worker.rid].get(task.capability)
        return attributes is not None and reference_matches(attributes, task.requires)

    # -- one step: what the server does for one message ---------------------------
    @contextlib.contextmanager
    def step(self, removal=False):
        before = dict(self.state.peers)
        fx = Effects()
        yield fx
        self.settle(fx, before, removal)
        self.check()

    def settle(self, fx, before, removal):
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
                assert before.get(worker.rid) is worker, "%s of %s to an unregistered worker" % (
                    kind, task_id)
        for client, _level, code, _text, _ids in fx.notices:
            assert code in NOTICE_CODES, code
            assert before.get(client.rid) is client, "NOTICE to an unregistered client"
        for client, result in fx.results:
            key = (result["id"], client)
            sub = self.open.pop(key, None)
            assert sub is not None, "RESULT %s for task %s to client %s: %s" % (
                result["status"], result["id"], client.name,
                {"resolved": "a second result for one submission",
                 "client left": "its client left before"}.get(self.closed.get(key),
                                                              "it never submitted it"))
            assert before.get(client.rid) is client or state.clients.get(client.rid) is client
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
            if task.state == QUEUED:
                queue = state.queues.get(task.key)
                assert queue is not None and task.queue is queue, "queued %s is in no queue" % task_id
                queued[task.key] += 1
            else:
                assert task.queue is None
            assert (task.state == HELD) == (state.held.get(task_id) is task)
            assert (task.state in (RUNNING, CANCELLING)) == (task_id in on_workers), task.state
            assert task.state in (QUEUED, HELD, RUNNING, CANCELLING), task.state
            if task.client is not None:
                assert clients.get(task.client.rid) is task.client, (
                    "live task %s (%s) belongs to client %s, which left"
                    % (task_id, task.state, task.client.name))
        assert len(state.held) == sum(t.state == HELD for t in state.tasks.values())
        for key, queue in state.queues.items():
            assert queue.live == queued[key], "queue %s counts %d, holds %d" % (
                key, queue.live, queued[key])
        for client in clients.values():
            assert client.tasks == {i for i, t in state.tasks.items() if t.client is client}
        assert set(state.adopted) == {i for i, t in state.tasks.items()
                                      if t.client is None and t.state == RUNNING}
        free = Counter()
        for worker in workers.values():
            assert worker.slots == self.slots[worker.rid]
            for capability in worker.capabilities:
                free[capability] += max(0, worker.slots - len(worker.running))
        assert {c: n for c, n in state.scheduler.free.items()} == dict(
            {c: 0 for w in workers.values() for c in w.capabilities}, **free), \
            "scheduler.free %s, free slots %s" % (state.scheduler.free, dict(free))
        for (task_id, client), sub in self.open.items():
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

    def monitor_hello(self, machine):
        self.hello(MONITOR_OF[machine], protocol.hello("monitor", "mon", "h-" + machine,
                                                       machine, 1))

    def leave(self, rid, requeue_only=True):
        peer = self.state.peers.get(rid)
        if peer is None:
            return
        with self.step(removal=True) as fx:
            self.state.seen(peer, self.now)
            self.state.remove_peer(peer, "left", fx, requeue_only=requeue_only)

    def submit(self, rid, specs):
        client = self.state.clients.get(rid)
        if client is None:
            return                          # the server answers RECONNECT
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
        client = self.state.clients.get(rid)
        if client is None:
            return
        with self.step() as fx:
            self.state.seen(client, self.now)
            self.state.cancel(client, ids, self.now, fx)
            for c, _, code, _, refused in fx.notices:
                assert code == Code.NOT_YOURS
                for task_id in refused:
                    assert (task_id, client) not in self.open, (
                        "client %s may not cancel its own task %s" % (client.name, task_id))

    def result(self, rid, task_id, attempt, status):
        worker = self.state.workers.get(rid)
        if worker is None:
            return
        with self.step() as fx:
            self.state.seen(worker, self.now)
            self.state.finish(worker, protocol.result_item(task_id, attempt, status,
                                                           exit_code=int(status != "ok")),
                              self.now, fx)
        self.history.add((rid, task_id, attempt))
        if self.believed.get(rid, {}).get(task_id) == attempt:
            del self.believed[rid][task_id]   # sent: the process forgets it (it may resend)

    def undeliverable(self, rid, ids):
        worker = self.state.workers.get(rid)
        if worker is None:
            return
        with self.step():
            self.state.undeliverable(worker, ids, self.now)
        for task_id in ids:
            attempt = self.believed[rid].pop(task_id, None)
            self.history.discard((rid, task_id, attempt))

    def report(self, machine, body):
        monitor = self.state.peers.get(MONITOR_OF[machine])
        if monitor is None:
            return
        with self.step() as fx:
            self.state.seen(monitor, self.now)
            self.state.report(monitor, body, self.now, fx)
        self.reports[machine] = (body, self.now)
        self.load[machine] = 0.0

    def expire(self):
        with self.step(removal=True) as fx:
            self.state.expire(self.now, TIMEOUT, fx)

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
        for task in state.tasks.values():
            if task.state == QUEUED:
                idle = [w.name for w in state.workers.values()
                        if w.slots > len(w.running) and self.offers(w, task)
                        and self.eligible(self.machine_of[w.rid])]
                assert not idle, "task %s stays queued while %s are free" % (task.id, idle)
        assert not (state.held and self.now >= state.recovery_until)

    def check_placement(self, dispatch, running):
        """Replay the DISPATCHes of one ``schedule`` against a full scan of the workers."""
        running, assigned, load = dict(running), Counter(self.assigned), Counter(self.load)
        for worker, task in dispatch:
            candidates = [w for w in running if running[w] < self.slots[w.rid]
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

    def drain(self, drainers=()):
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
        assert not self.state.tasks or all(t.client is None for t in self.state.tasks.values())
        for rid, _ in drainers:
            self.leave(rid)


class FarmMachine(RuleBasedStateMachine):
    """Random clients, workers and monitors talking to one State."""

    @initialize(restarted=st.booleans(), max_attempts=st.integers(1, 3),
                limit=st.sampled_from([3, LIMIT]),
                machine_policies=st.lists(policies, min_size=3, max_size=3),
                before=st.dictionaries(st.sampled_from(sorted(MACHINE_OF)), st.dictionaries(
                    st.sampled_from(TASK_IDS), st.integers(1, 3), max_size=2), max_size=2))
    def start(self, restarted, max_attempts, limit, machine_policies, before):
        now = 100.0
        policy_of = dict(zip(MACHINES, machine_policies))
        state = State(max_attempts=max_attempts, policies=policy_of,
                      recovery_until=now + GRACE if restarted else 0.0)
        self.model = Model(state, now, MACHINE_OF, policy_of, limit)
        if restarted:                  # what workers ran under the TaskManager before this one
            self.model.believed.update(before)

    # -- clients ----------------------------------------------------------------
    @rule(rid=st.sampled_from(CLIENTS))
    def client_hello(self, rid):
        self.model.client_hello(rid)

    @rule(rid=st.sampled_from(CLIENTS))
    def client_leaves(self, rid):
        self.model.leave(rid)

    @rule(rid=st.sampled_from(CLIENTS),
          ids=st.lists(st.sampled_from(TASK_IDS), min_size=1, max_size=3, unique=True),
          capability=st.sampled_from(CAPS), requires=st.sampled_from(REQUIRES),
          priority=st.integers(0, 2), resume=st.booleans(),
          max_attempts=st.sampled_from([None, 1, 2, 3]), load=st.sampled_from([0.5, 1.0, 2.0]))
    def submit(self, rid, ids, capability, requires, priority, resume, max_attempts, load):
        self.model.submit(rid, [spec_body(i, capability, requires, priority, resume,
                                          max_attempts, load) for i in ids])

    @rule(rid=st.sampled_from(CLIENTS),
          ids=st.lists(st.sampled_from(TASK_IDS), min_size=1, max_size=3, unique=True))
    def cancel(self, rid, ids):
        self.model.cancel(rid, ids)

    # -- workers ----------------------------------------------------------------
    @rule(rid=st.sampled_from(sorted(MACHINE_OF)), slots=st.integers(1, 3), caps=capabilities,
          data=st.data())
    def worker_hello(self, rid, slots, caps, data):
        """A first hello, a reconnection after expiry, or a repeat (with what it runs)."""
        believed = self.model.believed.get(rid, {})
        keep = data.draw(st.lists(st.sampled_from(sorted(believed)), unique=True)
                         if believed else st.just([]), label="still running")
        claims = data.draw(st.dictionaries(st.sampled_from(TASK_IDS), st.integers(1, 3),
                                           max_size=1), label="also running")
        running = [{"id": i, "attempt": believed[i], "capability": "shell"} for i in keep]
        running += [{"id": i, "attempt": a, "capability": data.draw(st.sampled_from(CAPS))}
                    for i, a in claims.items() if i not in keep]
        self.model.worker_hello(rid, slots, caps, running)

    @rule(rid=st.sampled_from(sorted(MACHINE_OF)), requeue_only=st.booleans(),
          dies=st.booleans())
    def worker_leaves(self, rid, requeue_only, dies):
        self.model.leave(rid, requeue_only)
        if dies:
            self.model.believed.pop(rid, None)

    @rule(data=st.data(), status=st.sampled_from(["ok", "failed", "cancelled", "timeout"]),
          fresh=st.booleans())
    def worker_result(self, data, status, fresh):
        """A result for a task a worker runs, or a stale or repeated one."""
        live = sorted((rid, i, a) for rid, tasks in self.model.believed.items()
                      for i, a in tasks.items())
        pool = live if fresh and live else sorted(self.model.history)
        if pool:
            self.model.result(*data.draw(st.sampled_from(pool)), status)

    @rule(data=st.data())
    def undeliverable(self, data):
        """The DISPATCH just made to a worker could not be sent."""
        if self.model.last_dispatch:
            rid = data.draw(st.sampled_from(sorted(self.model.last_dispatch)))
            ids = self.model.last_dispatch[rid]
            self.model.undeliverable(rid, data.draw(st.lists(st.sampled_from(ids), min_size=1,
                                                             unique=True)))

    # -- monitors -----------------------------------------------------------------
    @rule(machine=st.sampled_from(MACHINES))
    def monitor_hello(self, machine):
        self.model.monitor_hello(machine)

    @rule(machine=st.sampled_from(MACHINES))
    def monitor_leaves(self, machine):
        self.model.leave(MONITOR_OF[machine])

    @rule(machine=st.sampled_from(MACHINES), cores=st.integers(1, 8),
          cpu=st.integers(0, 100), owner=st.booleans(), busy=st.booleans(),
          low_memory=st.booleans())
    def monitor_report(self, machine, cores, cpu, owner, busy, low_memory):
        self.model.report(machine, report_body(machine, cores, cpu, owner, busy, low_memory))

    # -- the TaskManager's loop -----------------------------------------------------
    @rule()
    def schedule(self):
        self.model.schedule()

    @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 4.0, 400.0]), everyone=st.booleans())
    def time_passes(self, dt, everyone):
        self.model.now += dt
        if everyone:
            self.model.heartbeat()

    @rule(rid=st.sampled_from(CLIENTS + tuple(MACHINE_OF) + tuple(MONITOR_OF.values())))
    def heartbeat(self, rid):
        self.model.heartbeat(rid)

    @rule()
    def expire(self):
        self.model.expire()

    @rule()
    def drain(self):
        self.model.drain([(b"d%d" % i, "m-drain") for i in range(len(ATTRS))])

    @invariant()
    def consistent(self):
        if hasattr(self, "model"):
            self.model.check()


FarmMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50,
                                         deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestFarmStateMachine = FarmMachine.TestCase


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_placement_matches_a_full_scan(data):
    """Each DISPATCH of ``schedule`` goes to the free, matching, eligible worker of least
    rank (registration order breaking ties), as a scan of every worker would choose."""
    machines = ["pm%d" % i for i in range(data.draw(st.integers(2, 4), label="machines"))]
    policy_of = {m: data.draw(policies, label="policy") for m in machines}
    workers = data.draw(st.lists(st.tuples(st.sampled_from(machines), st.integers(1, 4),
                                           capabilities), min_size=2, max_size=8), label="workers")
    machine_of = {b"pw%d" % i: m for i, (m, _, _) in enumerate(workers)}
    model = Model(State(policies=policy_of), 10.0, machine_of, policy_of)
    for machine in machines:
        model.hello(b"pmon-" + machine.encode(),
                    protocol.hello("monitor", "mon", "h", machine, 1))
    monitor_of = {m: model.state.peers[b"pmon-" + m.encode()] for m in machines}
    reports = st.builds(report_body, st.just(""), st.integers(1, 16), st.integers(0, 100),
                        st.booleans(), st.booleans(), st.booleans())

    def report(machine):
        body = dict(data.draw(reports, label="report"), machine=machine)
        with model.step() as fx:
            model.state.report(monitor_of[machine], body, model.now, fx)
        model.reports[machine] = (body, model.now)
        model.load[machine] = 0.0

    for machine in machines:
        report(machine)
    for i, (_, slots, caps) in enumerate(workers):
        model.worker_hello(b"pw%d" % i, slots, caps, [])
    model.client_hello(b"pc")
    ids = itertools.count()
    for _ in range(data.draw(st.integers(2, 14), label="steps")):
        op = data.draw(st.sampled_from(["submit", "schedule", "finish", "report", "time"]))
        if op == "submit":
            specs = [spec_body("p%d" % next(ids), data.draw(st.sampled_from(CAPS)),
                               data.draw(st.sampled_from(REQUIRES)), data.draw(st.integers(0, 2)),
                               False, None, data.draw(st.sampled_from([0.5, 1.0, 4.0])))
                     for _ in range(data.draw(st.integers(1, 8)))]
            model.submit(b"pc", specs)
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
