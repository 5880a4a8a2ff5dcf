"""The log forwarder: task output and farm events to a rotating file and to cutelog.

The TaskManager starts it as a child process; it connects back to the one port
as a ``logger`` peer, so the TaskManager's loop only forwards items and never
formats a line. Every record goes to a rotating JSON-lines file (nothing is
lost when no viewer is open) and to cutelog over TCP with cutelog's JSON
framing (4-byte big-endian length + JSON object, after the
``!!cutelog!!format=json`` switch), never pickle. While cutelog is away up to
``buffer`` records wait in memory; past that the oldest are dropped and one
WARNING record says how many. It grants the TaskManager credit for more items
as it handles them, so a flood of output is dropped at the source, not queued.
"""

import collections
import json
import logging
import os
import socket
import struct
import time

import zmq

from .. import addresses, defaults
from ..exceptions import UsageError
from ..hostinfo import host_name
from ..service import Service
from ..wire import protocol
from ..wire.link import Link, peer_id
from ..wire.protocol import Msg, logger_name

log = logging.getLogger(__name__)

SWITCH = b"!!cutelog!!format=json"


def output_records(item, created):
    """One JSON record (text) per line of an OUTPUT item (as the TaskManager enriched
    it). The fields all lines share are encoded once: a flood costs little per line."""
    name = logger_name("farm", item.get("machine"), item.get("capability"),
                       item.get("label") or item["id"])
    level = item.get("level") or ("WARNING" if item["stream"] == "stderr" else "INFO")
    base = {"name": name, "levelname": level, "created": item.get("time", created),
            "task": item["id"], "attempt": item["attempt"], "host": item.get("host"),
            "worker": item.get("worker"), "machine": item.get("machine"),
            "stream": item["stream"]}
    special = {r.get("index"): r for r in item.get("records") or () if isinstance(r, dict)}
    prefix = _dumps(base)[:-1] + ',"msg":'
    records = []
    for index, line in enumerate(item["lines"]):
        extra = special.get(index)
        if extra is None:
            records.append(prefix + _dumps(line) + "}")
            continue
        record = dict(base, msg=line, levelname=str(extra.get("level", level)).upper())
        for key in ("file", "line", "column"):
            if key in extra:
                record[key] = extra[key]
        records.append(_dumps(record))
    return records


def event_record(body, created):
    record = {"name": body["logger"], "levelname": body["level"].upper(), "msg": body["msg"],
              "created": body.get("created", created)}
    for key, value in (body.get("fields") or {}).items():
        if key not in record and isinstance(value, (str, int, float, bool, type(None))):
            record[key] = value
    return _dumps(record)


def forwarder_keys(text):
    """The (public, secret, server public) keys the TaskManager handed over, or None.
    Separated by spaces: z85, the keys' alphabet, has none (but has ':')."""
    if not text:
        return None
    keys = text.split()
    if len(keys) != 3 or any(len(key) != 40 for key in keys):
        raise UsageError("%s holds %d word(s), not three 40-character keys"
                         % (defaults.FORWARDER_KEYS_ENV, len(keys)))
    return tuple(key.encode() for key in keys)


def _dumps(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RotatingFile:
    """Appends records (one line each) to ``path``, readable by its owner only;
    past ``max_bytes`` it becomes path.1 (and so on), between two records. When
    the disk is full it pauses: records are counted as dropped and writing is tried
    again after ``DISK_RETRY`` seconds."""

    def __init__(self, path, max_bytes=defaults.RECORDS_FILE_SIZE,
                 backups=defaults.RECORDS_FILE_BACKUPS, clock=time.monotonic):
        self.path = os.path.expanduser(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.clock = clock
        self.paused_until = None
        self.dropped = 0
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.stream = self._open()
        self.size = self.stream.tell()

    def _open(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)            # a file made before by a laxer version
        return os.fdopen(fd, "a", encoding="utf-8")

    def write_records(self, records):
        """Write each record as a line; False when the disk is full (they are dropped)."""
        if self.paused_until is not None:
            if self.clock() < self.paused_until:
                self.dropped += len(records)
                return False
            self.paused_until = None
            log.warning("log forwarder: writing %s again (%d record(s) dropped while the "
                        "disk was full)", self.path, self.dropped)
        try:
            chunk, size = [], 0
            for text in records:
                line = text + "\n"
                if self.size + size + len(line) > self.max_bytes and self.size + size:
                    self.stream.write("".join(chunk))
                    self.size += size
                    chunk, size = [], 0
                    self.rotate()
                chunk.append(line)
                size += len(line)
            self.stream.write("".join(chunk))
            self.size += size
            return True
        except OSError as exc:          # ENOSPC, EDQUOT, EIO: pause, then try again
            self.paused_until = self.clock() + defaults.DISK_RETRY
            self.dropped += len(records)
            log.warning("log forwarder: cannot write %s (%s): records are dropped for "
                        "%.0f s", self.path, exc.strerror or exc, defaults.DISK_RETRY)
            self._reopen()
            return False

    def _reopen(self):
        try:
            self.stream.close()
        except OSError:                 # what it still buffered cannot be written either
            pass
        try:
            self.stream = self._open()
            self.size = self.stream.tell()
        except OSError:
            self.stream = open(os.devnull, "a", encoding="utf-8")

    def rotate(self):
        self.stream.close()
        for index in range(self.backups - 1, 0, -1):
            older = "%s.%d" % (self.path, index)
            if os.path.exists(older):
                os.replace(older, "%s.%d" % (self.path, index + 1))
        os.replace(self.path, self.path + ".1")
        self.stream = self._open()
        self.size = 0

    def flush(self):
        try:
            self.stream.flush()
        except OSError as exc:
            self.paused_until = self.clock() + defaults.DISK_RETRY
            log.warning("log forwarder: cannot write %s (%s)", self.path, exc.strerror)
            self._reopen()

    def close(self):
        try:
            self.stream.close()
        except OSError:
            pass


class CutelogSink:
    """A TCP connection to cutelog that comes and goes, with a bounded backlog."""

    def __init__(self, address, capacity):
        self.address = addresses.split_host_port(address, "--cutelog")
        self.backlog = collections.deque()
        self.capacity = capacity
        self.dropped = 0
        self.sock = None
        self.pending = b""
        self.retry_at = 0.0
        self.backoff = 0.1

    def add(self, record):
        """Queue one record (JSON text); the oldest goes when the backlog is full."""
        if len(self.backlog) >= self.capacity:
            self.backlog.popleft()
            self.dropped += 1
        self.backlog.append(record)

    def pump(self, now):
        """Connect if it is time, then send what the socket takes without waiting."""
        if self.sock is None:
            if now < self.retry_at or not (self.backlog or self.dropped):
                return
            if not self._connect(now):
                return
        if self.dropped and not self.pending:
            self.backlog.appendleft(_dumps({
                "name": "farm.logs", "levelname": "WARNING", "created": time.time(),
                "msg": "%d record(s) dropped while cutelog was away; the records file has "
                       "them all" % self.dropped}))
            self.dropped = 0
        while True:
            if not self.pending:
                if not self.backlog:
                    return
                self.pending = self._frames()
            try:
                sent = self.sock.send(self.pending)
            except BlockingIOError:
                return
            except OSError:
                self._lost(now)
                return
            self.pending = self.pending[sent:]

    def _frames(self):
        chunks, size = [], 0
        while self.backlog and size < defaults.CUTELOG_SEND_CHUNK:
            body = self.backlog.popleft().encode()
            chunks.append(struct.pack(">L", len(body)) + body)
            size += len(chunks[-1])
        return b"".join(chunks)

    def _connect(self, now):
        try:
            sock = socket.create_connection(self.address, timeout=0.5)
        except OSError:
            self.retry_at = now + self.backoff
            self.backoff = min(self.backoff * 2, defaults.CUTELOG_RECONNECT_MAX)
            return False
        sock.setblocking(False)
        self.sock = sock
        self.backoff = 0.1
        self.pending = struct.pack(">L", len(SWITCH)) + SWITCH
        log.info("log forwarder: connected to cutelog at %s:%d", *self.address)
        return True

    def _lost(self, now):
        log.info("log forwarder: cutelog at %s:%d went away", *self.address)
        self.close()
        self.pending = b""
        self.retry_at = now + self.backoff

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class LogForwarder(Service):
    name = "log forwarder"

    def __init__(self, address, cutelog, records_path, buffer=defaults.CUTELOG_BUFFER,
                 context=None, clock=time.monotonic, parent=None):
        super().__init__()
        self.address = address
        self.cutelog_address = cutelog
        self.records_path = records_path
        self.buffer = buffer
        self.context = context or zmq.Context.instance()
        self.clock = clock
        self.parent = parent
        self.identity = peer_id("logger")
        self.file = None
        self.sink = None
        self.link = None
        self.poller = None

    def initialize(self):
        self.file = RotatingFile(self.records_path)
        if self.cutelog_address:
            self.sink = CutelogSink(self.cutelog_address, self.buffer)
        self.poller = zmq.Poller()
        curve = forwarder_keys(os.environ.pop(defaults.FORWARDER_KEYS_ENV, None))
        self.link = Link(self.context, self.address, "logger", self.hello,
                         lambda restarted: None, self.poller, self.clock(),
                         identity=self.identity, curve=curve)

    def hello(self):
        return protocol.hello("logger", self.identity, host_name(), host_name(), os.getpid())

    def loop(self, now=None):
        busy = self.sink is not None and (self.sink.pending or self.sink.backlog)
        if self.link.socket is None:
            time.sleep(0.02 if busy else defaults.POLL_MAX)
        else:
            self.poller.poll(20 if busy else defaults.POLL_MAX * 1000)
        now = self.clock() if now is None else now
        handled = 0
        created = time.time()
        for mtype, body in self.link.receive(now):
            if mtype == Msg.OUTPUT:
                for item in body["items"]:
                    self.emit(output_records(item, created))
                    handled += len(item["lines"])
            elif mtype == Msg.LOG:
                self.emit([event_record(r, created) for r in body["records"]])
                handled += len(body["records"])
            elif mtype == Msg.BYE:
                self.request_stop("the TaskManager is shutting down")
        if handled:
            self.file.flush()
            self.link.send(Msg.ACK, {"ids": [], "credit": handled}, now)
        if self.sink is not None:
            self.sink.pump(now)
        self.link.tick(now)
        if self.parent is not None and os.getppid() != self.parent:
            self.request_stop("the TaskManager is gone")

    def emit(self, records):
        """``records``: JSON texts, to the file and to cutelog."""
        self.file.write_records(records)
        if self.sink is not None:
            for text in records:
                self.sink.add(text)

    def shutdown(self):
        if self.sink is not None:       # a last chance for what is waiting
            deadline = self.clock() + 1.0
            while (self.sink.backlog or self.sink.pending) and self.clock() < deadline \
                    and self.sink.sock is not None:
                self.sink.pump(self.clock())
                time.sleep(0.01)
            self.sink.close()
        if self.file is not None:
            self.file.close()
        if self.link is not None:
            self.link.close(bye={"reason": "log forwarder stopping"})
