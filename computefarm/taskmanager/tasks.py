"""A task in the TaskManager: its record, its named states and the moves between them.

::

    submitted --> HELD ----(recovery grace over)----> QUEUED --(assigned)--> RUNNING
      |            |                                  ^   |                  |  |  |
      |            +--(a reconnecting worker runs it)-|---|------------------+  |  |
      +--(a worker's hello says it runs it: adopted)--|---|---> RUNNING         |  |
                                                      |   +--(cancelled)--> DONE   |
                                                      +---(requeued: worker lost,  |
                                                          owner back, undeliverable)
    RUNNING --(result)--> DONE;  RUNNING --(cancel)--> CANCELLING --(result, lost)--> DONE

``State.transition`` is the only code that changes ``Task.state``; ``MOVES`` is
what it allows. A move not in it is a bug: logged with the task, and ignored.
"""

HELD = "held"             # resubmitted during the recovery grace: waits for its worker
QUEUED = "queued"         # waiting in its queue for a free, matching slot
RUNNING = "running"       # given to a worker (or adopted from one after a restart)
CANCELLING = "cancelling" # its worker was told to stop it; waiting for the result
DONE = "done"             # finished, cancelled or lost: forgotten by the TaskManager
NEW = "new"               # only as the origin of a first move

MOVES = {
    NEW: {HELD, QUEUED, RUNNING},
    HELD: {QUEUED, RUNNING, DONE},
    QUEUED: {RUNNING, DONE},
    RUNNING: {QUEUED, CANCELLING, DONE},
    CANCELLING: {DONE},
    DONE: set(),
}


class Task:
    """One task id: what its client asked for and where it is now.

    Only ``State`` (through ``transition`` and the methods it calls) changes it.
    ``key`` is the interned ``(capability, sorted requires)`` of its queue;
    ``body`` is opaque bytes, never decoded here.
    """

    __slots__ = ("id", "own_id", "client", "key", "priority", "timeout", "max_attempts", "body",
                 "attempt", "state", "worker", "seq", "started", "lost_on", "stream",
                 "track", "revive", "load", "requeue", "label", "queue", "run", "charged",
                 "action", "speculate")

    def __init__(self, task_id, client, key, seq):
        self.id = task_id             # its client's scope (``peers.scope``) + ``own_id``
        self.own_id = None            # the id its client gave it (None until claimed)
        self.client = client          # its client's Peer, or None while unclaimed after a restart
        self.key = key
        self.priority = 0
        self.timeout = None
        self.max_attempts = 1
        self.body = b""
        self.attempt = 0
        self.state = NEW
        self.worker = None            # the worker Peer running it
        self.seq = seq                # submission order, within a priority
        self.started = None
        self.lost_on = None           # "worker on host (why)" for each attempt lost
        self.stream = False           # the client wants OUTPUT while the task runs
        self.track = False            # the client wants to hear when it starts
        self.revive = None            # (client, spec) resubmitted while it was cancelling
        self.load = 1.0               # cores' worth of CPU it is expected to use
        self.requeue = False          # being stopped to run elsewhere (its owner is back)
        self.label = None             # a name for people: logs, status
        self.action = None            # its action's digest (the action cache), if any
        self.speculate = False        # it may run twice at once (a straggler's copy)
        self.queue = None             # the Queue holding it while QUEUED
        self.run = None               # its fairshare.Run (None while unclaimed)
        self.charged = None           # the Run whose slots count it while it holds one

    @classmethod
    def from_spec(cls, spec, client, key, seq, max_attempts):
        """The task a SUBMIT item describes (``key`` from ``queue_key(spec)``)."""
        task = cls(client.scope + spec["id"], client, key, seq)
        task.claim(spec, client, max_attempts)
        return task

    def claim(self, spec, client, max_attempts):
        """Take what a client says of this task: at submission, or when a client
        resubmits a task adopted from a worker after a restart."""
        self.client = client
        self.own_id = spec["id"]
        self.body = spec["body"]
        self.priority = spec.get("priority", 0)
        self.timeout = spec.get("timeout")
        self.max_attempts = spec.get("max_attempts") or max_attempts
        self.stream = bool(spec.get("stream"))
        self.track = bool(spec.get("track"))
        self.load = float(spec.get("load", 1.0))
        self.label = spec.get("label")
        self.action = spec.get("action")    # the action cache's name for it, if any
        self.speculate = bool(spec.get("speculate"))

    @property
    def capability(self):
        return self.key[0]

    @property
    def requires(self):
        return dict(self.key[1])

    def lost(self, where):
        if self.lost_on is None:
            self.lost_on = []
        self.lost_on.append(where)


def queue_key(capability, requires):
    """The queue a task waits in: one per capability and set of constraints."""
    return (capability, tuple(sorted((requires or {}).items())))
