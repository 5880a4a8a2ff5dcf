"""The TaskManager: binds the one port and moves tasks between clients and workers.

``loop`` polls the ROUTER, drains what arrived (each message through the gate,
then to its sender's role's handler table), schedules queued tasks onto free
workers, flushes the batched replies, then runs its timers: heartbeats, the
expiry of silent peers, memory hand-back. All state lives in ``state.State``;
what each role may send is its handler table (``self.handlers``), which the
gate also reads.
"""

import logging
import os
import secrets
import time

import zmq

from .. import addresses, defaults, tracing
from ..exceptions import ProtocolError, UsageError
from ..service import Service, write_ready_file
from ..storage.cas import BlobStore, location
from ..wire import protocol
from ..wire.certificates import generated_keys
from ..wire.protocol import Code, Msg
from .actioncache import ActionCache
from .batchdb import BatchDB, database_path
from .batches import BatchBook
from .blobs import BlobService
from .enrolment import Enrolment
from .gate import Grant, secure_router
from .handlers import Handlers, nothing
from .logrouting import LogRouter, start_forwarder, stop_forwarder
from .memory import Memory
from .outbox import Outbox
from .refusals import Refusals
from .speculation import Speculator
from .state import Effects, State

log = logging.getLogger(__name__)


class TaskManager(Handlers, Service):
    name = "TaskManager"

    def __init__(self, config, bind=None, context=None, clock=time.monotonic,
                 ready_file=None, policies=None, default_policy=None, placement="load",
                 logging_config=None, keys=None, insecure=False, users=None):
        super().__init__()
        self.config = config
        self.keys = keys                 # config.KeysConfig, or None: no CURVE
        self.insecure = insecure
        self.keyring = self.zap = self.gate = self.server_public = None
        self.logging_config = logging_config
        self.logs = None
        self.forwarder_key = None        # the key the log forwarder was given (CURVE)
        self.forwarder_started = 0.0
        self.policies = policies
        self.default_policy = default_policy
        self.placement = placement
        self.users = users               # user name -> config.UserPolicy (fair share)
        self.bind = bind or config.bind_address
        self.context = context or zmq.Context.instance()
        self.clock = clock
        self.ready_file = ready_file
        self.incarnation = secrets.token_hex(8)
        self.interval = config.heartbeat_interval
        self.peer_timeout = config.heartbeat_interval * config.heartbeat_liveness
        self.state = None
        self.socket = None
        self.outbox = None
        self.endpoint = None
        self.next_heartbeat = 0.0
        self.refusals = Refusals()
        self.internal_errors = 0         # bugs met handling a message (logged with traceback)
        self.received = 0                # messages taken from the port
        self.memory = None               # memory.Memory: collections and hand-backs
        self.iterations = 0
        self.longest_turn = 0.0          # seconds: the longest loop iteration, by the clock
        self.longest_cpu = 0.0           # ... by the CPU time the loop's thread spent on one:
        #                                  the work itself, whatever else the host runs
        self.longest_phases = {}         # what that iteration spent in each phase (s)
        self.assign_cost = defaults.SCHEDULE_TIME / defaults.SCHEDULE_BUDGET  # s, measured
        self.blobs = None                # blobs.BlobService: the store, over the port
        self.actions = None              # actioncache.ActionCache: results reused
        self.batches = None              # batches.BatchBook: farm-run's durable queue
        self.speculator = None           # speculation.Speculator: clients' stragglers copied
        self.enrolment = None            # enrolment.Enrolment: invitations (keys configured)
        self.reports = {}                # client rid -> (peer, report, when): farm-factory's
        common = {Msg.HELLO: self.on_hello, Msg.HEARTBEAT: nothing, Msg.BYE: self.on_bye}
        files = {Msg.FIND: self.on_find, Msg.PUT: self.on_put, Msg.GET: self.on_get}
        self.handlers = {
            "client": {**common, **files, Msg.SUBMIT: self.on_submit,
                       Msg.CANCEL: self.on_cancel, Msg.STATUS: self.on_status,
                       Msg.LOG: self.on_log, Msg.BATCH: self.on_batch,
                       Msg.QUERY: self.on_query},
            "worker": {**common, **files, Msg.RESULT: self.on_result,
                       Msg.OUTPUT: self.on_output, Msg.SLOTS: self.on_slots},
            "monitor": {**common, Msg.REPORT: self.on_report},
            "logger": {**common, Msg.ACK: self.on_credit},
        }

    # -- lifecycle -------------------------------------------------------------
    def initialize(self):
        now = self.clock()
        self.state = State(self.config.max_attempts,
                           recovery_until=now + self.config.recovery_grace,
                           policies=self.policies, default_policy=self.default_policy,
                           placement=self.placement, users=self.users,
                           half_life=self.config.usage_half_life)
        self.memory = Memory(self.state, now)
        self.speculator = Speculator(self.state, self.config.speculate_after)
        database = BatchDB(database_path(self.config.database, self.bind))
        store = BlobStore(location(self.config.store, defaults.STORE_ENV, defaults.STORE_DIR),
                          self.config.store_size)
        sock = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, defaults.LINGER_MS)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A routing id is bound to its connection while that lives: another
        # connection with the same id is refused (no handover), and ZeroMQ's own
        # heartbeats close a connection whose peer went silent, so the peer's
        # next connection is let in.
        sock.setsockopt(zmq.HEARTBEAT_IVL, int(self.interval * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(self.peer_timeout * 1000))
        sock.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_size)
        sock.setsockopt(zmq.SNDHWM, defaults.SEND_QUEUE)
        sock.setsockopt(zmq.RCVHWM, defaults.RECEIVE_QUEUE)
        sock.setsockopt(zmq.IPV6, addresses.is_ipv6(self.bind))
        allowed = {role: set(table) for role, table in self.handlers.items()}
        self.keyring, self.zap, self.gate, self.server_public = secure_router(
            sock, self.bind, self.keys, self.insecure, self.context, allowed,
            self.start_enrolment)
        try:
            sock.bind(self.bind)
        except zmq.ZMQError as exc:
            sock.close(0)
            database.close()
            raise UsageError("cannot bind %s: %s" % (self.bind, exc.strerror)) from None
        self.socket = sock
        if self.keys is not None and self.keys.server_secret and self.users:
            named = {grant.name for grant in self.keyring.keys.values()}
            for user in sorted(set(self.users) - named):
                log.warning("TaskManager: farm.yaml users.%s: no authorized key is named %s "
                            "(farm-keys list); its settings apply once one is", user, user)
        self.outbox = Outbox(sock, self.undeliverable, self.stalled)
        self.blobs = BlobService(store, self.outbox.send)
        self.actions = ActionCache(os.path.join(store.root, "actions"), store)
        self.batches = BatchBook(database, self.state, self.apply, self.outbox, self.clock,
                                 self.config.max_queued_per_client,
                                 self.config.max_queued_bytes_per_client,
                                 self.config.speculate_after)
        self.batches.restore(now)
        if database.path is not None:
            log.info("TaskManager: batches in %s", database.path)
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self.blobs.writer.wakeup, zmq.POLLIN)   # chunks written
        if self.zap is not None:
            self.poller.register(self.zap.socket, zmq.POLLIN)
        self.next_heartbeat = now + self.interval
        log.info("TaskManager: listening on %s (pid %d)", self.endpoint, os.getpid())
        self.logs = LogRouter(self.state, self.outbox.queue, self.config.max_log_rate)
        if self.logging_config is not None:
            self.start_forwarder(now)
        if self.ready_file:
            write_ready_file(self.ready_file, self.endpoint + "\n")

    def loop(self, now=None):
        timeout = max(0.0, min(defaults.POLL_MAX, self.next_heartbeat - self.clock()))
        if tracing.on:
            tracing.mark("poll")
        events = self.poller.poll(timeout * 1000)
        if tracing.on:
            tracing.mark("wake")
        clock = self.clock
        cpu_started = time.thread_time()
        started = clock()
        now = started if now is None else now
        ready = {item[0] for item in events}
        if self.zap is not None and self.zap.socket in ready:
            self.zap.handle(now)                 # key checks of new connections
        if self.socket in ready:
            self.drain(now, started)
        if self.blobs.writer.done or self.blobs.writer.wakeup in ready:
            self.blobs.completed()               # chunks the writer thread has written
        drained = clock()
        self.batches.refill(now)
        if self.state.dirty or self.state.held:
            self.schedule(now)
        scheduled = clock()
        sent = self.outbox.count
        self.outbox.flush()
        flushed = clock()
        if flushed - scheduled > defaults.SLOW_MESSAGE:
            log.warning("TaskManager: sending %d message(s) took %.0f ms",
                        self.outbox.count - sent, (flushed - scheduled) * 1000)
        if now >= self.next_heartbeat:
            self.tick(now)
        else:
            self.memory.step()                  # of a hand-back under way, if any
        ended = clock()
        self.longest_cpu = max(self.longest_cpu, time.thread_time() - cpu_started)
        self.iterations += 1
        if ended - started > self.longest_turn:
            self.longest_turn = ended - started
            self.longest_phases = {"drain": drained - started, "schedule": scheduled - drained,
                                   "flush": flushed - scheduled, "tick": ended - flushed}

    def shutdown(self):
        if self.socket is None:
            if self.memory is not None:          # it never bound its port
                self.memory.close()
            return
        self.hand_over_logs()
        # A stop is a handover: running tasks go on, and their results reach the
        # TaskManager started next on this port; clients wait for it that long.
        self.outbox.flush()
        self.outbox.send_acks()
        running = sum(len(w.running) for w in self.state.workers.values())
        for rid in list(self.state.peers):
            self.outbox.send(rid, Msg.BYE, {"reason": "the TaskManager is restarting",
                                            "wait": self.config.handover_wait})
        log.info("TaskManager: %d task(s) running go on; clients wait %gs for a restart",
                 running, self.config.handover_wait)
        self.socket.close(linger=defaults.LINGER_MS)
        self.socket = None
        if self.zap is not None:
            self.zap.close()
        if self.logs.forwarder is not None:
            stop_forwarder(self.logs.forwarder)
        self.memory.close()
        self.blobs.close()
        self.batches.close()
        log.info("TaskManager: stopped")

    def start_forwarder(self, now):
        """Start the log forwarder, with a key of its own known only here."""
        curve = None
        if self.gate is not None:
            self.keyring.extra.pop(self.forwarder_key, None)   # a dead one's key goes
            public, secret = generated_keys()
            self.keyring.extra[public] = Grant("log forwarder", "logger", None)
            self.forwarder_key = public
            curve = (public, secret, self.server_public)
        self.logs.forwarder = start_forwarder(self.endpoint, self.logging_config, curve)
        self.forwarder_started = now

    def watch_forwarder(self, now):
        """A forwarder that died is started again (not more often than every
        ``FORWARDER_RESTART`` seconds), and its end is said in the log it feeds."""
        proc = self.logs.forwarder
        if proc is None or proc.poll() is None or \
                now - self.forwarder_started < defaults.FORWARDER_RESTART:
            return
        log.warning("TaskManager: the log forwarder (pid %d) ended with code %s: starting "
                    "another", proc.pid, proc.returncode)
        self.logs.send(Msg.LOG, {
            "logger": "farm.taskmanager", "level": "WARNING",
            "msg": "the log forwarder (pid %d) ended with code %s; records sent to it "
                   "meanwhile may be missing" % (proc.pid, proc.returncode)})
        self.start_forwarder(now)

    def hand_over_logs(self, patience=defaults.LOG_HANDOVER):
        """Before stopping: let a forwarder that is still starting connect and take
        the records kept for it, so a short run's log is not lost."""
        deadline = self.clock() + patience
        if self.logs.waiting():
            log.info("TaskManager: waiting up to %gs for the log forwarder, still starting, "
                     "to take %d record(s)", patience, len(self.logs.backlog))
        while self.logs.waiting() and self.clock() < deadline:
            if self.poller.poll(20):
                if self.zap is not None:       # its handshake needs the key check
                    self.zap.handle(self.clock())
                self.drain(self.clock(), self.clock())
            self.outbox.flush()
        self.outbox.flush()

    def schedule(self, now):
        """Assign what fits in ``SCHEDULE_TIME`` at the cost assignments have had."""
        started = self.clock()
        effects = Effects()
        made = self.state.schedule(now, effects,
                                   budget=int(defaults.SCHEDULE_TIME / self.assign_cost))
        self.batches.render(effects.dispatch)
        self.outbox.apply(effects)
        if made >= 50:
            cost = (self.clock() - started) / made
            self.assign_cost = 0.7 * self.assign_cost + 0.3 * max(cost, 1e-7)

    def apply(self, change, *args, **options):
        """Run a state change that produces Effects, and queue what it calls for."""
        effects = Effects()
        change(*args, effects, **options)
        self.outbox.apply(effects)

    # -- receiving -------------------------------------------------------------
    def drain(self, now, started):
        """Handle what arrived, up to a count and a time budget per iteration."""
        deadline = started + defaults.DRAIN_TIME
        for _ in range(defaults.DRAIN_BUDGET):
            begun = self.clock()
            if begun > deadline:
                return
            taken = self.take(now)
            if taken is None:
                return
            spent = self.clock() - begun
            if spent > defaults.SLOW_MESSAGE:
                log.warning("TaskManager: a %s from peer %s took %.0f ms to take in",
                            taken[0], taken[1].hex(), spent * 1000)

    def take(self, now):
        """Receive, check and handle one message: ``(type name, sender)``, or None
        when nothing is waiting."""
        try:
            sender, mtype, body, user = protocol.recv_router(self.socket, self.gate is not None)
        except zmq.Again:
            return None
        except protocol.BadMessage as exc:
            self.refuse(exc.sender, exc.code, str(exc), now)
            return "bad message", exc.sender
        self.received += 1
        peer = self.state.peers.get(sender)
        if self.gate is not None:
            refusal = self.gate.check(peer, mtype, body, user)
            if refusal is not None:
                self.refuse(sender, refusal[0], "%s refused: %s" % (mtype.name, refusal[1]), now)
                if refusal[0] == Code.KEY_REFUSED and peer is not None:
                    self.evict(peer, "its key was revoked")
                elif refusal[0] == Code.ID_BOUND:   # its connection is gone: not its peer's
                    self.evict(peer, "another key connected with its routing id")
                return mtype.name, sender
        try:
            self.handle(peer, sender, mtype, body, user, now)
        except ProtocolError as exc:
            self.refuse(sender, exc.code, "%s: %s" % (mtype.name, exc), now)
        except Exception:            # a bug: say so loudly, and keep serving the others
            self.internal_errors += 1
            log.exception("TaskManager: internal error handling %s from peer %s",
                          mtype.name, sender.hex())
            self.refuse(sender, Code.INTERNAL, "%s: internal error in the TaskManager"
                        % mtype.name, now)
        return mtype.name, sender

    def handle(self, peer, sender, mtype, body, user, now):
        if mtype == Msg.ENROL:
            self.on_enrol(sender, body, user, now)
            return
        if peer is None:
            if mtype == Msg.HELLO:
                self.on_hello(None, body, now, sender, user)
            elif mtype != Msg.BYE and self.refusals.may_answer(sender, now):
                self.outbox.send(sender, Msg.RECONNECT, {"reason": "unknown peer, say hello"})
            return
        self.state.seen(peer, now)
        handler = self.handlers[peer.role].get(mtype)
        if handler is None:
            raise ProtocolError("a %s may not send %s" % (peer.role, mtype.name),
                                Code.NOT_ALLOWED)
        handler(peer, body, now)

    def evict(self, peer, why):
        """Forget a peer whose key was revoked, or whose connection another key's
        replaced: its tasks go back to the queue."""
        log.warning("TaskManager: %s dropped: %s", peer.describe(), why)
        self.apply(self.state.remove_peer, peer, why, requeue_only=True)

    def start_enrolment(self, keyring):
        if self.keys is None or not self.keys.authorized:
            return None            # the user's local key set: nobody else may join
        self.enrolment = Enrolment(keyring, self.keys.invitations_dir())
        return self.enrolment

    # -- sending ---------------------------------------------------------------
    def undeliverable(self, rid, items):
        worker = self.state.workers.get(rid)
        if worker is not None:
            self.state.undeliverable(worker, [item["id"] for item in items], self.clock())

    def refuse(self, sender, code, text, now):
        """Count a refused message; answer and log it while the sender's rate allows."""
        if self.refusals.allow(sender, now):
            log.warning("TaskManager: dropped a message from peer %s: %s", sender.hex(), text)
            self.outbox.send(sender, Msg.ERROR, protocol.error(code, text))

    def stalled(self, rid):
        """A peer whose send queue is full does not read: forget it (its tasks go
        back to the queue); it may say hello again once it reads."""
        peer = self.state.peers.get(rid)
        if peer is not None:
            log.warning("TaskManager: %s dropped: it does not read what it is sent "
                        "(%d messages queued)", peer.describe(), defaults.SEND_QUEUE)
            self.apply(self.state.remove_peer, peer, "it stopped reading")

    # -- timers ----------------------------------------------------------------
    def tick(self, now):
        self.memory.tick(now)
        self.logs.tidy()
        self.watch_forwarder(now)
        self.refusals.tidy(now)
        self.blobs.tidy(self.state.peers)
        self.batches.tick(now)
        if self.state.speculating:
            self.apply(self.speculator.check, now)
        self.speculator.forget(self.state.clients)
        if self.keyring is not None:
            self.keyring.refresh()              # revocations take effect here
        self.next_heartbeat = now + self.interval / 2
        self.apply(self.state.expire, now, self.peer_timeout)
        for worker in self.state.workers.values():
            if worker.shared:
                self.tell_demand(worker)
        self.outbox.flush()
        self.outbox.heartbeat(self.state.peers)
