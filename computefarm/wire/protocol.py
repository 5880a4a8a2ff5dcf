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

from .. import tracing
from ..exceptions import ProtocolError
from . import schemas
from .schemas import MAX_BATCH, MAX_RECORDS, MAX_TAILS, ROLES, STATUSES  # noqa: F401  (used by peers)

MAGIC = b"CF"
VERSION = 1
_HEADER = struct.Struct("!2sBB")
HEADER_SIZE = _HEADER.size


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
    SLOTS = 21      # worker -> TM: the slots it lends this TaskManager now (it serves several)
    DEMAND = 22     # TM -> worker serving several: whether tasks it could take wait here
    FIND = 23       # client/worker -> TM: which of these blobs do you lack?
    FOUND = 24      # TM -> peer: the answer to FIND (the ones it lacks)
    PUT = 25        # client/worker -> TM: one chunk of a blob, in order
    STORED = 26     # TM -> peer: a PUT's chunk taken (the next may go), or the blob stored
    GET = 27        # client/worker -> TM: send me this piece of a blob
    BLOB = 28       # TM -> peer: the answer to GET (a chunk), or that it is missing
    BATCH = 29      # client -> TM: commands of a batch (farm-run), a part at a time
    BATCHED = 30    # TM -> client: that part is on disk (or refused, and why)
    QUERY = 31      # client -> TM: about batches: list, status, results, output, cancel
    ANSWER = 32     # TM -> client: the answer to QUERY
    ENROL = 33      # stranger -> TM: an invitation's secret, to have this key authorized
    ENROLLED = 34   # TM -> stranger: authorized, with this name, role and machine


class Code:
    """The ``code`` of a NOTICE, an ERROR or a RESULT the TaskManager made itself:
    what peers act on (the ``text`` beside it is for people and may be reworded)."""

    # NOTICE: tasks wait, or a request about tasks was refused
    NO_CAPABILITY = "no-capability"   # no worker offers their capability yet
    NO_MATCH = "no-match"             # no worker with that capability matches their constraints
    ID_IN_USE = "id-in-use"           # the task id belongs to another client
    NOT_YOURS = "not-yours"           # a CANCEL of another client's task
    SUSPENDED = "suspended"           # their machine's owner is back: they are stopped
    RESUMED = "resumed"               # ... and go on again
    # ERROR: the message was dropped
    MALFORMED = "malformed"           # does not decode, or does not fit its schema
    INVALID = "invalid"               # fits the schema, but a value is not acceptable
    NOT_ALLOWED = "not-allowed"       # this peer's role or key may not send this type
    KEY_REFUSED = "key-refused"       # the connection's key is not (or no longer) authorized
    ROLE_MISMATCH = "role-mismatch"   # a HELLO as another role than its key's
    ROLE_FIXED = "role-fixed"         # a HELLO as another role than this connection's first
    ID_BOUND = "id-bound"             # the routing id is bound to another key
    MACHINE_BOUND = "machine-bound"   # a HELLO for another machine than its key's
    INTERNAL = "internal"             # a bug in the TaskManager (its log has the traceback)
    # RESULT made by the TaskManager (status error, cancelled or lost)
    QUEUE_FULL = "queue-full"         # refused: taskmanager.max_queued_per_client
    QUEUE_BYTES = "queue-bytes"       # refused: taskmanager.max_queued_bytes_per_client
    USER_QUEUE_FULL = "user-queue-full"     # refused: farm.yaml users.NAME.max_queued
    USER_QUEUE_BYTES = "user-queue-bytes"   # refused: farm.yaml users.NAME.max_queued_bytes
    PRIORITY_REFUSED = "priority-refused"   # refused: priority > 0 and users.NAME.priority false
    CANCELLED_QUEUED = "cancelled-queued"   # cancelled before it ran
    CANCELLED_LOST = "cancelled-lost"       # cancelled, and its worker was lost meanwhile
    OUT_OF_ATTEMPTS = "out-of-attempts"     # lost with its worker max_attempts times
    # STORED and BLOB: a transfer went wrong
    CORRUPT = "corrupt"               # the blob's content does not have its digest: resend it
    OUT_OF_ORDER = "out-of-order"     # a PUT not at the offset received so far (``received``)
    TOO_MANY = "too-many"             # this peer has UPLOADS_PER_PEER blobs on their way
    STORE_FULL = "store-full"         # the blob cannot fit in the store, or the disk is full
    MISSING = "missing"               # GET of a blob the store does not have (evicted)
    # RESULT of a staged task that could not be staged
    STAGING = "staging"               # an input could not be fetched or laid out
    # RESULT the TaskManager answered from its action cache (status ok)
    CACHE_HIT = "cache-hit"           # the same action ran before: its outputs are in the store
    # BATCHED and ANSWER: a batch request refused
    UNKNOWN_BATCH = "unknown-batch"   # no batch of that id (that this key may see)
    DATABASE = "database"             # the TaskManager's database cannot be written now
    # ERROR answering an ENROL
    ENROL_REFUSED = "enrol-refused"   # no usable invitation (unknown, used, expired, revoked)

# A worker capability's attribute listing the attributes its plugin declares
# relevant to a run's outcome (comma separated): the action cache's profile.
CACHE_ATTRIBUTES = "cache_attributes"


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
    check(mtype, body)
    return mtype, body


_BY_CODE = {int(mtype): mtype for mtype in Msg}
_SCHEMAS = {mtype: schemas.SCHEMAS[mtype.name] for mtype in Msg}


def check(mtype, body):
    """Raise ProtocolError unless ``body`` fits the schema of ``mtype``."""
    error = _SCHEMAS[mtype].check(body)
    if error is not None:
        raise ProtocolError(mtype.name + (error if error[0] in ".[" else ": " + error))


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


def find(ref, digests, hold=False):
    body = {"ref": ref, "digests": list(digests)}
    if hold:
        body["hold"] = True
    return body


def found(ref, missing):
    return {"ref": ref, "missing": list(missing)}


def put(digest, size, offset, data):
    return {"digest": digest, "size": size, "offset": offset, "data": data}


def stored(digest, received, done=False, code=None, text=None):
    body = {"digest": digest, "received": received, "done": done}
    if code is not None:
        body["code"] = code
        body["text"] = text or code
    return body


def get(digest, offset, length):
    return {"digest": digest, "offset": offset, "length": length}


def blob(digest, offset, size=None, data=None, code=None):
    body = {"digest": digest, "offset": offset}
    if code is not None:
        body["code"] = code
    else:
        body["size"], body["data"] = size, data
    return body


def batch_part(ref, batch_id, spec, commands, replicas, first, lines):
    """A BATCH body: ``lines`` are commands ``first ..`` of ``commands`` in all."""
    return {"ref": ref, "id": batch_id, "spec": spec, "commands": commands,
            "replicas": replicas, "first": first, "lines": list(lines)}


def batched(ref, batch_id, received=None, code=None, text=None):
    """A BATCHED body: the part is on disk (``received`` commands so far), or refused."""
    return _refusable({"ref": ref, "id": batch_id}, code, text, received=received)


def query(ref, what, batch_id=None, after=None, limit=None):
    return _refusable({"ref": ref, "what": what}, None, None, id=batch_id, after=after,
                      limit=limit)


def answer(ref, what, answer=None, code=None, text=None):
    return _refusable({"ref": ref, "what": what}, code, text, answer=answer)


def _refusable(body, code, text, **optional):
    """``body`` with the ``optional`` fields that are not None, and ``code`` and
    ``text`` when it says no."""
    body.update((field, value) for field, value in optional.items() if value is not None)
    if code is not None:
        body["code"], body["text"] = code, text or code
    return body


def enrol(secret, host, name=None):
    """An ENROL body: ``name`` is the one the new machine asks for (else its host's)."""
    return _refusable({"secret": secret, "host": host}, None, None, name=name)


def enrolled(name, role, machine, capabilities, slots, invitation):
    return _refusable({"name": name, "role": role, "invitation": invitation,
                       "capabilities": list(capabilities)}, None, None, machine=machine,
                      slots=slots)


def slots(count, draining=None):
    """A SLOTS body: the slots lent now; ``draining``: why it takes no more work."""
    return _refusable({"slots": count}, None, None, draining=draining)


def notice(level, code, text, ids=()):
    """A NOTICE body: ``code`` (a ``Code``) is what a client acts on."""
    return {"level": level, "code": code, "text": text, "ids": list(ids)}


def error(code, text, ids=None):
    """An ERROR body: the sender's message was dropped, and why."""
    body = {"code": code, "text": text}
    if ids:
        body["ids"] = list(ids)
    return body


# Bytes of bodies or text a batched message carries, about, when its items are
# weighed: many small messages rather than one that holds the loop for long.
BATCH_BYTES = 1 << 20

# The list each batched message carries its items in.
BATCH_FIELD = {Msg.DISPATCH: "tasks", Msg.CANCEL: "ids", Msg.RESULT: "results",
               Msg.OUTPUT: "items", Msg.ACK: "ids", Msg.STARTED: "items",
               Msg.SUSPEND: "ids", Msg.RESUME: "ids", Msg.LOG: "records",
               Msg.SUBMIT: "tasks"}


def batch(mtype, items):
    """The body of a batched message type carrying ``items`` (at most ``batch_size``)."""
    return {BATCH_FIELD[mtype]: items}


def batch_size(mtype):
    """The most items one message of batched type ``mtype`` may carry."""
    return schemas.SCHEMAS[mtype.name].fields[BATCH_FIELD[mtype]].max


def batches(mtype, items, weigh=None):
    """Bodies of ``mtype`` carrying ``items``, as many as the type's size limit needs;
    with ``weigh`` (item -> bytes, about), each also carries at most ``BATCH_BYTES``
    (or one item, when a single item weighs more)."""
    size, field = batch_size(mtype), BATCH_FIELD[mtype]
    if weigh is None:
        for start in range(0, len(items), size):
            yield {field: items[start:start + size]}
        return
    start, weight = 0, 0
    for index, item in enumerate(items):
        cost = weigh(item)
        if index > start and (index - start >= size or weight + cost > BATCH_BYTES):
            yield {field: items[start:index]}
            start, weight = index, 0
        weight += cost
    if start < len(items):
        yield {field: items[start:]}


def weigh_task(spec):
    return len(spec["body"]) + 100


def weigh_record(record):
    return len(record["msg"]) + 100


def weigh_output(item):
    return sum(map(len, item["lines"])) + 10 * len(item["lines"]) + 100


def weigh_result(result):
    return len(result.get("value") or b"") + 100 * len(result.get("outputs") or ()) + sum(
        map(weigh_output, result.get("output") or ())) + len(result.get("error") or "") + 100


# How the items of a batched type are weighed (protocol.batches): those that can be big.
WEIGHTS = {Msg.SUBMIT: weigh_task, Msg.DISPATCH: weigh_task, Msg.LOG: weigh_record,
           Msg.OUTPUT: weigh_output, Msg.RESULT: weigh_result}


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


_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)


def send(socket, mtype, body, to=None):
    """Send one message, never waiting: zmq.Again when the queue is full (nothing is
    sent); ``to`` is the routing id when sending from the ROUTER."""
    frame = encode(mtype, body)
    if tracing.on:
        tracing.mark("send %d" % mtype)
    if to is None:
        socket.send(frame, _NOBLOCK, copy=len(frame) < 65536)
    else:
        socket.send(to, _MORE)
        socket.send(frame, _NOBLOCK, copy=len(frame) < 65536)


def recv_router(socket, with_user=False):
    """``(sender, Msg, body, user)`` from the ROUTER; ProtocolError names what is wrong.

    ``user`` is the public key (z85 bytes) the connection authenticated with
    (CURVE), when ``with_user``; else None. The sender is returned even for a bad message so
    the caller can log it.
    """
    sender = socket.recv(_NOBLOCK)           # a ROUTER gives at least one part after it
    part = socket.recv(_NOBLOCK, copy=False)  # a Frame: its metadata (User-Id), its ``more``
    user = None
    if with_user:
        user = part.get("User-Id")
        user = user.encode() if user else None
    frame = part.bytes
    extra = _drain_parts(socket, part)
    if extra:
        raise BadMessage(sender, "%d frames, expected 1" % (extra + 1))
    try:
        mtype, body = decode(frame)
    except ProtocolError as exc:
        raise BadMessage(sender, str(exc)) from None
    if tracing.on:
        tracing.mark("recv %d" % mtype)
    return sender, mtype, body, user


def _drain_parts(socket, part):
    """The parts of a message after ``part`` (a Frame), read and dropped: how many.
    (``Frame.more`` rather than the socket's RCVMORE option, which pyzmq reads
    through a Python-level attribute lookup: a few microseconds a message.)"""
    extra = 0
    while part.more:
        part = socket.recv(_NOBLOCK, copy=False)
        extra += 1
    return extra


def recv_monitor_event(monitor, flags=0):
    """One event of a socket monitor: ``{"event", "value", "endpoint"}`` (what
    zmq.utils.monitor.recv_monitor_message returns, without importing it: it pulls
    in asyncio, a sixth of a command's start-up)."""
    frames = monitor.recv_multipart(flags)
    event, value = _MONITOR_EVENT.unpack_from(frames[0])
    return {"event": event, "value": value,
            "endpoint": frames[1].decode("utf-8", "replace") if len(frames) > 1 else ""}


_MONITOR_EVENT = struct.Struct("=HI")


def recv_dealer(socket):
    """``(Msg, body)`` from a DEALER socket."""
    part = socket.recv(_NOBLOCK, copy=False)
    extra = _drain_parts(socket, part)
    if extra:
        raise ProtocolError("%d frames, expected 1" % (extra + 1))
    mtype, body = decode(part.bytes)
    if tracing.on:
        tracing.mark("recv %d" % mtype)
    return mtype, body
