"""The TaskManager's memory: Python's full collections at quiet moments, and the
memory a large queue used handed back to the system once it drained.

Python's automatic full collections walk every object: with a million queued
tasks that is a pause of a second. ``Memory`` turns them off for its lifetime
(young generations stay automatic, they are cheap) and runs one at a tick when
few tasks are held. Python keeps freed memory in its own pools and glibc in its
heap, so a TaskManager that once held 100,000 tasks would otherwise stay that
size: once few are left (an eighth of the peak, and under ``RECLAIM_AFTER``),
the tables are rebuilt one per loop iteration (each step costs what the table
once held), then collected and trimmed.
"""

import ctypes
import ctypes.util
import gc

from .. import defaults


def _find_malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):   # not glibc: freed memory stays with the process
        return None


_malloc_trim = _find_malloc_trim()


class Memory:
    def __init__(self, state, now):
        self.state = state               # state.State: its task count and tables
        self.peak_tasks = 0
        self.steps = []                  # steps of a hand-back, one per loop iteration
        self.next_full_gc = now + defaults.GC_FULL_INTERVAL
        self.gc_threshold = gc.get_threshold()      # Python's, restored by ``close``
        gc.set_threshold(*self.gc_threshold[:2], 1 << 30)

    def tick(self, now):
        """At a heartbeat tick: a full collection if due, a hand-back if one is due."""
        tasks = len(self.state.tasks)
        if now >= self.next_full_gc and tasks < defaults.RECLAIM_AFTER:
            self.next_full_gc = now + defaults.GC_FULL_INTERVAL
            gc.collect()
        if self.steps:
            return
        self.peak_tasks = max(self.peak_tasks, tasks)
        if self.peak_tasks < defaults.RECLAIM_AFTER or \
                tasks > min(self.peak_tasks // 8, defaults.RECLAIM_AFTER):
            return
        self.peak_tasks = tasks
        self.steps = self.state.compaction() + [trim]

    def step(self):
        """One step of a hand-back under way (between ticks); False when none is."""
        if not self.steps:
            return False
        self.steps.pop(0)()
        return True

    def close(self):
        gc.set_threshold(*self.gc_threshold)


def trim():
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
