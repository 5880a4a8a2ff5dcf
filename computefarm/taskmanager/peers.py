"""One record per connection to the port, whatever its role.

A peer's role (``client``, ``worker``, ``monitor``, ``logger``) is fixed by its
first HELLO and bound, with CURVE, to the key it came with; ``State`` keeps the
one registry of them (``State.peers``) and is the only writer. The fields a
role does not use stay at their defaults.
"""

from . import constraints
from .shards import ShardedSet


class Peer:
    __slots__ = ("rid", "role", "name", "host", "machine", "pid", "key", "last_seen",
                 # workers
                 "slots", "capabilities", "running", "assigned", "order", "version",
                 "profiles", "heaps", "machine_record", "gone",
                 # clients
                 "tasks", "told")

    def __init__(self, rid, role, hello, key, now, order=0):
        self.rid = rid
        self.role = role
        self.name = hello["id"]
        self.host = hello["host"]
        self.machine = hello["machine"]
        self.pid = hello.get("pid")
        self.key = key                # the CURVE key it said hello with (None without CURVE)
        self.last_seen = now
        self.slots = 0
        self.capabilities = {}        # capability -> {attribute: value}
        self.running = None           # task id -> Task (workers)
        self.assigned = 0             # tasks given to it since it registered
        self.order = order            # registration order: the last tie-break of placement
        self.version = 0              # bumped when it is offered anew to the scheduler
        self.profiles = ()            # the scheduler's profiles it belongs to
        self.heaps = ()               # ... and its capabilities' all-workers profiles
        self.machine_record = None    # its machines.Machine
        self.gone = False             # removed: its scheduler entries are dead
        self.tasks = None             # ids of its queued and running tasks (clients)
        self.told = None              # (queue key) -> the reason it was told they wait
        if role == "worker":
            self.slots = max(1, hello.get("slots") or 1)
            self.capabilities = hello.get("capabilities") or {}
            self.running = {}
        elif role == "client":
            self.tasks = ShardedSet()
            self.told = {}

    @property
    def free(self):
        return self.slots - len(self.running)

    def offers(self, capability, requires):
        attrs = self.capabilities.get(capability)
        return attrs is not None and constraints.matches(attrs, requires)

    def describe(self):
        if self.role == "worker":
            return "worker %s on host %s" % (self.name, self.host)
        return "%s %s on %s" % (self.role, self.name, self.host)
