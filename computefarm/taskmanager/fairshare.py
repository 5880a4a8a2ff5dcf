"""Who gets the next free slot: users by recent usage over weight, then a user's runs.

HTCondor's fair share, simplified. Each user (the name of a client's key) has
an ``Account``: its weight and limits (farm.yaml ``users:``) and its *usage*,
the slot-seconds of its finished tasks halved every ``half_life`` seconds,
plus the time its running tasks have run so far, plus an estimate for each
(the moving average of its run times), so the slots handed out in one
scheduling round count at once. Of the users with a task a free slot can take,
the lowest usage / weight goes next: a user with little recent usage (a
newcomer) goes first, and over time busy users' shares follow their weights.

Within a user, each client's submissions form a ``Run`` (one per client and
group name: a majordomo run, a batch, a client library's work spec). The runs
of the highest group priority share the user's slots by weight (the fewest
running per weight goes next, then the least recently served). Within a run,
its tasks wait in a ``queues.Queue`` per capability and constraints (a
*lane*), ordered by task priority, then submission; its lanes in a heap by
their best task. A ``nice`` run gets only
what every other run leaves: it is served in a second round.

``Ledger`` owns the accounts and runs. ``State.transition`` tells it when a
task joins or leaves a queue and when it takes or leaves a slot; ``Round``
walks one scheduling call: a heap of accounts by usage / weight, a heap of each
account's runs by their turn, and each run's lanes by their best task (a lane
that cannot place now cannot later in the same call, as workers only fill up:
it is set aside until the call ends). An assignment costs a few heap steps
plus the lanes set aside, never a scan of the queued tasks, lanes or runs.
"""

import heapq
import itertools

from .. import defaults
from ..config import UserPolicy

STRAY = "(unclaimed)"         # the user of a task queued without a client


class Account:
    """One user: its farm.yaml policy, its usage, its runs."""

    __slots__ = ("name", "weight", "max_slots", "max_queued", "max_queued_bytes",
                 "may_prioritize", "usage", "stamp", "running", "started", "estimate",
                 "queued", "runs", "clients", "order")

    def __init__(self, name, policy, order):
        self.name = name
        self.weight = policy.weight
        self.max_slots = policy.max_slots          # None: no limit
        self.max_queued = policy.max_queued        # tasks queued or running, None: no limit
        self.max_queued_bytes = policy.max_queued_bytes
        self.may_prioritize = policy.priority      # may submit tasks with priority > 0
        self.usage = 0.0              # slot-seconds of finished tasks, decayed to ``stamp``
        self.stamp = 0.0
        self.running = 0              # slots its tasks hold (running or stopping)
        self.started = 0.0            # the sum of those tasks' start times
        self.estimate = None          # moving average of its tasks' run times (s)
        self.queued = 0               # its tasks in queues
        self.runs = set()
        self.clients = set()
        self.order = order            # first seen: the last tie-break

    def full(self):
        return self.max_slots is not None and self.running >= self.max_slots


class Run:
    """One client's submissions under one group name: their lanes and slots.

    ``heap`` orders its lanes by their best task, lazily: an entry is checked
    against its lane's head when reached (re-pushed if the head moved, dropped if
    the lane is empty or gone); a task that becomes its lane's head pushes a new
    entry, so a lane is never later in the heap than its best task says."""

    __slots__ = ("account", "client", "group", "nice", "priority", "weight", "running",
                 "queued", "lanes", "heap", "served", "order")

    def __init__(self, account, client, group, nice, order):
        self.account = account
        self.client = client
        self.group = group
        self.nice = nice
        self.priority = 0             # the group's priority among the user's runs
        self.weight = 1.0             # ... and its weight among those of equal priority
        self.running = 0
        self.queued = 0
        self.lanes = {}               # queue key -> queues.Queue of this run's tasks
        self.heap = []                # (head, n, lane): its lanes by their best task
        self.served = 0               # the ledger's tick when it last got a slot
        self.order = order

    def push(self, lane, task):
        """Queue ``task`` in its ``lane`` (one of this run's)."""
        rank = (-task.priority, task.seq)
        ahead = lane.live == 0 or rank < lane.head()
        lane.push(task)
        if ahead:
            heapq.heappush(self.heap, (rank, next(_ENTRIES), lane))
            if len(self.heap) > 4 * len(self.lanes) + 64:
                self.heap = [(lane.head(), next(_ENTRIES), lane)
                             for lane in self.lanes.values() if lane.live]
                heapq.heapify(self.heap)

    def turn(self):
        """Its place among its user's runs: highest group priority, then the fewest
        running per weight, then the least recently served."""
        return (-self.priority, self.running / self.weight, self.served, self.order, self)


_ENTRIES = itertools.count()      # tie-breaks of lane heap entries


class Ledger:
    def __init__(self, users=None, half_life=defaults.USAGE_HALF_LIFE):
        self.policies = dict(users or {})    # user name -> config.UserPolicy
        self.default = UserPolicy()          # users farm.yaml does not name
        self.half_life = half_life
        self.accounts = {}            # user name -> Account
        self.tick = 0                 # assignments so far: runs' turns
        self.nice_queued = 0          # tasks of nice runs in queues
        self._stray = None
        self._order = itertools.count()

    # -- who ---------------------------------------------------------------------
    def account(self, name):
        account = self.accounts.get(name)
        if account is None:
            account = self.accounts[name] = Account(
                name, self.policies.get(name, self.default), next(self._order))
        return account

    def join(self, client):
        """A client said hello: its user's account counts it (its runs: ``run``)."""
        self.account(client.user).clients.add(client)

    def leave(self, client, now):
        account = self.accounts.get(client.user)
        if account is None:
            return
        account.clients.discard(client)
        for run in (client.runs or {}).values():
            account.runs.discard(run)
        client.runs = {}
        if not (account.clients or account.runs or account.running or account.queued) \
                and self.usage(account, now) < defaults.USAGE_FORGOTTEN:
            del self.accounts[account.name]   # nothing to remember it by

    def stray(self):
        """The run of a task queued without one (adopted tasks are claimed first, so
        none is expected): its tasks are served like any user's."""
        if self._stray is None:
            account = self.account(STRAY)
            self._stray = Run(account, None, None, False, next(self._order))
            account.runs.add(self._stray)
        return self._stray

    def run(self, client, spec):
        """The run a SUBMIT item of ``client`` belongs to (its ``group``)."""
        group = spec.get("group")
        run = client.runs.get(group)
        if run is None:
            account = self.account(client.user)
            run = client.runs[group] = Run(account, client, group, client.nice,
                                           next(self._order))
            account.runs.add(run)
        if "group_priority" in spec:
            run.priority = spec["group_priority"]
        if "group_weight" in spec:
            run.weight = spec["group_weight"]
        return run

    # -- usage -------------------------------------------------------------------
    def usage(self, account, now):
        """Slot-seconds: finished (decayed) plus those of its running tasks so far."""
        return self._decayed(account, now) + account.running * now - account.started

    def _decayed(self, account, now):
        """Its finished tasks' slot-seconds, halved every ``half_life`` to ``now``."""
        if not account.usage:
            return 0.0
        return account.usage * 0.5 ** ((now - account.stamp) / self.half_life)

    def key(self, account, now):
        """Lower goes sooner: usage, plus its moving average run time for each running
        task (what it may still use), per unit of weight."""
        estimate = defaults.USAGE_ESTIMATE if account.estimate is None else account.estimate
        return (self.usage(account, now) + account.running * estimate) / account.weight

    def occupy(self, task):
        """``task`` took a slot (it started at ``task.started``)."""
        run = task.run
        if run is None or task.charged is not None:
            return
        task.charged = run
        run.running += 1
        account = run.account
        account.running += 1
        account.started += task.started

    def vacate(self, task, now):
        """``task`` left its slot: its run time joins its user's usage."""
        run, task.charged = task.charged, None
        if run is None:
            return
        run.running -= 1
        account = run.account
        account.running -= 1
        account.started -= task.started
        spent = max(0.0, now - task.started)
        account.usage = self._decayed(account, now) + spent
        account.stamp = now
        account.estimate = spent if account.estimate is None else \
            account.estimate + defaults.USAGE_SMOOTHING * (spent - account.estimate)
        if account.running == 0:
            account.started = 0.0     # no float drift left behind

    def queued(self, task, change):
        run = task.run
        if run is not None:
            run.queued += change
            run.account.queued += change
            if run.nice:
                self.nice_queued += change

    def describe(self, now):
        """Per user: running, queued, usage, weight and share of the running slots."""
        running = sum(a.running for a in self.accounts.values()) or 1
        return {a.name: {"running": a.running, "queued": a.queued,
                         "usage": round(self.usage(a, now), 1), "weight": a.weight,
                         "share": round(a.running / running, 3)}
                for a in self.accounts.values()
                if a.running or a.queued or a.clients or a.usage > 1e-3}


class Round:
    """One scheduling call's walk, for the runs of one niceness: ``next`` says which
    lane's next task goes to which worker; ``placed`` is told when it went;
    ``close`` puts back the lanes it set aside (they could place nothing now)."""

    def __init__(self, ledger, now, nice, find):
        self.ledger = ledger
        self.now = now
        self.nice = nice
        self.find = find              # lane -> a free worker that can take its tasks, or None
        self.turns = {}               # account -> heap of its runs' turns (Run.turn)
        self.aside = []               # (run, lane heap entry) that could not place a task
        self.full = set()             # queue keys no free worker takes now: the lanes of
        #                               every run with that key are set aside at a glance
        self.heap = [(ledger.key(a, now), a.order, a) for a in ledger.accounts.values()
                     if a.queued and not a.full()]
        heapq.heapify(self.heap)

    def next(self):
        """``(account, run, lane, worker)`` of the next assignment, or None."""
        heap = self.heap
        while heap:
            account = heap[0][2]
            picked = self._pick(account)
            if picked is not None:
                return (account,) + picked
            heapq.heappop(heap)
        return None

    def placed(self, account, run):
        """The task ``next`` chose went: its run and ``account`` (both at the top of
        their heaps) take their new places."""
        self.ledger.tick += 1
        run.served = self.ledger.tick
        turns = self.turns[account]
        if run.queued:
            heapq.heapreplace(turns, run.turn())
        else:
            heapq.heappop(turns)
        if account.full() or not account.queued:
            heapq.heappop(self.heap)
        else:
            heapq.heapreplace(self.heap, (self.ledger.key(account, self.now), account.order,
                                          account))

    def close(self):
        for run, entry in self.aside:
            heapq.heappush(run.heap, entry)
        self.aside = []

    def _pick(self, account):
        turns = self.turns.get(account)
        if turns is None:
            turns = self.turns[account] = [r.turn() for r in account.runs
                                           if r.queued and r.nice == self.nice]
            heapq.heapify(turns)
        while turns:
            run = turns[0][-1]
            picked = self._walk(run)
            if picked is not None:
                return (run,) + picked
            heapq.heappop(turns)
        return None

    def _walk(self, run):
        """The run's best lane a free worker can take a task of, and that worker."""
        heap, lanes = run.heap, run.lanes
        while heap:
            head, _, lane = heap[0]
            if lane.live == 0 or lanes.get(lane.key) is not lane:
                heapq.heappop(heap)
                continue
            current = lane.head()
            if current != head:
                heapq.heapreplace(heap, (current, next(_ENTRIES), lane))
                continue
            if lane.key not in self.full:
                worker = self.find(lane)
                if worker is not None:
                    return lane, worker
                self.full.add(lane.key)
            self.aside.append((run, heapq.heappop(heap)))
        return None
