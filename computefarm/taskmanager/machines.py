"""Machines as the TaskManager sees them: their monitors' reports and their policy.

A machine is known by the id its monitor and workers share. Its state, derived
from the last report and the policy (HTCondor's desktop policy, simplified):

- ``stale``: its monitor has been silent for ``defaults.STALE_INTERVALS`` report intervals;
- ``owner-active``: processes that are not farm tasks use more CPU than
  ``owner_cpu_limit`` percent of the machine;
- ``busy``: load per core above ``max_load``, or less free memory than
  ``min_free_memory``;
- ``idle``: none of these; ``unmonitored``: no monitor ever reported.

New work goes only to ``idle`` and ``unmonitored`` machines (and ``stale`` ones
when the policy says ``stale: run``). Among eligible workers, placement ranks
by expected finish (``rank``): the machine's load per core, counting the task
load assigned since its last report, then its free memory.
"""

from .. import defaults


class Machine:
    __slots__ = ("id", "host", "policy", "report", "reported_at", "interval",
                 "assigned_load", "owner_since", "suspended", "monitor", "workers",
                 "stamp", "fresh_state", "stale_at", "ranked", "stale_seen")

    def __init__(self, machine_id, policy):
        self.id = machine_id
        self.host = None
        self.policy = policy
        self.report = None
        self.reported_at = None
        self.interval = None
        self.assigned_load = 0.0       # task load placed here since the last report
        self.owner_since = None        # when the owner became active
        self.suspended = set()         # ids of tasks stopped for the owner
        self.monitor = None            # routing id of its monitor
        self.workers = set()           # its workers' peer records
        self.stamp = 0                 # bumped when its rank may have changed
        self.fresh_state = "unmonitored"   # its state from the last report, if not stale
        self.stale_at = None           # when that report turns stale
        self.ranked = None             # (stamp, rank) cached
        self.stale_seen = None         # the report whose staleness was acted on

    def update(self, report, now):
        self.report = report
        self.host = report.get("host", self.host)
        self.reported_at = now
        self.interval = float(report.get("interval") or 1.0)
        self.assigned_load = 0.0
        self.stale_at = now + defaults.STALE_INTERVALS * self.interval
        self.fresh_state = self._judge()
        self.stamp += 1

    def place(self, load):
        """A task of ``load`` cores was given to one of its workers."""
        self.assigned_load += load
        self.stamp += 1

    def state(self, now):
        if self.report is not None and now > self.stale_at:
            return "stale"
        return self.fresh_state

    def _judge(self):
        """Its state by the last report alone."""
        if self.owner_active():
            return "owner-active"
        report, policy = self.report, self.policy
        cores = max(1, report.get("cores") or 1)
        if (report.get("load_avg") or [0.0])[0] / cores > policy.max_load:
            return "busy"
        if (report.get("memory_available") or 0) < policy.min_free_memory * 1024 * 1024:
            return "busy"
        return "idle"

    def owner_cpu(self):
        return (self.report or {}).get("owner_cpu") or 0.0

    def owner_active(self):
        return self.report is not None and self.owner_cpu() > self.policy.owner_cpu_limit

    def eligible(self, now):
        if self.report is not None and now > self.stale_at:
            return self.policy.stale == "run"
        return self.fresh_state in ("idle", "unmonitored")

    def rank(self):
        """Lower is sooner: load per core (including work placed since the last
        report), then less free memory ranks later."""
        if self.ranked is None or self.ranked[0] != self.stamp:
            self.ranked = (self.stamp, self._rank())
        return self.ranked[1]

    def _rank(self):
        if self.report is None:
            return (self.assigned_load, 0)
        cores = max(1, self.report.get("cores") or 1)
        busy = (self.report.get("cpu_percent") or 0.0) / 100.0
        return (busy + self.assigned_load / cores, -(self.report.get("memory_available") or 0))

    def describe(self, now):
        report = self.report or {}
        return {"id": self.id, "host": self.host, "state": self.state(now),
                "cores": report.get("cores"), "cpu_percent": report.get("cpu_percent"),
                "load_avg": report.get("load_avg"), "owner_cpu": report.get("owner_cpu"),
                "memory_total": report.get("memory_total"),
                "memory_available": report.get("memory_available"),
                "disk_free": report.get("disk_free"), "platform": report.get("platform"),
                "report_age": None if self.reported_at is None else now - self.reported_at,
                "suspended": sorted(self.suspended)}
