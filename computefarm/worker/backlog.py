"""Tasks dispatched to this worker that wait for one of its slots.

The TaskManager sends a worker whose tasks are short a few more than it has
slots (``Scheduler.paced`` in taskmanager/scheduler.py), so a slot that
finishes starts its next task at once instead of after a round trip. They wait here, in dispatch order;
the TaskManager counts them as this worker's, so a cancel, a suspension or a
hello names them like running ones.
"""

from collections import OrderedDict


class Backlog:
    def __init__(self):
        self.waiting = OrderedDict()     # task id -> DISPATCH item
        self.held = set()                # ids suspended for the machine's owner

    def __len__(self):
        return len(self.waiting)

    def __contains__(self, task_id):
        return task_id in self.waiting

    def add(self, spec):
        """Keep ``spec``; one dispatched again (a re-registration) takes its new attempt."""
        self.waiting[spec["id"]] = spec

    def remove(self, task_id):
        """The waiting task ``task_id`` (its DISPATCH item), no longer waiting; or None."""
        self.held.discard(task_id)
        return self.waiting.pop(task_id, None)

    def suspend(self, task_id):
        if task_id in self.waiting:
            self.held.add(task_id)

    def resume(self, task_id=None):
        """Let ``task_id`` (all, without one) start again."""
        if task_id is None:
            self.held.clear()
        else:
            self.held.discard(task_id)

    def next(self):
        """The first waiting task not suspended (removed from the backlog), or None."""
        for task_id in self.waiting:
            if task_id not in self.held:
                return self.remove(task_id)
        return None

    def items(self):
        return list(self.waiting.values())
