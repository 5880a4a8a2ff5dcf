"""The wire format of the one port: the only module that builds or parses frames.

Every message is one ZeroMQ frame (the ROUTER adds the sender's routing id in
front of it on the TaskManager side)::

    b"CF" | version (1 byte) | message type (1 byte) | msgpack map (the body)

Bodies are msgpack maps checked against the schema of their type below: a
required field missing or of the wrong type makes the whole message invalid.
Unknown fields are ignored, so a later minor revision can add fields without a
version bump. Nothing on the wire is ever unpickled by the TaskManager: task
bodies are opaque ``bytes`` it stores and forwards. docs/protocol.md describes
each message.
"""

import enum
import struct

import msgpack
import zmq

from ..exceptions import ProtocolError

MAGIC = b"CF"
VERSION = 1
_HEADER = struct.Struct("!2sBB")
HEADER_SIZE = _HEADER.size

MAX_ID_LENGTH = 200


class Msg(enum.IntEnum):
    HELLO = 1       # peer -> TM: who I am; a worker also says what it is running
    WELCOME = 2     # TM -> peer: accepted; the TaskManager's incarnation and heartbeat
    HEARTBEAT = 3   # both ways, when nothing else was sent for an interval
    BYE = 4         # both ways: leaving; a worker lists the tasks it hands back
    RECONNECT = 5   # TM -> peer: unknown to me (I restarted, or you expired): say hello
    SUBMIT = 6      # client -> TM: tasks to run
    CANCEL = 7      # client -> TM, TM -> worker: stop these tasks
    DISPATCH = 8    # TM -> worker: run these tasks
    OUTPUT = 9      # worker -> TM -> client: lines a running task printed
    RESULT = 10     # worker -> TM -> client: tasks that finished
    ACK = 11        # TM -> worker: these results are safe with me
    NOTICE = 12     # TM -> client: something the user should know about their tasks
    ERROR = 13      # TM -> peer: your message was refused, and why
    STARTED = 14    # TM -> client: these tasks were given to a worker (tasks with "track")
    REPORT = 15     # monitor -> TM: the machine's load
    SUSPEND = 16    # TM -> worker: stop these tasks' processes (SIGSTOP): the owner is back
    RESUME = 17     # TM -> worker: continue them (SIGCONT)
    STATUS = 18     # client -> TM: what does the farm look like?
    STATE = 19      # TM -> client: the answer to STATUS
    LOG = 20        # client -> TM -> log forwarder: log records (majordomo's events)


ROLES = ("client", "worker", "monitor", "logger")   # what a HELLO may say it is
STATUSES = ("ok", "failed", "timeout", "cancelled", "lost", "error")


class Code:
    """The ``code`` of a NOTICE, an ERROR or a RESULT the TaskManager made itself:
    what peers act on (the ``text`` beside it is for people and may be reworded)."""

    # NOTICE: tasks wait, or a request about tasks was refused
    NO_CAPABILITY = "no-capability"   # no worker offers their capability yet
    NO_MATCH = "no-match"             # no worker with that capability matches their constraints
    ID_IN_USE = "id-in-use"           # the task id belongs to another client
    NOT_YOURS = "not-yours"           # a CANCEL of another client's task
    # ERROR: the message was dropped
    MALFORMED = "malformed"           # does not decode, or does not fit its schema
    INVALID = "invalid"               # fits the schema, but a value is not acceptable
    NOT_ALLOWED = "not-allowed"       # this peer's role or key may not send this type
    KEY_REFUSED = "key-refused"       # the connection's key is not (or no longer) authorized
    ROLE_MISMATCH = "role-mismatch"   # a HELLO as another role than its key's
    ROLE_FIXED = "role-fixed"         # a HELLO as another role than this connection's first
    ID_BOUND = "id-bound"             # the routing id is bound to another key
    # RESULT made by the TaskManager (status error, cancelled or lost)
    QUEUE_FULL = "queue-full"         # refused: taskmanager.max_queued_per_client
    CANCELLED_QUEUED = "cancelled-queued"   # cancelled before it ran
    CANCELLED_LOST = "cancelled-lost"       # cancelled, and its worker was lost meanwhile
    OUT_OF_ATTEMPTS = "out-of-attempts"     # lost with its worker max_attempts times

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))

# field -> (accepted types, required, schema of list items or None)
_TASK = {
    "id": (str, True, None),
    "capability": (str, True, None),
    "body": (bytes, True, None),
    "requires": (dict, False, None),
    "priority": (int, False, None),
    "timeout": (_OPT_NUM, False, None),
    "max_attempts": (int, False, None),
    "resume": (bool, False, None),
    "stream": (bool, False, None),   # forward OUTPUT while it runs (else: result only)
    "track": (bool, False, None),    # send STARTED when it is dispatched
    "load": (_NUM, False, None),     # cores' worth of CPU it is expected to use (default 1)
    "label": (str, False, None),     # a name for people (logs, status), e.g. the doit task
}
_DISPATCHED = {
    "id": (str, True, None),
    "attempt": (int, True, None),
    "capability": (str, True, None),
    "body": (bytes, True, None),
    "timeout": (_OPT_NUM, False, None),
}
_OUTPUT_ITEM = {
    "id": (str, True, None),
    "attempt": (int, True, None),
    "stream": (str, True, None),
    "lines": (list, True, None),
    "records": (list, False, None),
    "level": (str, False, None),       # the plugin's level for these lines (INFO, WARNING)
    "time": (_NUM, False, None),       # when the worker read them (seconds since the epoch)
    # added by the TaskManager when it forwards the item to the log forwarder:
    "machine": (str, False, None),
    "host": (str, False, None),
    "worker": (str, False, None),
    "capability": (str, False, None),
    "label": (str, False, None),
}
_STARTED_ITEM = {
    "id": (str, True, None),
    "attempt": (int, True, None),
    "host": (str, True, None),
    "worker": (str, True, None),
    "machine": (str, True, None),
}
_LOG_RECORD = {
    "logger": (str, True, None),
    "level": (str, True, None),
    "msg": (str, True, None),
    "created": (_NUM, False, None),
    "fields": (dict, False, None),
}
_OUTPUT_TAIL = {   # the output a result carries: what the task printed, in order
    "stream": (str, True, None),
    "lines": (list, True, None),
    "records": (list, False, None),
}
_RESULT_ITEM = {
    "id": (str, True, None),
    "attempt": (int, True, None),
    "status": (str, True, None),
    "exit_code": ((int, type(None)), False, None),
    "value": ((bytes, type(None)), False, None),
    "error": (_OPT_STR, False, None),
    "duration": (_NUM, False, None),
    "detail": (dict, False, None),
    "output": (list, False, _OUTPUT_TAIL),
    "truncated": (int, False, None),
    "host": (str, False, None),
    "worker": (str, False, None),
    "machine": (str, False, None),
    "code": (str, False, None),
}

SCHEMAS = {
    Msg.HELLO: {
        "role": (str, True, None),
        "id": (str, True, None),
        "host": (str, True, None),
        "machine": (str, True, None),
        "pid": (int, False, None),
        "version": (str, False, None),
        "slots": (int, False, None),
        "capabilities": (dict, False, None),
        "running": (list, False, None),
    },
    Msg.WELCOME: {
        "incarnation": (str, True, None),
        "heartbeat": (_NUM, True, None),
        "liveness": (int, True, None),
    },
    Msg.HEARTBEAT: {},
    Msg.BYE: {"reason": (str, False, None), "handed_back": (list, False, None)},
    Msg.RECONNECT: {"reason": (str, False, None)},
    Msg.SUBMIT: {"tasks": (list, True, _TASK)},
    Msg.CANCEL: {"ids": (list, True, None)},
    Msg.DISPATCH: {"tasks": (list, True, _DISPATCHED), "acks": (list, False, None)},
    Msg.OUTPUT: {"items": (list, True, _OUTPUT_ITEM)},
    Msg.RESULT: {"results": (list, True, _RESULT_ITEM)},
    Msg.ACK: {"ids": (list, True, None), "credit": (int, False, None)},
    Msg.NOTICE: {
        "level": (str, True, None),
        "text": (str, True, None),
        "ids": (list, False, None),
        "code": (str, False, None),
    },
    Msg.ERROR: {"text": (str, True, None), "ids": (list, False, None),
                "code": (str, False, None)},
    Msg.STARTED: {"items": (list, True, _STARTED_ITEM)},
    Msg.REPORT: {
        "machine": (str, True, None),
        "host": (str, True, None),
        "interval": (_NUM, True, None),
        "cores": (int, True, None),
        "physical_cores": ((int, type(None)), False, None),
        "cpu_percent": (_NUM, True, None),
        "per_cpu": (list, False, None),
        "load_avg": (list, False, None),
        "memory_total": (int, False, None),
        "memory_available": (int, True, None),
        "swap_total": (int, False, None),
        "swap_used": (int, False, None),
        "disk_free": (int, False, None),
        "owner_cpu": (_NUM, True, None),
        "platform": (str, False, None),
        "monitor_cpu": (_NUM, False, None),
        "monitor_rss": (int, False, None),
    },
    Msg.SUSPEND: {"ids": (list, True, None)},
    Msg.RESUME: {"ids": (list, True, None)},
    Msg.STATUS: {},
    Msg.STATE: {"status": (dict, True, None)},
    Msg.LOG: {"records": (list, True, _LOG_RECORD)},
}


def encode(mtype, body):
    """One frame for message type ``mtype`` carrying ``body`` (a dict)."""
    return _HEADER.pack(MAGIC, VERSION, mtype) + msgpack.packb(body, use_bin_type=True)


def decode(frame):
    """``(Msg, body)`` from one frame; ProtocolError says what is wrong with it."""
    if len(frame) < HEADER_SIZE:
        raise ProtocolError("frame of %d bytes is shorter than the header" % len(frame))
    magic, version, code = _HEADER.unpack_from(frame)
    if magic != MAGIC:
        raise ProtocolError("not a ComputeFarm frame (magic %r)" % magic)
    if version != VERSION:
        raise ProtocolError("protocol version %d, this side speaks %d" % (version, VERSION))
    mtype = _BY_CODE.get(code)
    if mtype is None:
        raise ProtocolError("unknown message type %d" % code)
    try:
        body = msgpack.unpackb(memoryview(frame)[HEADER_SIZE:], raw=False,
                               strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise ProtocolError("%s body does not decode: %s" % (mtype.name, exc)) from None
    if not isinstance(body, dict):
        raise ProtocolError("%s body is a %s, not a map" % (mtype.name, type(body).__name__))
    _check(body, _COMPILED[mtype], mtype.name)
    return mtype, body


def _compile(schema):
    """``(required fields, {field: (types, schema of list items)})`` of a schema."""
    return (tuple(f for f, (_, required, _) in schema.items() if required),
            {f: (types, None if items is None else _compile(items))
             for f, (types, _, items) in schema.items()})


_COMPILED = {mtype: _compile(schema) for mtype, schema in SCHEMAS.items()}
_BY_CODE = {int(mtype): mtype for mtype in Msg}


def _check(body, compiled, where):
    """Raise ProtocolError unless ``body`` fits; ``where`` (a str, or a callable
    making one) names it in the error, built only when there is one."""
    required, fields = compiled
    for field in required:
        if field not in body:
            raise ProtocolError("%s: missing field %r" % (_name(where), field))
    for field, value in body.items():
        spec = fields.get(field)
        if spec is None:
            continue                      # unknown fields are ignored
        types, items = spec
        if not isinstance(value, types) or (types is int and value.__class__ is bool):
            raise ProtocolError("%s: field %r is a %s" % (_name(where), field,
                                                          type(value).__name__))
        if field == "id" and len(value) > MAX_ID_LENGTH:
            raise ProtocolError("%s: id longer than %d characters"
                                % (_name(where), MAX_ID_LENGTH))
        if items is not None:
            for index, item in enumerate(value):
                if item.__class__ is not dict:
                    raise ProtocolError("%s.%s[%d] is not a map" % (_name(where), field, index))
                _check(item, items, lambda w=where, f=field, i=index:
                       "%s.%s[%d]" % (_name(w), f, i))


def _name(where):
    return where() if callable(where) else where


def hello(role, peer_id, host, machine, pid, **extra):
    """A HELLO body; a worker adds ``slots``, ``capabilities``, ``running``, ``version``."""
    body = {"role": role, "id": peer_id, "host": host, "machine": machine, "pid": pid}
    body.update(extra)
    return body


def result_item(task_id, attempt, status, error=None, exit_code=None, code=None, **fields):
    """One item of a RESULT (a worker's, or one the TaskManager makes itself)."""
    item = {"id": task_id, "attempt": attempt, "status": status, "exit_code": exit_code}
    if error is not None:
        item["error"] = error
    if code is not None:
        item["code"] = code
    item.update(fields)
    return item


def dispatch_item(task_id, attempt, capability, body, timeout):
    """One task of a DISPATCH."""
    return {"id": task_id, "attempt": attempt, "capability": capability, "body": body,
            "timeout": timeout}


def started_item(task_id, attempt, host, worker, machine):
    """One item of a STARTED: where a tracked task was just given."""
    return {"id": task_id, "attempt": attempt, "host": host, "worker": worker,
            "machine": machine}


def notice(level, code, text, ids=()):
    """A NOTICE body: ``code`` (a ``Code``) is what a client acts on."""
    return {"level": level, "code": code, "text": text, "ids": list(ids)}


def error(code, text, ids=None):
    """An ERROR body: the sender's message was dropped, and why."""
    body = {"code": code, "text": text}
    if ids:
        body["ids"] = list(ids)
    return body


# The list each batched message carries its items in.
BATCH_FIELD = {Msg.DISPATCH: "tasks", Msg.CANCEL: "ids", Msg.RESULT: "results",
               Msg.OUTPUT: "items", Msg.ACK: "ids", Msg.STARTED: "items",
               Msg.SUSPEND: "ids", Msg.RESUME: "ids", Msg.LOG: "records",
               Msg.SUBMIT: "tasks"}


def batch(mtype, items):
    """The body of a batched message type carrying ``items``."""
    return {BATCH_FIELD[mtype]: items}


def check_str_map(value, where):
    """A map of str -> str (attributes, constraints, environment), else ProtocolError."""
    if not isinstance(value, dict):
        raise ProtocolError("%s is a %s, not a map" % (where, type(value).__name__))
    for key, item in value.items():
        if not isinstance(item, str):
            raise ProtocolError("%s[%r] is a %s, not a string" % (where, key, type(item).__name__))
    return value


def check_str_list(value, where):
    """A list of str (task ids), else ProtocolError."""
    for item in value:
        if not isinstance(item, str):
            raise ProtocolError("%s holds a %s, not a string" % (where, type(item).__name__))
    return value


def pack_body(request):
    """The opaque task body a client sends: msgpack of the plugin's request map."""
    return msgpack.packb(request, use_bin_type=True)


def unpack_body(body):
    """A task body back into the request map (on the worker only)."""
    try:
        request = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:
        raise ProtocolError("task body does not decode: %s" % exc) from None
    if not isinstance(request, dict):
        raise ProtocolError("task body is a %s, not a map" % type(request).__name__)
    return request


def logger_name(*parts):
    """``farm.machine.capability.task``: dots inside a part would split the tree."""
    return ".".join(str(part).replace(".", "_") for part in parts if part)


class BadMessage(ProtocolError):
    """A malformed message, with the routing id of the peer that sent it."""

    def __init__(self, sender, text):
        super().__init__(text, Code.MALFORMED)
        self.sender = sender


def send(socket, mtype, body, to=None):
    """Send one message; ``to`` is the routing id when sending from the ROUTER."""
    frame = encode(mtype, body)
    if to is None:
        socket.send(frame, copy=len(frame) < 65536)
    else:
        socket.send(to, zmq.SNDMORE)
        socket.send(frame, copy=len(frame) < 65536)


def recv_router(socket, with_user=False):
    """``(sender, Msg, body, user)`` from the ROUTER; ProtocolError names what is wrong.

    ``user`` is the public key (z85 bytes) the connection authenticated with
    (CURVE), when ``with_user``; else None. The sender is returned even for a bad message so
    the caller can log it.
    """
    user = None
    if with_user:
        parts = socket.recv_multipart(zmq.NOBLOCK, copy=False)
        user = parts[-1].get("User-Id")
        user = user.encode() if user else None
        frames = [part.bytes for part in parts]
    else:
        frames = socket.recv_multipart(zmq.NOBLOCK)
    sender = frames[0]
    if len(frames) != 2:
        raise BadMessage(sender, "%d frames, expected 1" % (len(frames) - 1))
    try:
        mtype, body = decode(frames[1])
    except ProtocolError as exc:
        raise BadMessage(sender, str(exc)) from None
    return sender, mtype, body, user


def recv_dealer(socket):
    """``(Msg, body)`` from a DEALER socket."""
    frames = socket.recv_multipart(zmq.NOBLOCK)
    if len(frames) != 1:
        raise ProtocolError("%d frames, expected 1" % len(frames))
    return decode(frames[0])
