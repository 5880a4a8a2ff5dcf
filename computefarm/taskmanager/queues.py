"""Queued tasks that share a capability and constraints, highest priority first.

A queue keeps one FIFO per priority: tasks arrive in submission order, so a
push and a pop cost O(1) and 8 bytes a task, however many are queued. A task
that comes back out of order (requeued after its worker was lost, or held
through the recovery grace) goes to a small heap beside them; a pop takes the
better of the two heads, so the order is exactly ``(-priority, submission)``.
Tasks leaving the queue other than by ``pop`` (cancelled, adopted) are skipped
when reached; ``compact`` drops them once they outnumber the live ones.
"""

import bisect
import heapq
from collections import deque

from .tasks import QUEUED


class Queue:
    __slots__ = ("key", "capability", "requires", "fifos", "priorities", "retry", "live",
                 "entries")

    def __init__(self, key):
        self.key = key
        self.capability = key[0]
        self.requires = dict(key[1])
        self.fifos = {}               # priority -> deque of tasks, in submission order
        self.priorities = []          # the priorities of fifos, ascending
        self.retry = []               # heap of (-priority, seq, task) that came back late
        self.live = 0                 # tasks queued here now
        self.entries = 0              # entries held, live or skipped-when-reached

    def push(self, task):
        fifo = self.fifos.get(task.priority)
        if fifo is None:
            fifo = self.fifos[task.priority] = deque()
            bisect.insort(self.priorities, task.priority)
        if not fifo or fifo[-1].seq < task.seq:
            fifo.append(task)
        else:
            heapq.heappush(self.retry, (-task.priority, task.seq, task))
        task.queue = self
        self.live += 1
        self.entries += 1

    def _valid(self, task):
        return task.state == QUEUED and task.queue is self

    def _fifo_head(self):
        """The best live task at the head of a FIFO (dropping dead ones), or None."""
        while self.priorities:
            priority = self.priorities[-1]
            fifo = self.fifos[priority]
            while fifo and not self._valid(fifo[0]):
                fifo.popleft()
                self.entries -= 1
            if fifo:
                return fifo[0]
            del self.fifos[priority]
            self.priorities.pop()
        return None

    def _retry_head(self):
        while self.retry and not self._valid(self.retry[0][2]):
            heapq.heappop(self.retry)
            self.entries -= 1
        return self.retry[0][2] if self.retry else None

    def head(self):
        """``(-priority, seq)`` of the task ``pop`` would return, or None."""
        fifo, retry = self._fifo_head(), self._retry_head()
        best = _better(fifo, retry)
        return None if best is None else (-best.priority, best.seq)

    def pop(self):
        fifo, retry = self._fifo_head(), self._retry_head()
        best = _better(fifo, retry)
        if best is None:
            return None
        if best is fifo:
            self.fifos[best.priority].popleft()
        else:
            heapq.heappop(self.retry)
        self.entries -= 1
        self.live -= 1
        best.queue = None
        return best

    def discard(self, task):
        """Forget a queued task; its entry is skipped when reached."""
        if task.queue is self:
            task.queue = None
            self.live -= 1
            if self.entries > 2 * self.live + 1024:
                self.compact()

    def compact(self):
        for priority in list(self.fifos):
            fifo = deque(t for t in self.fifos[priority] if self._valid(t))
            if fifo:
                self.fifos[priority] = fifo
            else:
                del self.fifos[priority]
                self.priorities.remove(priority)
        self.retry = [entry for entry in self.retry if self._valid(entry[2])]
        heapq.heapify(self.retry)
        self.entries = sum(len(f) for f in self.fifos.values()) + len(self.retry)


def _better(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a if (-a.priority, a.seq) <= (-b.priority, b.seq) else b
