"""The TaskManager: binds the one port and moves tasks between clients and workers.

Its loop (``loop``) polls the ROUTER, drains what arrived into the handler for the
kind of sender (client, worker, or a stranger saying hello), schedules queued
tasks onto free workers, flushes the batched replies, then runs its timers:
heartbeats and the expiry of silent peers. All state lives in ``state.State``.
"""

import ctypes
import ctypes.util
import gc
import logging
import os
import secrets
import time

import zmq

from .. import defaults
from ..exceptions import ProtocolError, UsageError
from ..service import Service
from ..wire import protocol
from ..wire.certificates import generated_keys
from ..wire.protocol import Msg
from .gate import secure_router
from .logrouting import LogRouter, start_forwarder, stop_forwarder
from .state import Effects, State

log = logging.getLogger(__name__)

DRAIN_BUDGET = 2000          # messages handled per iteration before replies are flushed
HIGH_WATER_MARK = 100000     # messages queued per peer before ZeroMQ pushes back
RECLAIM_AFTER = 10000        # tasks held at a peak before memory is handed back after it
LOG_HANDOVER = 5.0           # seconds a stopping TaskManager waits for a late forwarder


def _find_malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):   # not glibc: freed memory stays with the process
        return None


_malloc_trim = _find_malloc_trim()

# The list each batched message carries its items in.
_BATCH_FIELD = {Msg.DISPATCH: "tasks", Msg.CANCEL: "ids", Msg.RESULT: "results",
                Msg.OUTPUT: "items", Msg.ACK: "ids", Msg.STARTED: "items",
                Msg.SUSPEND: "ids", Msg.RESUME: "ids", Msg.LOG: "records"}


class TaskManager(Service):
    name = "TaskManager"

    def __init__(self, config, bind=None, context=None, clock=time.monotonic,
                 ready_file=None, policies=None, default_policy=None, placement="load",
                 logging_config=None, keys=None, insecure=False):
        super().__init__()
        self.config = config
        self.keys = keys                 # config.KeysConfig, or None: no CURVE
        self.insecure = insecure
        self.keyring = self.zap = self.gate = self.server_public = None
        self.logging_config = logging_config
        self.logs = None
        self.policies = policies
        self.default_policy = default_policy
        self.placement = placement
        self.bind = bind or config.bind_address
        self.context = context or zmq.Context.instance()
        self.clock = clock
        self.ready_file = ready_file
        self.incarnation = secrets.token_hex(8)
        self.interval = config.heartbeat_interval
        self.peer_timeout = config.heartbeat_interval * config.heartbeat_liveness
        self.state = None
        self.socket = None
        self.endpoint = None
        self.outgoing = {}           # (routing id, Msg) -> list of batched items
        self.next_heartbeat = 0.0
        self.bad_messages = 0
        self.peak_tasks = 0

    # -- lifecycle -------------------------------------------------------------
    def initialize(self):
        now = self.clock()
        self.state = State(self.config.max_attempts,
                           recovery_until=now + self.config.recovery_grace,
                           policies=self.policies, default_policy=self.default_policy,
                           placement=self.placement)
        sock = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_size)
        sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        self.keyring, self.zap, self.gate, self.server_public = secure_router(
            sock, self.bind, self.keys, self.insecure, self.context)
        try:
            sock.bind(self.bind)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise UsageError("cannot bind %s: %s" % (self.bind, exc.strerror)) from None
        self.socket = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        if self.zap is not None:
            self.poller.register(self.zap.socket, zmq.POLLIN)
        self.next_heartbeat = now + self.interval
        log.info("TaskManager: listening on %s (pid %d)", self.endpoint, os.getpid())
        self.logs = LogRouter(self.state, self.queue, self.config.max_log_rate)
        if self.logging_config is not None:
            curve = None
            if self.gate is not None:   # the forwarder gets a key of its own, known only here
                public, secret = generated_keys()
                self.keyring.extra[public] = ("log forwarder", "logger")
                curve = (public, secret, self.server_public)
            self.logs.forwarder = start_forwarder(self.endpoint, self.logging_config, curve)
        if self.ready_file:
            tmp = self.ready_file + ".tmp"
            with open(tmp, "w") as stream:
                stream.write(self.endpoint + "\n")
            os.replace(tmp, self.ready_file)

    def hand_over_logs(self, patience=LOG_HANDOVER):
        """Before stopping: let a forwarder that is still starting connect and take
        the records kept for it, so a short run's log is not lost."""
        deadline = self.clock() + patience
        while self.logs.waiting() and self.clock() < deadline:
            if self.poller.poll(20):
                self.drain(self.clock())
            self.flush()
        self.flush()

    def loop(self, now=None):
        timeout = max(0.0, min(defaults.POLL_MAX, self.next_heartbeat - self.clock()))
        events = self.poller.poll(timeout * 1000)
        now = self.clock() if now is None else now
        if events:
            if self.zap is not None:
                self.zap.handle(now)
            self.drain(now)
        if self.state.dirty or self.state.held:
            effects = Effects()
            self.state.schedule(now, effects)
            self.apply(effects)
        self.flush()
        if now >= self.next_heartbeat:
            self.tick(now)

    def shutdown(self):
        if self.socket is None:
            return
        self.hand_over_logs()
        effects = Effects()
        for worker in list(self.state.workers.values()):
            for task_id in list(worker.running):
                effects.cancel.append((worker, task_id))
        self.apply(effects)
        self.flush()
        for rid in self.peers():
            self.send(rid, Msg.BYE, {"reason": "TaskManager shutting down"})
        self.socket.close(linger=1000)
        self.socket = None
        if self.zap is not None:
            self.zap.close()
        if self.logs.forwarder is not None:
            stop_forwarder(self.logs.forwarder)
        log.info("TaskManager: stopped")

    # -- receiving -------------------------------------------------------------
    def drain(self, now):
        for _ in range(DRAIN_BUDGET):
            try:
                sender, mtype, body, user = protocol.recv_router(self.socket,
                                                                 self.gate is not None)
            except zmq.Again:
                return
            except protocol.BadMessage as exc:
                self.refuse(exc.sender, str(exc))
                continue
            if self.gate is not None:
                why = self.gate.check(sender, mtype, body, user)
                if why is not None:
                    self.refuse(sender, "%s refused: %s" % (mtype.name, why))
                    if why.startswith("the key"):
                        self.evict(sender, now)
                    continue
            try:
                self.dispatch_message(sender, mtype, body, now)
            except ProtocolError as exc:
                self.refuse(sender, "%s: %s" % (mtype.name, exc))

    def evict(self, sender, now):
        """Forget a peer whose key was revoked: its tasks go back to the queue."""
        effects = Effects()
        worker = self.state.workers.get(sender)
        if worker is not None:
            self.state.remove_worker(worker, "its key was revoked", effects, requeue_only=True)
        client = self.state.clients.get(sender)
        if client is not None:
            self.state.remove_client(client, effects)
        self.state.monitors.pop(sender, None)
        self.gate.forget(sender)
        self.apply(effects)

    def dispatch_message(self, sender, mtype, body, now):
        worker = self.state.workers.get(sender)
        if worker is not None:
            worker.last_seen = now
            return self.process_worker(worker, mtype, body, now)
        client = self.state.clients.get(sender)
        if client is not None:
            client.last_seen = now
            return self.process_client(client, mtype, body, now)
        monitor = self.state.monitors.get(sender)
        if monitor is not None:
            monitor.last_seen = now
            return self.process_monitor(monitor, mtype, body, now)
        entry = self.state.loggers.get(sender)
        if entry is not None:
            entry[0] = now
            if mtype == Msg.ACK:                 # the forwarder has room for more
                self.logs.credit(entry, body.get("credit", 0))
            elif mtype == Msg.BYE:
                del self.state.loggers[sender]
            elif mtype == Msg.HELLO:             # it reconnected: welcome it again
                return self.process_stranger(sender, mtype, body, now)
            elif mtype != Msg.HEARTBEAT:
                raise ProtocolError("a log forwarder may not send %s" % mtype.name)
            return None
        return self.process_stranger(sender, mtype, body, now)

    def process_stranger(self, sender, mtype, body, now):
        if mtype != Msg.HELLO:
            if mtype != Msg.BYE:
                self.send(sender, Msg.RECONNECT, {"reason": "unknown peer, say hello"})
            return
        role = body["role"]
        if role == "worker":
            caps = body.get("capabilities") or {}
            for name, attrs in caps.items():
                protocol.check_str_map(attrs, "HELLO.capabilities[%r]" % name)
            effects = Effects()
            worker = self.state.add_worker(sender, body, now, effects)
            log.info("TaskManager: %s registered: %s, %d slot(s)", worker.describe(),
                     ", ".join(sorted(caps)) or "no capabilities", worker.slots)
            self.apply(effects)
        elif role == "client":
            self.state.add_client(sender, body, now)
            log.info("TaskManager: client %s on %s connected", body["id"], body["host"])
        elif role == "logger":
            self.logs.connected(sender, now)
            log.info("TaskManager: log forwarder connected (pid %s)", body.get("pid"))
        elif role == "monitor":
            self.state.add_monitor(sender, body, now)
            log.info("TaskManager: monitor of machine %s on %s connected", body["machine"],
                     body["host"])
        else:
            raise ProtocolError("role %r is not one of %s" % (role, ", ".join(protocol.ROLES)))
        self.send(sender, Msg.WELCOME, {"incarnation": self.incarnation,
                                        "heartbeat": self.interval,
                                        "liveness": self.config.heartbeat_liveness})

    def process_client(self, client, mtype, body, now):
        if mtype == Msg.SUBMIT:
            self.submit(client, body["tasks"], now)
        elif mtype == Msg.CANCEL:
            effects = Effects()
            self.state.cancel(client, protocol.check_str_list(body["ids"], "CANCEL.ids"),
                              effects)
            self.apply(effects)
        elif mtype == Msg.BYE:
            effects = Effects()
            self.state.remove_client(client, effects)
            self.apply(effects)
            log.info("TaskManager: client %s on %s left", client.name, client.host)
        elif mtype == Msg.STATUS:
            status = self.state.snapshot(now)
            status["logs"] = {"forwarders": len(self.state.loggers),
                              "dropped_lines": self.logs.dropped}
            status["refused_messages"] = self.bad_messages
            self.send(client.rid, Msg.STATE, {"status": status})
        elif mtype == Msg.LOG:
            for record in body["records"]:
                fields = record.setdefault("fields", {})
                fields["client_host"] = client.host
                self.logs.send(Msg.LOG, record)
        elif mtype == Msg.HELLO:
            self.process_stranger(client.rid, mtype, body, now)
        elif mtype != Msg.HEARTBEAT:
            raise ProtocolError("a client may not send %s" % mtype.name)

    def process_monitor(self, monitor, mtype, body, now):
        if mtype == Msg.REPORT:
            if body["machine"] != monitor.machine:
                raise ProtocolError("REPORT for machine %r from the monitor of %r"
                                    % (body["machine"], monitor.machine))
            effects = Effects()
            self.state.report(monitor, body, now, effects)
            self.apply(effects)
        elif mtype == Msg.BYE:
            self.state.monitors.pop(monitor.rid, None)
        elif mtype == Msg.HELLO:
            self.process_stranger(monitor.rid, mtype, body, now)
        elif mtype != Msg.HEARTBEAT:
            raise ProtocolError("a monitor may not send %s" % mtype.name)

    def submit(self, client, specs, now):
        effects = Effects()
        waiting = {}
        limit = self.config.max_queued_per_client
        for spec in specs:
            requires = spec.get("requires")
            if requires:
                protocol.check_str_map(requires, "SUBMIT.tasks[].requires")
            if len(client.tasks) >= limit and spec["id"] not in self.state.tasks:
                effects.results.append((client, {
                    "id": spec["id"], "attempt": 0, "status": "error", "exit_code": None,
                    "error": "refused: this client already has %d task(s) queued or running "
                             "(taskmanager.max_queued_per_client)" % limit}))
                continue
            if self.state.submit(client, spec, now, effects) is None:
                continue
            key = (spec["capability"], tuple(sorted((requires or {}).items())))
            if key not in waiting:
                waiting[key] = [self.state.unmatched(spec["capability"], requires), []]
            if waiting[key][0]:
                waiting[key][1].append(spec["id"])
        for key, (reason, ids) in waiting.items():
            if reason and client.told.get(key) != reason:  # once per reason
                client.told[key] = reason
                effects.notices.append((client, "warning", "%d task(s) wait: %s"
                                        % (len(ids), reason), ids))
            elif not reason:
                client.told.pop(key, None)
        self.apply(effects)

    def process_worker(self, worker, mtype, body, now):
        if mtype == Msg.RESULT:
            for result in body["results"]:      # check all before changing anything
                if result["status"] not in protocol.STATUSES:
                    raise ProtocolError("RESULT status %r unknown" % result["status"])
            effects = Effects()
            acked = []
            for result in body["results"]:
                if result["status"] != "ok" and self.logs.active:
                    self.logs.result(worker, result)
                if self.state.finish(worker, result, now, effects):
                    acked.append(result["id"])
            self.apply(effects)
            self.queue(worker.rid, Msg.ACK, acked)
        elif mtype == Msg.OUTPUT:
            self.forward_output(worker, body["items"], now)
        elif mtype == Msg.BYE:
            effects = Effects()
            self.state.remove_worker(worker, "left", effects, requeue_only=True)
            self.apply(effects)
            log.info("TaskManager: %s left: %s", worker.describe(), body.get("reason", ""))
        elif mtype == Msg.HELLO:
            self.process_stranger(worker.rid, mtype, body, now)
        elif mtype != Msg.HEARTBEAT:
            raise ProtocolError("a worker may not send %s" % mtype.name)

    def forward_output(self, worker, items, now):
        for item in items:
            client = self.state.output_for(item)
            if client is not None:
                self.queue(client.rid, Msg.OUTPUT, item)
            if self.logs.active:
                self.logs.output(worker, item, now)

    # -- sending ---------------------------------------------------------------
    def apply(self, effects):
        for worker, task in effects.dispatch:
            self.queue(worker.rid, Msg.DISPATCH, {
                "id": task.id, "attempt": task.attempt, "capability": task.capability,
                "body": task.body, "timeout": task.timeout})
            if task.track and task.client is not None:
                self.queue(task.client.rid, Msg.STARTED, {
                    "id": task.id, "attempt": task.attempt, "host": worker.host,
                    "worker": worker.name, "machine": worker.machine})
        for worker, task_id in effects.cancel:
            self.queue(worker.rid, Msg.CANCEL, task_id)
        for worker, task_id in effects.suspend:
            self.queue(worker.rid, Msg.SUSPEND, task_id)
        for worker, task_id in effects.resume:
            self.queue(worker.rid, Msg.RESUME, task_id)
        for client, result in effects.results:
            self.queue(client.rid, Msg.RESULT, result)
        for client, level, text, ids in effects.notices:
            self.send(client.rid, Msg.NOTICE, {"level": level, "text": text, "ids": ids})

    def queue(self, rid, mtype, item):
        items = self.outgoing.get((rid, mtype))
        if items is None:
            self.outgoing[(rid, mtype)] = items = []
        if isinstance(item, list):
            items.extend(item)
        else:
            items.append(item)

    def flush(self):
        outgoing, self.outgoing = self.outgoing, {}
        for (rid, mtype), items in outgoing.items():
            if not items or self.send(rid, mtype, {_BATCH_FIELD[mtype]: items}):
                continue
            if mtype == Msg.DISPATCH:
                self.undeliverable(rid, items)

    def send(self, rid, mtype, body):
        try:
            protocol.send(self.socket, mtype, body, to=rid)
            return True
        except zmq.ZMQError as exc:  # peer gone (EHOSTUNREACH) or its queue is full
            log.debug("TaskManager: cannot send %s: %s", mtype.name, exc)
            return False

    def undeliverable(self, rid, items):
        worker = self.state.workers.get(rid)
        for item in items:
            task = self.state.tasks.get(item["id"])
            if task is not None and worker is not None and task.worker is worker:
                self.state.requeue(task)

    def refuse(self, sender, text):
        self.bad_messages += 1
        peer = sender.hex() if isinstance(sender, bytes) else sender
        log.warning("TaskManager: dropped a message from peer %s: %s", peer, text)
        if sender is not None:
            self.send(sender, Msg.ERROR, {"text": text})

    # -- timers ----------------------------------------------------------------
    def reclaim_memory(self):
        """After a large queue drained, hand the memory it used back to the system.

        Python keeps freed memory in its own pools and glibc in its heap; a
        TaskManager that once held 100,000 tasks would otherwise stay that size.
        """
        size = len(self.state.tasks)
        self.peak_tasks = max(self.peak_tasks, size)
        if self.peak_tasks < RECLAIM_AFTER or size > self.peak_tasks // 8:
            return
        self.peak_tasks = size
        self.state.compact()
        gc.collect()
        if _malloc_trim is not None:
            _malloc_trim(0)

    def tick(self, now):
        self.reclaim_memory()
        if self.keyring is not None:
            self.keyring.refresh()              # revocations take effect here
        self.next_heartbeat = now + self.interval
        effects = Effects()
        self.state.expire(now, self.peer_timeout, effects)
        self.apply(effects)
        self.flush()
        for rid in self.peers():
            self.send(rid, Msg.HEARTBEAT, {})

    def peers(self):
        return list(self.state.workers) + list(self.state.clients) + \
            list(self.state.monitors) + list(self.state.loggers)
