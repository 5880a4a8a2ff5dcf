"""A pilot's life: a worker that leaves on its own, losing nothing.

Workers a cluster runs as jobs (farm-factory's pilots, or anyone's) are given
limits: ``idle_exit`` (leave after that long with nothing to do), ``max_tasks``
(start that many tasks, then leave) and ``lifetime`` (the job's walltime: stop
taking work ``drain_before`` seconds before it ends, and leave at the end
whatever still runs). *Draining* means lending the TaskManager no slots (SLOTS
0, with the reason), starting nothing more, and once the running tasks are done
and their results acknowledged, leaving with a BYE that hands back whatever was
dispatched but not started (the TaskManager queues it again at once). At the
lifetime's end the tasks still running are stopped and handed back the same way.
"""

from .. import defaults


class PilotLimits:
    """When this worker drains and when it leaves; ``step`` is called each loop."""

    def __init__(self, idle_exit=None, max_tasks=None, lifetime=None, drain_before=None):
        self.idle_exit = idle_exit
        self.max_tasks = max_tasks
        self.lifetime = lifetime
        if lifetime is not None and drain_before is None:
            drain_before = min(defaults.PILOT_DRAIN_MAX, lifetime * defaults.PILOT_DRAIN_SHARE)
        self.drain_before = drain_before or 0.0
        self.started = None
        self.taken = 0              # tasks started
        self.draining = None        # why it takes no more work, once it does
        self.idle_since = None

    @property
    def active(self):
        return any(limit is not None for limit in (self.idle_exit, self.max_tasks,
                                                    self.lifetime))

    def took(self):
        """A task started: the last one ``max_tasks`` allows starts the drain."""
        self.taken += 1
        if self.max_tasks is not None and self.taken >= self.max_tasks and not self.draining:
            self.draining = "ran its %d task(s) (--max-tasks)" % self.taken

    def step(self, now, busy):
        """Why the worker should leave now, or None. ``busy``: tasks running, or
        results not acknowledged yet."""
        if self.started is None:
            self.started = now
        if self.lifetime is not None:
            left = self.started + self.lifetime - now
            if left <= 0:
                return "its lifetime of %g s is over (--lifetime)" % self.lifetime
            if left <= self.drain_before and not self.draining:
                self.draining = "its lifetime ends in %.0f s (--lifetime)" % left
        if self.draining:
            return None if busy else self.draining
        if self.idle_exit is not None:
            if busy:
                self.idle_since = None
            elif self.idle_since is None:
                self.idle_since = now
            elif now - self.idle_since >= self.idle_exit:
                return "idle for %g s (--idle-exit)" % self.idle_exit
        return None
