"""Stragglers: a second copy of a slow batch task on another machine, first result wins.

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
    median = statistics.median(straggling.samples) \
        if len(straggling.samples) >= defaults.SPECULATE_MIN_DONE else None
    slow = []
    for own_id, n in batch.loaded.items():
        if n in straggling.pairs or "~" in own_id:
            continue
        task = state.tasks.get(batch.peer.scope + own_id)
        if task is None or task.state != RUNNING or task.worker is None:
            continue
        suspended = task.id in task.worker.machine_record.suspended
        if suspended or (median is not None and now - task.started > after * median):
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
