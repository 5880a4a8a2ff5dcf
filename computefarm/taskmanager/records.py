"""The TaskManager's records: one per task, worker and client, and the queue groups.

``state.State`` owns them; nothing else creates or changes them.
"""

import heapq

from . import constraints

QUEUED, HELD, RUNNING, CANCELLING = "queued", "held", "running", "cancelling"


class Task:
    __slots__ = ("id", "client", "capability", "requires", "priority", "timeout",
                 "max_attempts", "body", "attempt", "state", "worker", "seq", "group",
                 "submitted", "started", "lost_on", "stream", "track", "revive", "load",
                 "requeue", "label", "log_budget")

    def __init__(self, task_id, client, capability, requires, priority, timeout,
                 max_attempts, body, seq, now):
        self.id = task_id
        self.client = client          # Client, or None while unclaimed after a restart
        self.capability = capability
        self.requires = requires
        self.priority = priority
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.body = body              # opaque bytes, never decoded here
        self.attempt = 0
        self.state = QUEUED
        self.worker = None
        self.seq = seq
        self.group = None
        self.submitted = now
        self.started = None
        self.lost_on = []             # "worker on host" for each attempt lost
        self.stream = False           # the client wants OUTPUT while the task runs
        self.track = False            # the client wants to hear when it starts
        self.revive = None            # (client, spec) resubmitted while it was cancelling
        self.load = 1.0               # cores' worth of CPU it is expected to use
        self.requeue = False          # being stopped to run elsewhere (its owner is back)
        self.label = None             # a name for people: logs, status
        self.log_budget = None        # (tokens, time, lines dropped): its log rate limit


class Worker:
    __slots__ = ("rid", "name", "host", "machine", "pid", "slots", "capabilities",
                 "running", "last_seen", "accepts_cache", "assigned", "machine_record")

    def __init__(self, rid, hello, now):
        self.rid = rid
        self.name = hello["id"]
        self.host = hello["host"]
        self.machine = hello["machine"]
        self.pid = hello.get("pid")
        self.slots = max(1, hello.get("slots") or 1)
        self.capabilities = hello.get("capabilities") or {}
        self.running = {}             # task id -> Task
        self.last_seen = now
        self.accepts_cache = {}       # group key -> bool
        self.assigned = 0             # tasks given to it since it registered
        self.machine_record = None    # its machines.Machine, once looked up

    @property
    def free(self):
        return self.slots - len(self.running)

    def accepts(self, group):
        verdict = self.accepts_cache.get(group.key)
        if verdict is None:
            attrs = self.capabilities.get(group.capability)
            verdict = attrs is not None and constraints.matches(attrs, group.requires)
            self.accepts_cache[group.key] = verdict
        return verdict

    def describe(self):
        return "worker %s on host %s" % (self.name, self.host)


class Monitor:
    __slots__ = ("rid", "name", "machine", "last_seen")

    def __init__(self, rid, hello, now):
        self.rid = rid
        self.name = hello["id"]
        self.machine = hello["machine"]
        self.last_seen = now


class Client:
    __slots__ = ("rid", "name", "host", "tasks", "last_seen", "told")

    def __init__(self, rid, hello, now):
        self.rid = rid
        self.name = hello["id"]
        self.host = hello["host"]
        self.tasks = set()            # ids of its queued and running tasks
        self.last_seen = now
        self.told = {}                # (capability, constraints) -> why it was told they wait


class Group:
    """Queued tasks that share a capability and constraints, highest priority first."""

    __slots__ = ("key", "capability", "requires", "heap", "live")

    def __init__(self, key, capability, requires):
        self.key = key
        self.capability = capability
        self.requires = requires
        self.heap = []
        self.live = 0

    def push(self, task):
        heapq.heappush(self.heap, (-task.priority, task.seq, task))
        task.group = self
        self.live += 1

    def pop(self):
        while self.heap:
            task = heapq.heappop(self.heap)[2]
            if task.state == QUEUED and task.group is self:
                self.live -= 1
                task.group = None
                return task
        return None

    def head_key(self):
        while self.heap and (self.heap[0][2].state != QUEUED or self.heap[0][2].group is not self):
            heapq.heappop(self.heap)
        return self.heap[0][:2] if self.heap else None

    def discard(self, task):
        """Forget a queued task lazily: its heap entry is skipped when reached."""
        if task.group is self:
            task.group = None
            self.live -= 1
