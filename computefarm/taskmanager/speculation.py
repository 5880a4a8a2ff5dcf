"""Stragglers: a second copy of a slow task on another machine, first result wins.

Two keepers share the rule below: ``check``/``settle`` for the tasks of a
batch (``BatchBook``), and ``Speculator`` for clients' tasks submitted with
``speculate`` (majordomo's ``meta: {"speculate": True}``, ``Client.submit``).

A batch that allows it (``speculate``) has its running tasks looked at every
half heartbeat, once none of its tasks waits in a queue (the slots left are
idle) and a slot of its capability is free: a task that has run longer than
``speculate_after`` times the median run time of the batch's finished tasks
(``SPECULATE_MIN_DONE`` at least; the median of the last ``SAMPLES``), or whose
machine's owner has suspended it, gets one copy (own id ``N~2``) started at
once on the best-ranked worker of *another* machine with an idle slot. The
copy is a task of its own for ``State``; ``BatchBook`` keeps the pair and
records the first result of the two (``copies`` 2, ``winner`` 1 or 2), and
the other copy is cancelled (its result dropped). At most one copy per task.
A copy that is cancelled or lost leaves the other to carry on alone.

A client's task is copied the same way, its *family* being its run and the
part of its label before ``:`` (a doit task's base name). The copy has the
original's own id (the client hears of one task), and the first result is
forwarded with ``copies`` 2 and ``winner``; the other copy is cancelled and
detached from its client, so its end is heard by no one.
"""

import collections
import statistics

from .. import defaults
from .scheduler import rank
from .state import Effects
from .tasks import RUNNING

SAMPLES = 1000           # run times of a batch's last finished tasks: the median's


class Straggling:
    """One batch's speculation bookkeeping."""

    __slots__ = ("samples", "pairs", "outrun", "started", "won")

    def __init__(self):
        self.samples = collections.deque(maxlen=SAMPLES)
        self.pairs = {}          # n -> (original own id, copy own id) while both may run
        self.outrun = set()      # own ids cancelled because the other copy won
        self.started = 0         # copies started
        self.won = 0             # ... that finished first


def copy_id(n):
    return "%d~2" % n


def check(book, batch, now, after):
    """Start copies of ``batch``'s stragglers on idle slots of other machines."""
    state = book.state
    spec = batch.spec
    capability = spec["capability"]
    run = batch.peer.runs.get(None)
    if (run is not None and run.queued) or not state.scheduler.has_free(capability):
        return
    straggling = batch.straggling
    limit = _threshold(straggling.samples, after)
    slow = []
    for own_id, n in batch.loaded.items():
        if n in straggling.pairs or "~" in own_id:
            continue
        task = state.tasks.get(batch.peer.scope + own_id)
        if task is None or task.state != RUNNING or task.worker is None:
            continue
        suspended = task.id in task.worker.machine_record.suspended
        if suspended or (limit is not None and now - task.started > limit):
            slow.append((task.started, n, task))
    requires = spec.get("requires") or {}
    for _, n, task in sorted(slow, key=lambda entry: entry[:2]):
        worker = _idle_worker(state, capability, requires, task.worker.machine, now)
        if worker is None:
            return
        effects = Effects()
        copy = dict(book.task_spec(batch, n, now), id=copy_id(n))
        copy["label"] += " (copy)"
        batch.loaded[copy["id"]] = n
        straggling.pairs[n] = (task.own_id, copy["id"])
        straggling.started += 1
        state.start_copy(batch.peer, copy, worker, task.attempt, now, effects)
        book.render(effects.dispatch)
        book.outbox.apply(effects)


def _threshold(samples, after):
    """The run time past which a task of a family with run times ``samples`` is a
    straggler (``after`` x their median), or None while too few have finished."""
    if len(samples) < defaults.SPECULATE_MIN_DONE:
        return None
    return after * statistics.median(samples)


def _idle_worker(state, capability, requires, avoid, now):
    """The best-ranked worker with an idle slot (not only pipelining room) for
    ``capability`` on an eligible machine other than ``avoid``."""
    best = None
    for worker in state.workers.values():
        if worker.gone or len(worker.running) >= worker.slots or worker.machine == avoid \
                or not worker.offers(capability, requires) \
                or not worker.machine_record.eligible(now):
            continue
        key = rank(worker)
        if best is None or key < best[0]:
            best = (key, worker)
    return None if best is None else best[1]


def settle(book, batch, own_id, n, item, now):
    """A result of a task with a copy: None when it is to be dropped (the other copy
    won, or carries on), else ``(copies, winner)`` for its row."""
    straggling = batch.straggling
    if own_id in straggling.outrun:
        straggling.outrun.discard(own_id)
        return None
    pair = straggling.pairs.pop(n, None)
    if pair is None:
        return 1, 1
    other = pair[1] if own_id == pair[0] else pair[0]
    if other in batch.loaded:
        if item["status"] in ("cancelled", "lost") and batch.state == "active":
            return None                  # the other copy carries on alone
        straggling.outrun.add(other)
        book.apply(book.state.cancel, batch.peer, [other], now)
    winner = 2 if own_id == pair[1] else 1
    if winner == 2:
        straggling.won += 1
    return 2, winner


class Speculator:
    """Copies of clients' running tasks that allow them (``Task.speculate``)."""

    def __init__(self, state, after=defaults.SPECULATE_AFTER):
        self.state = state
        self.after = after
        self.samples = {}            # (client routing id, family) -> run times of ok results
        self.pairs = {}              # task id -> the Task it is paired with (both ways)
        self.started = 0             # copies started
        self.won = 0                 # ... that finished first

    @staticmethod
    def family(task):
        return (task.client.rid if task.client is not None else None,
                (task.label or "").split(":", 1)[0])

    def check(self, now, effects):
        """Start copies of the stragglers among the running tasks that allow one."""
        state = self.state
        limits = {}                  # family -> its threshold, once a call
        for task in list(state.speculating.values()):
            if task.id in self.pairs or task.worker is None or task.client is None \
                    or (task.run is not None and task.run.queued) \
                    or not state.scheduler.has_free(task.capability):
                continue
            family = self.family(task)
            if family not in limits:
                limits[family] = _threshold(self.samples.get(family, ()), self.after)
            limit = limits[family]
            if task.id not in task.worker.machine_record.suspended and (
                    limit is None or now - task.started <= limit):
                continue
            worker = _idle_worker(state, task.capability, task.requires, task.worker.machine,
                                  now)
            if worker is None or task.id + "~2" in state.tasks:
                continue
            spec = {"id": task.own_id + "~2", "capability": task.capability,
                    "body": task.body, "priority": task.priority, "timeout": task.timeout,
                    "max_attempts": task.max_attempts, "track": task.track,
                    "load": task.load, "label": task.label, "requires": task.requires}
            copy = state.start_copy(task.client, spec, worker, task.attempt, now, effects)
            copy.own_id = task.own_id          # its result is the task's, to its client
            self.pairs[task.id], self.pairs[copy.id] = copy, task
            self.started += 1
        for task_id in [i for i, t in self.pairs.items() if t.id not in state.tasks]:
            self.pairs.pop(task_id, None)      # ended some other way (its client left)

    def finished(self, task, result, now, effects):
        """Before ``State.finish`` takes ``result`` of ``task``: a copy's race
        settled (the other cancelled and detached), and the run time sampled."""
        if task.speculate and result["status"] == "ok" and result.get("duration") is not None:
            samples = self.samples.get(self.family(task))
            if samples is None:
                samples = self.samples[self.family(task)] = collections.deque(maxlen=SAMPLES)
            samples.append(result["duration"])
        other = self.pairs.pop(task.id, None)
        if other is None or (result["status"] == "cancelled" and task.requeue):
            return
        self.pairs.pop(other.id, None)
        copy = task.id.endswith("~2")
        result["copies"], result["winner"] = 2, 2 if copy else 1
        self.won += copy
        if other.id in self.state.tasks and other.client is not None:
            self.state.withdraw(other, now, effects)

    def cancelled(self, client, own_ids, now, effects):
        """A client cancelled tasks: their copies go too."""
        for own_id in own_ids:
            copy = self.state.tasks.get(client.scope + own_id + "~2")
            if copy is not None and copy.client is client:
                self.pairs.pop(copy.id, None)
                self.state.withdraw(copy, now, effects)

    def forget(self, clients):
        """Samples of clients gone."""
        for key in [k for k in self.samples if k[0] not in clients]:
            del self.samples[key]
