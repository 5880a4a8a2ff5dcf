"""The TaskManager's state: one registry of peers, one record per task and machine.

``State`` is the only writer of these records. Nothing here touches a socket:
methods take ``now`` and add what must be sent to an ``Effects``, so the server
loop stays a screen long and this module can be driven on its own (tests pass
the time in). A task's state changes only in ``transition``, which checks the
move against ``tasks.MOVES`` and keeps a bounded log of moves (``transitions``:
task, from, to, why, time, worker) that answers "why did this task run twice?".
"""

import itertools
import logging
from collections import Counter, OrderedDict, deque

from .. import defaults
from ..config import Policy
from ..wire.protocol import ROLES, Code, result_item
from . import constraints
from .fairshare import Ledger, Round
from .membership import Membership
from .queues import Queue
from .scheduler import Scheduler
from .shards import ShardedDict
from .tasks import CANCELLING, DONE, HELD, MOVES, QUEUED, RUNNING, Task, queue_key

log = logging.getLogger(__name__)


class Effects:
    """What the TaskManager must send after a state change."""

    __slots__ = ("dispatch", "cancel", "results", "notices", "suspend", "resume")

    def __init__(self):
        self.dispatch = []   # (worker, Task)
        self.cancel = []     # (worker, task id)
        self.results = []    # (client, result dict)
        self.notices = []    # (client, level, code, text, ids)
        self.suspend = []    # (worker, task id)
        self.resume = []     # (worker, task id)


def charge(spec):
    """The bytes a task of SUBMIT item ``spec`` holds here, counted against its client."""
    return len(spec["body"]) + defaults.TASK_OVERHEAD


class State(Membership):
    def __init__(self, max_attempts=defaults.MAX_ATTEMPTS, recovery_until=0.0, policies=None,
                 default_policy=None, placement="load", users=None,
                 half_life=defaults.USAGE_HALF_LIFE):
        self.peers = {}                # routing id -> Peer: the one registry
        self.roles = {role: {} for role in ROLES}   # role -> {routing id: Peer}, an index
        self.tasks = ShardedDict()     # task id -> Task, until DONE
        self.queues = {}               # queue key -> {fairshare.Run: its Queue of that key}
        self.machines = {}             # machine id -> Machine
        self.held = {}                 # task id -> Task resubmitted in the recovery grace
        self.adopted = {}              # task id -> Task a worker runs that no client claimed
        self.orphans = OrderedDict()   # task id -> (result, time): finished, nobody asked yet
        self.failures = deque(maxlen=defaults.RECENT_FAILURES)
        self.transitions = deque(maxlen=defaults.TRANSITION_LOG)
        self.expired = Counter()       # role -> peers dropped for silence
        self.staling = []              # heap of (stale_at, n, machine): reports to watch
        self.bugs = 0                  # impossible transitions refused
        self.scheduler = Scheduler(placement)
        self.ledger = Ledger(users, half_life)   # users, their usage and runs: fair share
        self.policies = dict(policies or {})
        self.default_policy = default_policy or Policy()
        self.max_attempts = max_attempts
        self.recovery_until = recovery_until
        self.dirty = False             # something changed that scheduling may act on
        self._seq = itertools.count()
        self._order = itertools.count()

    @property
    def workers(self):
        return self.roles["worker"]

    @property
    def clients(self):
        return self.roles["client"]

    # -- the lifecycle -----------------------------------------------------------
    def transition(self, task, to, why, now, worker=None):
        """Move ``task`` to state ``to``; the only place a task's state changes."""
        origin = task.state
        if to not in MOVES[origin]:
            self.bugs += 1
            log.error("TaskManager: bug: task %s cannot move from %s to %s (%s); ignored",
                      task.id, origin, to, why)
            return False
        by = worker if worker is not None else task.worker
        if origin == QUEUED:
            lane = task.queue
            if lane is not None:
                lane.discard(task)
                self._dequeued(task.run, lane)
            self.ledger.queued(task, -1)
        elif origin == HELD:
            del self.held[task.id]
        elif origin in (RUNNING, CANCELLING) and to != CANCELLING:
            self._vacate(task, now)
            self.adopted.pop(task.id, None)
        task.state = to
        if to == QUEUED:
            lane = self._lane(task)
            task.run.push(lane, task)
            self.ledger.queued(task, 1)
            self.dirty = True
        elif to == HELD:
            self.held[task.id] = task
        elif to == RUNNING:
            task.worker, task.started = worker, now
            worker.running[task.id] = task
            self.scheduler.taken(worker)
            self.ledger.occupy(task, now)
            if task.client is None:
                self.adopted[task.id] = task
        elif to == DONE:
            del self.tasks[task.id]
            if task.client is not None:
                task.client.tasks.discard(task.id)
        self.transitions.append((task.id, origin, to, why, now,
                                 by.name if by is not None else None))
        return True

    def _lane(self, task):
        """The queue of ``task``'s run for its key, made on first use."""
        if task.run is None:           # (adopted tasks are claimed before they can queue)
            task.run = self.ledger.stray()
        run = task.run
        lane = run.lanes.get(task.key)
        if lane is None:
            lane = run.lanes[task.key] = Queue(task.key)
            self.queues.setdefault(task.key, {})[run] = lane
        return lane

    def _dequeued(self, run, lane):
        """Forget ``lane`` once it holds no task (a task queued later makes another)."""
        if lane.live == 0:
            if run.lanes.get(lane.key) is lane:
                del run.lanes[lane.key]
                lanes = self.queues[lane.key]
                del lanes[run]
                if not lanes:
                    del self.queues[lane.key]

    def _vacate(self, task, now):
        self.ledger.vacate(task, now)
        worker, task.worker = task.worker, None
        if worker is None:
            return
        worker.running.pop(task.id, None)
        worker.machine_record.suspended.discard(task.id)
        if not worker.gone:
            self.scheduler.released(worker)
        self.dirty = True

    # -- clients ---------------------------------------------------------------
    def submit(self, client, specs, now, effects, limit,
               limit_bytes=defaults.MAX_QUEUED_BYTES_PER_CLIENT):
        """Queue a SUBMIT's tasks; tell the client once per reason why some wait.
        Tasks beyond the client's ``limit`` (tasks) or ``limit_bytes`` are refused."""
        waiting = {}
        account = self.ledger.account(client.user)
        held = held_bytes = None               # the user's, counted once a SUBMIT
        if account.max_queued is not None or account.max_queued_bytes is not None:
            held = sum(len(c.tasks) for c in account.clients)
            held_bytes = sum(c.tasks.bytes for c in account.clients)
        for spec in specs:
            own_id = spec["id"]
            task_id = client.scope + own_id
            refusal = None
            if task_id in self.tasks:
                pass                           # a resubmission: decided below
            elif len(client.tasks) >= limit:
                refusal = (Code.QUEUE_FULL, "this client already has %d task(s) queued or "
                           "running (taskmanager.max_queued_per_client)" % limit)
            elif client.tasks.bytes + charge(spec) > limit_bytes:
                refusal = (Code.QUEUE_BYTES, "this client's queued and running tasks "
                           "would hold more than %d bytes "
                           "(taskmanager.max_queued_bytes_per_client)" % limit_bytes)
            else:
                refusal = self._over_quota(account, spec, held, held_bytes)
            if refusal is not None:
                effects.results.append((client, result_item(
                    own_id, 0, "error", "refused: " + refusal[1], code=refusal[0])))
                continue
            if held is not None:
                held += 1
                held_bytes += charge(spec)
            task = self._submit(client, spec, now, effects)
            if task is None:
                continue
            reasons = waiting.get(task.key)
            if reasons is None:
                reasons = waiting[task.key] = [self.unmatched(task.key), []]
            if reasons[0] is not None:
                reasons[1].append(own_id)
        for key, (reason, ids) in waiting.items():
            if reason is not None and client.told.get(key) != reason[0]:
                client.told[key] = reason[0]
                effects.notices.append((client, "warning", reason[0], "%d task(s) wait: %s"
                                        % (len(ids), reason[1]), ids))
            elif reason is None:
                client.told.pop(key, None)

    @staticmethod
    def _over_quota(account, spec, held, held_bytes):
        """``(code, why)`` when user ``account`` may not queue ``spec``, else None."""
        user = account.name or "(no key name)"
        if spec.get("priority", 0) > 0 and not account.may_prioritize:
            return (Code.PRIORITY_REFUSED, "user %s may not use priority above 0 (farm.yaml "
                    "users.%s.priority)" % (user, user))
        if account.max_queued is not None and held >= account.max_queued:
            return (Code.USER_QUEUE_FULL, "user %s already has %d task(s) queued or running "
                    "(farm.yaml users.%s.max_queued)" % (user, held, user))
        if account.max_queued_bytes is not None \
                and held_bytes + charge(spec) > account.max_queued_bytes:
            return (Code.USER_QUEUE_BYTES, "user %s's queued and running tasks would hold "
                    "more than %d bytes (farm.yaml users.%s.max_queued_bytes)"
                    % (user, account.max_queued_bytes, user))
        return None

    def _submit(self, client, spec, now, effects):
        """One task from a SUBMIT; a repeated id from its owner is a no-op."""
        own_id = spec["id"]
        task_id = client.scope + own_id
        task = self.tasks.get(task_id)
        if task is not None:
            if task.client is None and task.state == CANCELLING:
                if task.revive is not None and task.revive[0] is not client \
                        and self.peers.get(task.revive[0].rid) is task.revive[0]:
                    effects.notices.append((client, "error", Code.ID_IN_USE, "task id %r is "
                                            "already in use by another client" % own_id,
                                            [own_id]))
                    return None
                task.revive = (client, spec)   # its old owner went: run it anew after
                client.tasks.add(task_id, charge(spec))   # it counts as this client's,
                return None                    # and is cancelled with it
            elif task.client is None:          # adopted from a worker after a restart
                task.claim(spec, client, self.max_attempts)
                task.key = queue_key(spec["capability"], spec.get("requires"))
                task.run = self.ledger.run(client, spec)
                self.ledger.occupy(task, now)
                client.tasks.add(task_id, charge(spec))
                self.adopted.pop(task_id, None)
                return task
            elif task.client is not client:
                effects.notices.append((client, "error", Code.ID_IN_USE, "task id %r is "
                                        "already in use by another client" % own_id, [own_id]))
            return None
        orphan = self.orphans.pop(task_id, None) if spec.get("resume") else None
        if orphan is not None:                 # it finished while its client reconnected
            effects.results.append((client, dict(orphan[0], id=own_id)))
            return None
        key = self._intern(queue_key(spec["capability"], spec.get("requires")))
        task = Task.from_spec(spec, client, key, next(self._seq), self.max_attempts)
        task.run = self.ledger.run(client, spec)
        self.tasks[task_id] = task
        client.tasks.add(task_id, charge(spec))
        if spec.get("resume") and now < self.recovery_until:
            self.transition(task, HELD, "resubmitted in the recovery grace", now)
        else:
            self.transition(task, QUEUED, "submitted", now)
        return task

    def _intern(self, key):
        """The key object of an existing queue, so tasks share it."""
        lanes = self.queues.get(key)
        return next(iter(lanes.values())).key if lanes else key

    def unmatched(self, key):
        """``(code, why)`` no worker could take tasks of queue ``key`` now, or None."""
        capability, requires = key
        profiles = self.scheduler.by_capability.get(capability)
        if not profiles:
            return Code.NO_CAPABILITY, "no worker offers capability %r yet" % capability
        if requires and not self.scheduler.matching(key):
            return Code.NO_MATCH, "no worker with capability %r matches %s yet" % (
                capability, constraints.describe(dict(requires)))
        return None

    def output_for(self, item):
        """The task whose client a live OUTPUT item goes to, if it still wants it."""
        task = self.tasks.get(item["id"])
        if task is not None and task.stream and task.client is not None \
                and task.attempt == item["attempt"]:
            return task
        return None

    def cancel(self, client, own_ids, now, effects):
        for own_id in own_ids:
            task_id = client.scope + own_id
            task = self.tasks.get(task_id)
            if task is None:
                continue
            if task.client is None and task.revive is not None and task.revive[0] is client:
                task.revive = None             # its resubmission, waiting for the old copy
                client.tasks.discard(task_id)
                effects.results.append((client, result_item(
                    own_id, 0, "cancelled", "cancelled before it ran",
                    code=Code.CANCELLED_QUEUED)))
                continue
            if task.client is None and task.state == RUNNING:
                task.revive = None             # adopted after a restart, never claimed:
                self._cancel(task, effects, tell_client=False, now=now)   # its key's own
                self.adopted.pop(task.id, None)
                continue
            if task.client is not client:
                effects.notices.append((client, "error", Code.NOT_YOURS, "task %r is not "
                                        "yours to cancel" % own_id, [own_id]))
                continue
            self._cancel(task, effects, tell_client=True, now=now)

    def _cancel(self, task, effects, tell_client, now):
        if task.state in (QUEUED, HELD):
            client = task.client
            self.transition(task, DONE, "cancelled before it ran", now)
            if tell_client:
                effects.results.append((client, result_item(
                    task.own_id, task.attempt, "cancelled", "cancelled before it ran",
                    code=Code.CANCELLED_QUEUED)))
        elif task.state in (RUNNING, CANCELLING):
            if task.state == RUNNING:
                self.transition(task, CANCELLING, "cancelled", now)
                task.requeue = False           # a cancel wins over an owner's requeue
                effects.cancel.append((task.worker, task.id))
            if not tell_client and task.client is not None:   # its client is gone
                task.client.tasks.discard(task.id)
                task.client = None

    # -- results ---------------------------------------------------------------
    def finish(self, worker, result, now, effects):
        """A worker's RESULT for one task (the worker may forget it afterwards)."""
        task = worker.running.get(result["id"])
        if task is None or task.attempt != result["attempt"]:
            if self.tasks.get(result["id"]) is None:
                self._keep_orphan(result, worker, now)
            return                             # stale: another attempt owns the task
        result["host"], result["worker"], result["machine"] = \
            worker.host, worker.name, worker.machine
        if result["status"] in ("ok", "failed") and result.get("duration") is not None:
            self.scheduler.paced(worker, result["duration"])   # none said: pace unknown
        if task.requeue and result["status"] == "cancelled" and task.client is not None:
            task.requeue = False
            task.max_attempts += 1             # the owner's return is not the task's failure
            task.lost("%s (requeued for its owner)" % worker.describe())
            self.transition(task, QUEUED, "requeued for the machine's owner", now)
            return
        if result["status"] not in ("ok", "cancelled"):
            self.failures.append({"task": task.id, "id": task.own_id or task.id,
                                  "label": task.label, "status": result["status"],
                                  "error": result.get("error"), "host": worker.host,
                                  "worker": worker.name, "time": now})
        if task.client is not None:
            result["id"] = task.own_id
            effects.results.append((task.client, result))
        elif task.state != CANCELLING:
            self._keep_orphan(result, worker, now)
        self.transition(task, DONE, result["status"], now)
        self._revive(task, now, effects)

    def _revive(self, task, now, effects):
        client = task.revive[0] if task.revive is not None else None
        if client is not None and self.peers.get(client.rid) is client:
            client.tasks.discard(task.id)
            self._submit(client, task.revive[1], now, effects)

    def _keep_orphan(self, result, worker, now):
        result.setdefault("host", worker.host)
        result.setdefault("worker", worker.name)
        self.orphans[result["id"]] = (result, now)
        while len(self.orphans) > defaults.ORPHAN_RESULTS_MAX:
            self.orphans.popitem(last=False)

    def undeliverable(self, worker, task_ids, now):
        """DISPATCHes to ``worker`` that could not be sent: back to their queues."""
        for task_id in task_ids:
            task = self.tasks.get(task_id)
            if task is not None and task.worker is worker and task.state == RUNNING:
                task.attempt -= 1
                self.transition(task, QUEUED, "its dispatch could not be sent", now)

    # -- scheduling ------------------------------------------------------------
    def schedule(self, now, effects, budget=defaults.SCHEDULE_BUDGET):
        """Assign queued tasks to free, matching workers: the user of least usage per
        weight first, that user's runs in turn, a run's tasks by priority then
        submission (``fairshare.Round``); nice runs after every other. At most
        ``budget`` assignments a call: the rest wait for the next (``dirty`` stays
        set). Returns how many were made."""
        budget = allowed = max(1, budget)
        self.dirty = False
        if self.staling and self.staling[0][0] < now:
            self.turn_stale(now, effects)
        if self.held and now >= self.recovery_until:
            for task in list(self.held.values()):
                self.transition(task, QUEUED, "the recovery grace is over", now)
        scheduler = self.scheduler
        if scheduler.placement == "round-robin":
            workers = self.workers.values()

            def find(lane):
                return scheduler.in_turn(lane, workers) \
                    if scheduler.has_free(lane.capability) else None
        else:
            def find(lane):
                return scheduler.best(lane, now) if scheduler.has_free(lane.capability) else None
        for nice in (False, True):
            if nice and not self.ledger.nice_queued:
                break
            walk = Round(self.ledger, now, nice, find)
            try:
                while scheduler.any_free():
                    picked = walk.next()
                    if picked is None:
                        break
                    if budget <= 0:
                        self.dirty = True
                        return allowed
                    account, run, lane, worker = picked
                    task = lane.pop()
                    scheduler.turn += 1
                    budget -= 1
                    self._assign(task, worker, now, effects)
                    self._dequeued(run, lane)
                    walk.placed(account, run)
            finally:
                walk.close()
        return allowed - budget

    def _assign(self, task, worker, now, effects):
        task.attempt += 1
        worker.assigned += 1
        worker.machine_record.place(task.load)
        self.transition(task, RUNNING, "assigned", now, worker)
        effects.dispatch.append((worker, task))

    def compaction(self):
        """Steps that rebuild the tables that only grow, after most of their entries
        left; each costs what the table once held, so they are run one at a time."""
        def tasks():
            self.tasks.compact()

        def client(peer):
            peer.tasks.compact()

        def queues():
            for lanes in self.queues.values():
                for lane in lanes.values():
                    lane.compact()
        return [tasks, queues] + [lambda peer=peer: client(peer)
                                  for peer in self.clients.values()]
