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

from collections import OrderedDict


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
