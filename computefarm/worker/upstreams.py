"""The TaskManagers a worker serves, and how it lends its slots among them.

Most workers serve one TaskManager: it is lent every slot and nothing here is
sent. A worker started with several (``--taskmanager A --taskmanager B``) keeps
an ``Upstream`` for each: its link, its weight, and the results and output
waiting for it; each task belongs to the one that dispatched it. Each
TaskManager sees only the slots it may use now (its HELLO, then SLOTS when that
changes), so a slot is used by at most one of them at a time. ``apportion``
shares the slots between those with *demand*, by weight: a TaskManager that
says tasks wait there for this worker (DEMAND), or still has tasks here. One
that wants no more is lent at most what it has here, and the rest goes to the
others (max-min fairness by weight). When none has demand, each is lent its
weight's share, so the first task of any starts at once and its DEMAND then
brings it more.

A TaskManager lent fewer slots than it has tasks here keeps them (nothing is
taken back) and gets no more until it is under its share; the other's tasks
sent for those slots wait in the worker's backlog meanwhile (one task's time,
at most). One that goes away keeps its tasks running here: their results wait
for it, and its slots go to the others once its tasks are done.
"""

import logging
from collections import OrderedDict

from .. import defaults
from ..storage.transfer import Transfers
from ..wire import protocol
from ..wire.protocol import Msg

log = logging.getLogger(__name__)


class Upstream:
    """One TaskManager this worker serves."""

    def __init__(self, index, address, weight):
        self.index = index
        self.address = address
        self.weight = weight
        self.link = None               # wire.Link, made by the worker
        self.outbox = OrderedDict()    # task id -> result, until acknowledged
        self.unsent = []               # results not sent since the last (re)connection
        self.gathering = None          # when the oldest of them was kept back (flush)
        self.output = []               # OUTPUT items waiting for the next flush
        self.wanted = False            # its last DEMAND: tasks for this worker wait there
        self.lent = None               # slots it was last told it may use (None: not yet)
        self.transfers = Transfers()   # blobs of staged tasks, to and from its store

    def keep(self, result):
        """Hold ``result`` until acknowledged. One the TaskManager could not take in
        one message becomes an error."""
        if len(result.get("value") or b"") + defaults.RESULT_OUTPUT_MAX * 4 > \
                self.link.max_message:
            size = len(protocol.encode(Msg.RESULT, protocol.batch(Msg.RESULT, [result])))
            if size > self.link.max_message:
                result = protocol.result_item(
                    result["id"], result["attempt"], "error",
                    "the result is %d bytes, more than the TaskManager takes in one "
                    "message (taskmanager.max_message_size: %d)"
                    % (size, self.link.max_message), duration=result.get("duration", 0.0))
        self.outbox[result["id"]] = result
        self.unsent.append(result)

    def flush(self, now, waiting, name):
        """Send what is due: output, then results (``waiting``: tasks wait on the
        worker for a slot)."""
        if self.output:
            del self.output[:self.link.send_batched(Msg.OUTPUT, self.output, now,
                                                    protocol.WEIGHTS[Msg.OUTPUT])]
            self._trim_output(name)
        if self.unsent and self._results_due(now, waiting):
            del self.unsent[:self.link.send_batched(Msg.RESULT, self.unsent, now,
                                                    protocol.WEIGHTS[Msg.RESULT])]

    def _results_due(self, now, waiting):
        """Results go at once, unless tasks wait on the worker for a slot
        (pipelining): then the TaskManager has nothing urgent to refill, and
        results gather for up to ``RESULT_GATHER`` seconds, so both ways carry
        fewer, larger messages."""
        if not waiting or len(self.unsent) >= defaults.RESULT_GATHER_COUNT:
            self.gathering = None
            return True
        if self.gathering is None:
            self.gathering = now
        if now - self.gathering < defaults.RESULT_GATHER:
            return False
        self.gathering = None
        return True

    def _trim_output(self, name):
        lines = sum(len(item["lines"]) for item in self.output)
        dropped = 0
        while self.output and lines > defaults.OUTPUT_BACKLOG_LINES:
            item = self.output.pop(0)
            lines -= len(item["lines"])
            dropped += len(item["lines"])
        if dropped:
            log.warning("%s: TaskManager %s unreachable, dropped %d old output line(s)",
                        name, self.address, dropped)



def apportion(slots, weights, wanted, holding):
    """The slots to lend each TaskManager: ``weights``, ``wanted`` (tasks wait
    there for this worker) and ``holding`` (its tasks here) are lists in the same
    order. Whole numbers that sum to at most ``slots``."""
    count = len(weights)
    active = [i for i in range(count) if wanted[i] or holding[i] > 0]
    if not active:
        active = list(range(count))
        caps = [float(slots)] * count
    else:
        caps = [float(slots) if wanted[i] else float(holding[i]) for i in range(count)]
    share = [0.0] * count
    left, open_ = float(slots), list(active)
    while open_ and left > 1e-9:
        total = sum(weights[i] for i in open_)
        capped = [i for i in open_ if caps[i] - share[i] <= left * weights[i] / total]
        if not capped:
            for i in open_:
                share[i] += left * weights[i] / total
            break
        for i in capped:
            left -= caps[i] - share[i]
            share[i] = caps[i]
            open_.remove(i)
    lent = [int(part + 1e-9) for part in share]
    spare = slots - sum(lent)
    # what rounding left over: to the largest remainders, then to who has fewer here
    order = sorted((i for i in active if share[i] - lent[i] > 1e-9),
                   key=lambda i: (lent[i] - share[i], holding[i], -weights[i], i))
    for i in order[:max(0, spare)]:
        lent[i] += 1
    return lent
