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
from .records import RotatingFile

log = logging.getLogger(__name__)

SWITCH = b"!!cutelog!!format=json"


def output_records(item, created):
    """One JSON record (text) per line of an OUTPUT item (as the TaskManager enriched
    it). The fields all lines share are encoded once: a flood costs little per line."""
    name = logger_name("farm", item.get("machine"), item.get("capability"),
                       item.get("label") or item["id"])
    level = item.get("level") or "INFO"
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
                 context=None, clock=time.monotonic):
        super().__init__()
        self.address = address
        self.cutelog_address = cutelog
        self.records_path = records_path
        self.buffer = buffer
        self.context = context or zmq.Context.instance()
        self.clock = clock
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
