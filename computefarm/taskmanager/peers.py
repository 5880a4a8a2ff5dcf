"""One record per connection to the port, whatever its role.

A peer's role (``client``, ``worker``, ``monitor``, ``logger``) is fixed by its
first HELLO and bound, with CURVE, to the key it came with; ``State`` keeps the
one registry of them (``State.peers``) and is the only writer. The fields a
role does not use stay at their defaults.
"""

import hashlib

from .. import constraints
from .shards import ShardedDict


def scope(key):
    """The prefix of the task ids of a client with public ``key`` ("" without CURVE):
    the TaskManager knows a task by its client's key and the client's own id, so
    no other key can name, claim or cancel it, even after a restart."""
    if key is None:
        return ""
    return hashlib.blake2s(key, digest_size=6).hexdigest() + "/"   # 13 characters


class Peer:
    __slots__ = ("rid", "role", "name", "host", "machine", "pid", "key", "last_seen",
                 "user", "admin", "scope",
                 # workers
                 "slots", "capabilities", "running", "assigned", "order", "version",
                 "depth", "pace", "serves", "wanted", "draining",
                 "profiles", "heaps", "machine_record", "gone",
                 # clients
                 "tasks", "told", "nice", "runs")

    def __init__(self, rid, role, hello, key, now, order=0):
        self.rid = rid
        self.role = role
        self.name = hello["id"]
        self.host = hello["host"]
        self.machine = hello["machine"]
        self.pid = hello.get("pid")
        self.key = key                # the CURVE key it said hello with (None without CURVE)
        self.user = ""                # the name of that key (set by the server)
        self.admin = key is None      # may see everyone's tasks (an admin key, or no keys)
        self.scope = scope(key)       # the prefix of its tasks' ids here (clients)
        self.last_seen = now
        self.slots = 0
        self.capabilities = {}        # capability -> {attribute: value}
        self.running = None           # task id -> Task (workers): running, or waiting there
        self.depth = 0                # tasks it may hold beyond its slots (pipelining)
        self.pace = None              # moving average of its tasks' run times (s)
        self.serves = ()              # the TaskManagers a worker serves, when several
        self.wanted = None            # the DEMAND it was last sent (a worker serving several)
        self.draining = None          # why a pilot takes no more work (SLOTS), once it does
        self.assigned = 0             # tasks given to it since it registered
        self.order = order            # registration order: the last tie-break of placement
        self.version = 0              # bumped when it is offered anew to the scheduler
        self.profiles = ()            # the scheduler's profiles it belongs to
        self.heaps = ()               # ... and its capabilities' all-workers profiles
        self.machine_record = None    # its machines.Machine
        self.gone = False             # removed: its scheduler entries are dead
        self.tasks = None             # its queued and running tasks (clients): Holdings
        self.told = None              # (queue key) -> the reason it was told they wait
        self.nice = False             # its runs get only the slots nobody else wants
        self.runs = None              # group name -> its fairshare.Run (clients)
        if role == "worker":
            self.slots = hello_slots(hello)
            self.capabilities = hello.get("capabilities") or {}
            self.serves = tuple(hello.get("taskmanagers") or ())
            self.running = {}
        elif role == "client":
            self.tasks = Holdings()
            self.told = {}
            self.nice = bool(hello.get("nice"))
            self.runs = {}

    @property
    def shared(self):
        """Whether it lends its slots to several TaskManagers (SLOTS, DEMAND)."""
        return len(self.serves) > 1

    @property
    def free(self):
        return self.slots + self.depth - len(self.running)

    def offers(self, capability, requires):
        attrs = self.capabilities.get(capability)
        return attrs is not None and constraints.matches(attrs, requires)

    def describe(self):
        if self.role == "worker":
            return "worker %s on host %s" % (self.name, self.host)
        return "%s %s on %s" % (self.role, self.name, self.host)


def hello_slots(hello):
    """The slots a worker's HELLO lends: 1 when it does not say; 0 from a worker
    serving several TaskManagers that lends this one none now."""
    slots = hello.get("slots")
    return 1 if slots is None else slots


class Holdings:
    """A client's tasks (ids) and the bytes they hold in the TaskManager: their
    bodies, and a fixed estimate of each task's bookkeeping (``TASK_OVERHEAD``)."""

    __slots__ = ("sizes", "bytes", "count")

    def __init__(self):
        self.sizes = ShardedDict()    # task id -> bytes charged for it
        self.bytes = 0
        self.count = 0                # len(sizes), which the queue limit reads per task

    def add(self, task_id, size):
        previous = self.sizes.get(task_id)
        if previous is not None:
            self.bytes -= previous
        else:
            self.count += 1
        self.sizes[task_id] = size
        self.bytes += size

    def discard(self, task_id):
        size = self.sizes.get(task_id)
        if size is not None:
            del self.sizes[task_id]
            self.bytes -= size
            self.count -= 1

    def clear(self):
        self.sizes = ShardedDict()
        self.bytes = 0
        self.count = 0

    def compact(self):
        self.sizes.compact()

    def __contains__(self, task_id):
        return task_id in self.sizes

    def __len__(self):
        return self.count

    def __iter__(self):
        return iter(self.sizes)
