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
from ..wire.protocol import ROLES
from .fairshare import Ledger, Round
from .membership import Membership
from .queues import Queue
from .scheduler import Scheduler
from .shards import ShardedDict
from .submissions import Submissions
from .tasks import CANCELLING, DONE, HELD, MOVES, QUEUED, RUNNING

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


class State(Membership, Submissions):
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
        self.speculating = {}          # task id -> running Task that may get a copy
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
        if task.speculate and origin == RUNNING:
            self.speculating.pop(task.id, None)
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
            self.ledger.occupy(task)
            if task.client is None:
                self.adopted[task.id] = task
            elif task.speculate:
                self.speculating[task.id] = task
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
            if nice and not self.ledger.nice_queued or not scheduler.any_free():
                break                  # (a round costs a step per user: not for nothing)
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
