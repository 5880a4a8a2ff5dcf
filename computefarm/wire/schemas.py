"""What each message body may hold: every field's type, range and size.

``protocol.decode`` checks every body against its schema here before any
handler sees it, so a handler never meets bytes where it expects a string, a
NaN where it divides, or a list of a million items where it expects a few: a
message that does not fit is refused as a whole, with one line naming the field
(``SUBMIT.tasks[3].requires['os']: is a bytes, not a string``).

Each spec's ``check(value)`` returns None when the value fits, else what is wrong
with it. Containers put the path in front (``.field``, ``[index]``, ``[key]``).
Unknown fields of a record are ignored (a later minor revision may add some),
but still count against the message size limit of the port.
"""

import math

from .. import defaults

ROLES = ("client", "worker", "monitor", "logger")   # what a HELLO may say it is
STATUSES = ("ok", "failed", "timeout", "cancelled", "lost", "error")

# Sizes (characters, items) no honest peer comes near.
MAX_ID = 200              # task ids, peer ids, capability and attribute names
MAX_NAME = 255            # host and machine names, levels, streams, codes
MAX_LABEL = 1000          # a label or logger name for people
MAX_VALUE = 4096          # an attribute, constraint or environment value
MAX_TEXT = 1 << 20        # an error message, a notice, a log message
MAX_LINE = 1 << 20        # one output line (workers cut longer ones, with a marker)
MAX_ITEMS = 1 << 20       # output lines of one item (a result's tail: 1 MiB of characters)
MAX_BATCH = 2000          # items of one batched message (tasks, results, ids)
MAX_ATTRS = 1000          # keys of an attribute or constraint map
MAX_CAPABILITIES = 200    # capabilities one worker offers
MAX_CORES = 1 << 16
MAX_SLOTS = 1024          # slots of one worker (tasks it runs at once)
MAX_TASKMANAGERS = 16     # TaskManagers one worker serves
MAX_HELD = MAX_SLOTS * (1 + defaults.PIPELINE_MAX)   # tasks it holds, waiting ones too
MAX_INT = (1 << 63) - 1   # msgpack's own range bounds the rest
ANY_DEPTH = 8             # nesting of the free-form maps (``detail``, STATE)


class Spec:
    __slots__ = ()

    def check(self, value):
        raise NotImplementedError


def _kind(value):
    return type(value).__name__


def _at(segment, error):
    """``error`` (from a spec inside a container) behind the container's ``segment``."""
    return segment + (error if error[0] in ".[" else ": " + error)


class Str(Spec):
    __slots__ = ("max", "choices")

    def __init__(self, max=MAX_NAME, choices=None):
        self.max = max
        self.choices = frozenset(choices) if choices is not None else None

    def check(self, value):
        if value.__class__ is not str:
            return "is a %s, not a string" % _kind(value)
        if len(value) > self.max:
            return "is longer than %d characters" % self.max
        if self.choices is not None and value not in self.choices:
            return "%r is not one of %s" % (value[:50], ", ".join(sorted(self.choices)))
        return None


class Bytes(Spec):
    __slots__ = ()

    def check(self, value):
        if value.__class__ is not bytes:
            return "is a %s, not bytes" % _kind(value)
        return None


class Digest(Spec):
    """A blob's name: the sha256 of its content, 64 lower-case hex digits (it is
    also a file name in blob stores, so nothing else may pass)."""
    __slots__ = ()

    def check(self, value):
        if value.__class__ is not str:
            return "is a %s, not a digest" % _kind(value)
        if len(value) != 64 or value.strip("0123456789abcdef"):
            return "%r is not a sha256 digest (64 hex digits)" % value[:70]
        return None


class Bool(Spec):
    __slots__ = ()

    def check(self, value):
        if value.__class__ is not bool:
            return "is a %s, not a boolean" % _kind(value)
        return None


class Int(Spec):
    __slots__ = ("low", "high")

    def __init__(self, low=0, high=MAX_INT):
        self.low, self.high = low, high

    def check(self, value):
        if value.__class__ is not int:          # bool is an int subclass: refused too
            return "is a %s, not an integer" % _kind(value)
        if not self.low <= value <= self.high:
            return "%d is outside %d..%d" % (value, self.low, self.high)
        return None


class Num(Spec):
    """A finite int or float in a range."""
    __slots__ = ("low", "high")

    def __init__(self, low=0.0, high=float(MAX_INT)):
        self.low, self.high = low, high

    def check(self, value):
        cls = value.__class__
        if cls is not float and cls is not int:
            return "is a %s, not a number" % _kind(value)
        if not self.low <= value <= self.high:    # also false for NaN
            return "%r is outside %g..%g" % (value, self.low, self.high)
        return None


class Opt(Spec):
    """None, or what ``spec`` accepts."""
    __slots__ = ("spec",)

    def __init__(self, spec):
        self.spec = spec

    def check(self, value):
        return None if value is None else self.spec.check(value)


class List(Spec):
    __slots__ = ("item", "max")

    def __init__(self, item, max=MAX_ITEMS):
        self.item, self.max = item, max

    def check(self, value):
        if value.__class__ is not list:
            return "is a %s, not a list" % _kind(value)
        if len(value) > self.max:
            return "has %d items, more than %d" % (len(value), self.max)
        check = self.item.check
        for index, item in enumerate(value):
            error = check(item)
            if error is not None:
                return _at("[%d]" % index, error)
        return None


class Map(Spec):
    """A map from strings (at most ``key`` characters) to what ``value`` accepts."""
    __slots__ = ("value", "max", "key")

    def __init__(self, value, max=MAX_ATTRS, key=MAX_ID):
        self.value, self.max, self.key = value, max, key

    def check(self, value):
        if value.__class__ is not dict:
            return "is a %s, not a map" % _kind(value)
        if len(value) > self.max:
            return "has %d keys, more than %d" % (len(value), self.max)
        check = self.value.check
        for key, item in value.items():
            if key.__class__ is not str:
                return "key %r is a %s, not a string" % (key[:50], _kind(key))
            if len(key) > self.key:
                return "key %r... is longer than %d characters" % (key[:50], self.key)
            error = check(item)
            if error is not None:
                return _at("[%r]" % key[:50], error)
        return None


class Record(Spec):
    """A map with named fields; ``required`` must be there, others may be."""
    __slots__ = ("fields", "required")

    def __init__(self, fields, required=()):
        self.fields, self.required = fields, tuple(required)

    def check(self, value):
        if value.__class__ is not dict:
            return "is a %s, not a map" % _kind(value)
        for field in self.required:
            if field not in value:
                return "field %r is missing" % field
        fields = self.fields
        for field, item in value.items():
            spec = fields.get(field)
            if spec is None:
                continue
            error = spec.check(item)
            if error is not None:
                return _at("." + field, error)
        return None


class Plain(Spec):
    """Free-form data for people (a result's ``detail``, STATE): strings, numbers,
    booleans, None, lists and string-keyed maps, nested at most ``depth`` deep."""
    __slots__ = ("depth",)

    def __init__(self, depth=ANY_DEPTH):
        self.depth = depth

    def check(self, value):
        return _plain(value, self.depth)


_SCALARS = (str, int, float, bool, type(None))


def _plain(value, depth):
    cls = value.__class__
    if cls is float:
        return None if math.isfinite(value) else "%r is not a finite number" % value
    if cls in _SCALARS:
        return None
    if cls is not list and cls is not dict:
        return "is a %s, not plain data" % _kind(value)
    if depth <= 0:
        return "is nested too deep"
    if cls is list:
        for index, item in enumerate(value):
            error = _plain(item, depth - 1)
            if error is not None:
                return _at("[%d]" % index, error)
        return None
    if cls is dict:
        for key, item in value.items():
            if key.__class__ is not str:
                return "key %r is a %s, not a string" % (key, _kind(key))
            error = _plain(item, depth - 1)
            if error is not None:
                return _at("[%r]" % key[:50], error)
    return None


def record(required=(), **fields):
    return Record(fields, required)


# -- the parts messages share ------------------------------------------------------------
ID = Str(MAX_ID)
# A task id as the TaskManager and workers know it: its client's scope (13
# characters, taskmanager/peers.py) before the id the client gave it (``ID``).
TASK_ID = Str(MAX_ID + 13)
IDS = List(TASK_ID, MAX_BATCH)
NAME = Str(MAX_NAME)
TEXT = Str(MAX_TEXT)
ATTRS = Map(Str(MAX_VALUE))                    # attributes, constraints
ATTEMPT = Int(0, 1 << 31)      # 0: refused before any attempt
SECONDS = Num(0.0, 1e9)
PERCENT = Num(0.0, 100.0 * MAX_CORES)         # 100 per core at most
BYTES_COUNT = Int(0)
LEVEL = Str(20)
SCALAR_FIELDS = Map(Plain(0), max=100)    # the fields of a log record: flat, no bytes

TASK = record(
    ("id", "capability", "body"),
    id=ID, capability=ID, body=Bytes(), requires=ATTRS,
    priority=Int(-(1 << 31), 1 << 31), timeout=Opt(SECONDS),
    max_attempts=Int(1, 1000), resume=Bool(),
    stream=Bool(),          # forward OUTPUT while it runs (else: result only)
    track=Bool(),           # send STARTED when it is dispatched
    load=Num(0.0, MAX_CORES),   # cores' worth of CPU it is expected to use (default 1)
    label=Str(MAX_LABEL),   # a name for people (logs, status), e.g. the doit task
    group=ID,               # the work spec (group of its client's tasks) it belongs to
    group_priority=Int(-(1 << 31), 1 << 31),   # ... that group's priority and weight
    group_weight=Num(0.001, 1e6),
    action=Digest(),        # its action's name (the action cache): a rerun may be answered
    speculate=Bool(),       # it may run twice at once: a straggler gets a second copy
)
DISPATCHED = record(("id", "attempt", "capability", "body"),
                    id=TASK_ID, attempt=ATTEMPT, capability=ID, body=Bytes(),
                    timeout=Opt(SECONDS))
DIGEST = Digest()
DIGESTS = List(DIGEST, MAX_BATCH)
MAX_CHUNK = defaults.CHUNK_SIZE   # bytes a GET may ask for: what a peer's queue holds per
#                                   message the TaskManager answers (peers ask for 1 MiB)
# A file of a task's inputs or outputs: path (relative, '/'-separated), digest,
# size, and whether it is executable.
FILE_ENTRY = record(("path", "digest", "size"), path=Str(4096), digest=DIGEST,
                    size=Int(0), exec=Bool())
BLOB_REF = record(("digest", "size"), digest=DIGEST, size=Int(0))
MAX_RECORDS = 256         # line records (file, line, level) of one output item
MAX_TAILS = 64            # output pieces one result carries

LINE_RECORD = record(("index",), index=Int(0, MAX_ITEMS), level=LEVEL,
                     message=Str(MAX_LINE), file=Str(4096), line=Int(0), column=Int(0))
LINES = List(Str(MAX_LINE))
OUTPUT_ITEM = record(
    ("id", "attempt", "stream", "lines"),
    id=TASK_ID, attempt=ATTEMPT, stream=Str(20, ("stdout", "stderr")), lines=LINES,
    records=List(LINE_RECORD, MAX_RECORDS),
    level=LEVEL,            # the plugin's level for these lines (INFO, WARNING)
    time=Num(0.0, 1e11),   # when the worker read them (s since the epoch)
    # added by the TaskManager when it forwards the item to the log forwarder:
    machine=NAME, host=NAME, worker=NAME, capability=ID, label=Str(MAX_LABEL),
)
STARTED_ITEM = record(("id", "attempt", "host", "worker", "machine"),
                      id=ID, attempt=ATTEMPT, host=NAME, worker=NAME, machine=NAME)
LOG_RECORD = record(("logger", "level", "msg"),
                    logger=Str(MAX_LABEL), level=LEVEL, msg=TEXT,
                    created=Num(0.0, 1e11), fields=SCALAR_FIELDS)
OUTPUT_TAIL = record(("stream", "lines"), stream=Str(20, ("stdout", "stderr")),
                     lines=LINES, records=List(LINE_RECORD, MAX_RECORDS))
RESULT_ITEM = record(
    ("id", "attempt", "status"),
    id=TASK_ID, attempt=ATTEMPT,
    status=Str(20, STATUSES),
    exit_code=Opt(Int(-(1 << 31), 1 << 31)), value=Opt(Bytes()), error=Opt(TEXT),
    duration=SECONDS, started=Num(0.0, 1e11), detail=Map(Plain(), max=100), output=List(OUTPUT_TAIL, MAX_TAILS),
    truncated=Int(0), host=NAME, worker=NAME, machine=NAME, code=NAME,
    outputs=List(FILE_ENTRY, MAX_ITEMS),    # staged tasks: their outputs, in the store
    value_blob=BLOB_REF,                    # python: a result too big for "value", stored
    staging=Map(Plain(1), max=20),          # ... and the time fetching and uploading took
    copies=Int(1, 2), winner=Int(1, 2),     # a straggler's copy ran: which one's result this is
)
RUNNING_ENTRY = record(("id",), id=TASK_ID, attempt=ATTEMPT, capability=ID)
# Batches (farm-run): a batch's id is drawn by its client; its settings ride on
# every part, so any part can open it; a task is a command line and a replica.
BATCH_ID = Str(64)
MAX_BATCH_COMMANDS = 1 << 40
BATCH_SPEC = record(
    ("capability",),
    capability=ID, requires=ATTRS, priority=Int(-(1 << 31), 1 << 31),
    weight=Num(0.001, 1e6), timeout=Opt(SECONDS), max_attempts=Int(1, 1000),
    speculate=Bool(),       # a task may run twice at once: a second copy for stragglers
    label=Str(MAX_LABEL), cwd=Str(4096), env=ATTRS)
QUERIES = ("list", "status", "results", "output", "cancel", "forget")

SCHEMAS = {
    "HELLO": record(
        ("role", "id", "host", "machine"),
        role=Str(20, ROLES), id=ID, host=NAME, machine=NAME, pid=Int(0, 1 << 31),
        version=Str(100), slots=Int(0, MAX_SLOTS),   # 0: a worker lending none now
        capabilities=Map(ATTRS, max=MAX_CAPABILITIES),
        running=List(RUNNING_ENTRY, MAX_HELD),
        finished=List(RUNNING_ENTRY, MAX_BATCH),    # results it has not had acknowledged
        taskmanagers=List(Str(MAX_NAME), MAX_TASKMANAGERS),   # workers serving several
        user=NAME,      # clients: whom they submit for (heeded from admin keys only)
        nice=Bool()),   # clients: their tasks get only the slots nobody else wants
    "WELCOME": record(("incarnation", "heartbeat", "liveness"),
                      incarnation=Str(100), heartbeat=Num(0.001, 3600.0),
                      liveness=Int(1, 1000), max_message=Int(1)),
    "HEARTBEAT": record(),
    # wait (TaskManager -> peers): it is restarting; come back for this long
    "BYE": record(reason=TEXT, handed_back=IDS, wait=SECONDS),
    "RECONNECT": record(reason=TEXT),
    "SUBMIT": record(("tasks",), tasks=List(TASK, MAX_BATCH)),
    "CANCEL": record(("ids",), ids=IDS),
    "DISPATCH": record(("tasks",), tasks=List(DISPATCHED, MAX_BATCH), acks=IDS),
    "OUTPUT": record(("items",), items=List(OUTPUT_ITEM, MAX_BATCH)),
    "RESULT": record(("results",), results=List(RESULT_ITEM, MAX_BATCH)),
    "ACK": record(("ids",), ids=IDS, credit=Int(0, MAX_INT)),
    "NOTICE": record(("level", "text"), level=LEVEL, text=TEXT, ids=IDS, code=NAME),
    "ERROR": record(("text",), text=TEXT, ids=IDS, code=NAME),
    "STARTED": record(("items",), items=List(STARTED_ITEM, MAX_BATCH)),
    "REPORT": record(
        ("machine", "host", "interval", "cores", "cpu_percent", "memory_available",
         "owner_cpu"),
        machine=NAME, host=NAME, interval=Num(0.001, 86400.0), cores=Int(1, MAX_CORES),
        physical_cores=Opt(Int(1, MAX_CORES)), cpu_percent=Num(0.0, 100.0),
        per_cpu=List(Num(0.0, 100.0), MAX_CORES), load_avg=List(Num(0.0, 1e9), 3),
        memory_total=BYTES_COUNT, memory_available=BYTES_COUNT, swap_total=BYTES_COUNT,
        swap_used=BYTES_COUNT, disk_free=BYTES_COUNT, owner_cpu=PERCENT,
        platform=Str(MAX_LABEL), monitor_cpu=PERCENT, monitor_rss=BYTES_COUNT),
    "SUSPEND": record(("ids",), ids=IDS),
    "RESUME": record(("ids",), ids=IDS),
    "STATUS": record(report=Map(Plain(), max=100)),   # o: what the client says of itself
    "STATE": record(("status",), status=Map(Plain(), max=100)),
    "LOG": record(("records",), records=List(LOG_RECORD, MAX_BATCH)),
    "SLOTS": record(("slots",), slots=Int(0, MAX_SLOTS), draining=TEXT),
    "DEMAND": record(("wanted",), wanted=Bool()),
    "FIND": record(("ref", "digests"), ref=Int(), digests=DIGESTS, hold=Bool()),
    "FOUND": record(("ref", "missing"), ref=Int(), missing=DIGESTS),
    "PUT": record(("digest", "size", "offset", "data"), digest=DIGEST, size=Int(),
                  offset=Int(), data=Bytes()),
    "STORED": record(("digest", "received"), digest=DIGEST, received=Int(), done=Bool(),
                     code=NAME, text=TEXT),
    "GET": record(("digest", "offset", "length"), digest=DIGEST, offset=Int(),
                  length=Int(1, MAX_CHUNK)),
    "BLOB": record(("digest", "offset"), digest=DIGEST, offset=Int(), size=Int(),
                   data=Bytes(), code=NAME),
    "BATCH": record(("ref", "id", "spec", "commands", "replicas", "first", "lines"),
                    ref=Int(), id=BATCH_ID, spec=BATCH_SPEC,
                    commands=Int(1, MAX_BATCH_COMMANDS), replicas=Int(1, 1 << 30),
                    first=Int(0, MAX_BATCH_COMMANDS),
                    lines=List(Str(defaults.BATCH_COMMAND_MAX), MAX_BATCH)),
    "BATCHED": record(("ref", "id"), ref=Int(), id=BATCH_ID, received=Int(), code=NAME,
                      text=TEXT),
    "QUERY": record(("ref", "what"), ref=Int(), what=Str(20, QUERIES), id=BATCH_ID,
                    after=Int(-1), limit=Int(1, MAX_BATCH)),
    "ENROL": record(("secret", "host"), secret=Str(200), host=NAME, name=NAME),
    "ENROLLED": record(("name", "role", "invitation"), name=NAME, role=Str(20),
                       invitation=ID, machine=NAME, capabilities=List(ID, MAX_CAPABILITIES),
                       slots=Int(1, MAX_SLOTS)),
    "ANSWER": record(("ref", "what"), ref=Int(), what=Str(20, QUERIES), code=NAME,
                     text=TEXT, answer=Map(Plain(), max=100)),
}
