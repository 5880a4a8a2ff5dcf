"""A peer's link to the TaskManager: DEALER, hello, heartbeats, reconnection.

Workers, clients and monitors all talk to the TaskManager through a ``Link``.
It says hello on every (re)connection, answers the TaskManager's heartbeats,
notices when the TaskManager has been silent for ``interval * liveness``, and
then reconnects on a fresh socket after a back-off that doubles up to a cap.
``reopen`` is safe to call again and again.
"""

import logging
import os
import secrets
import socket as _socket

import zmq

from .. import addresses, defaults, localkeys
from ..exceptions import ProtocolError
from . import protocol
from .protocol import Code, Msg

log = logging.getLogger(__name__)

HANDSHAKES = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH |
              zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
# ERROR codes that mean this peer's key will not be let in: nothing to retry.
REFUSING = (Code.KEY_REFUSED, Code.ROLE_MISMATCH, Code.MACHINE_BOUND)


def peer_id(role):
    """A name for this process, for people and for its HELLO (not its routing id)."""
    return "%s-%s-%d-%s" % (role, _socket.gethostname(), os.getpid(), secrets.token_hex(3))


def routing_id():
    """A routing id that nobody else can guess or learn: 128 random bits, kept
    across reconnections (the TaskManager never shows it to anyone), so another
    key cannot take this peer's place on the ROUTER and receive its messages."""
    return secrets.token_hex(16).encode()


class Link:
    """One DEALER connection to the TaskManager at ``address``.

    ``hello`` is a callable returning the HELLO body, so it can say what the peer
    is doing right now. ``on_welcome(restarted)`` is called after every WELCOME;
    ``restarted`` is True when the TaskManager is a new incarnation.
    """

    def __init__(self, context, address, role, hello, on_welcome, poller, now,
                 identity=None, interval=defaults.HEARTBEAT_INTERVAL,
                 liveness=defaults.HEARTBEAT_LIVENESS, curve=None):
        self.context = context
        self.address = address
        self.role = role
        self.identity = identity or peer_id(role)
        self.routing_id = routing_id()
        self.hello = hello
        self.on_welcome = on_welcome
        self.poller = poller
        self.curve = curve              # (public, secret, server public) z85 keys; None: the
        #                                 user's local set on loopback (localkeys); False: none
        self.interval = interval
        self.liveness = liveness
        self.max_message = defaults.MAX_MESSAGE_SIZE   # the TaskManager's, once welcomed
        self.socket = None
        self.monitor = None          # the socket's handshake events
        self.watched = None          # when they were last read
        self.refused = None          # why the TaskManager will not let this key in, once known
        self.failed_handshakes = 0
        self.local_keys = False      # the keys are this user's local set (none configured)
        self.ready = False           # welcomed by the current TaskManager
        self.incarnation = None
        self.backoff = defaults.RECONNECT_INITIAL
        self.reopen_at = None
        self.last_recv = now
        self.last_send = now
        self.open(now)

    def open(self, now):
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self.routing_id)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, defaults.HIGH_WATER_MARK)
        sock.setsockopt(zmq.RCVHWM, defaults.HIGH_WATER_MARK)
        sock.setsockopt(zmq.RECONNECT_IVL, 20)   # doubles up to the cap below
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, int(defaults.RECONNECT_MAX * 1000))
        sock.setsockopt(zmq.IPV6, addresses.is_ipv6(self.address))
        if self.curve is None:        # a farm without keys on loopback: this user's own
            self.curve = localkeys.peer_curve(self.address) or False
            self.local_keys = bool(self.curve)
        if self.curve:
            sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = self.curve
        self.monitor = sock.get_monitor_socket(HANDSHAKES)
        sock.connect(self.address)
        self.socket = sock
        self.poller.register(sock, zmq.POLLIN)
        self.ready = False
        self.reopen_at = None
        self.last_recv = now
        self.say_hello(now)

    def say_hello(self, now):
        self.ready = False
        self._send(Msg.HELLO, self.hello(), now)

    def close(self, bye=None):
        if self.socket is None:
            return
        if bye is not None and self.ready:
            self.socket.setsockopt(zmq.LINGER, defaults.LINGER_MS)
            self._send(Msg.BYE, bye, 0.0)
        self.poller.unregister(self.socket)
        self.socket.disable_monitor()
        self.monitor.close(0)
        self.monitor = None
        self.socket.close()
        self.socket = None
        self.ready = False

    def send(self, mtype, body, now):
        """Send if welcomed; False when the message could not be sent now."""
        return self.ready and self._send(mtype, body, now)

    def send_batched(self, mtype, items, now, weigh=None):
        """Send ``items`` (of a batched type) in as many messages as the wire's size
        limits need (``protocol.batches``); how many of them went (the rest could
        not be sent now)."""
        sent = 0
        for body in protocol.batches(mtype, items, weigh):
            if not self.send(mtype, body, now):
                break
            sent += len(body[protocol.BATCH_FIELD[mtype]])
        return sent

    def _send(self, mtype, body, now):
        try:
            protocol.send(self.socket, mtype, body)
        except zmq.Again:
            return False
        self.last_send = now
        return True

    def receive(self, now):
        """Messages that arrived, after this link has handled its own (list of pairs)."""
        messages = []
        while self.socket is not None:
            try:
                mtype, body = protocol.recv_dealer(self.socket)
            except zmq.Again:
                break
            except ProtocolError as exc:
                log.warning("%s: dropped a bad message from the TaskManager: %s",
                            self.identity, exc)
                continue
            self.last_recv = now
            if mtype == Msg.ERROR and body.get("code") in REFUSING:
                self.refused = body["text"]
            if mtype == Msg.BYE:         # it stops (or restarts): try again at once
                log.info("%s: the TaskManager said goodbye: %s", self.identity,
                         body.get("reason", ""))
                self.close()
                self.reopen_at = now + defaults.RECONNECT_INITIAL
                messages.append((mtype, body))
                break
            if mtype == Msg.WELCOME:
                self._welcomed(body)
            elif mtype == Msg.RECONNECT:
                log.info("%s: the TaskManager asks for a new hello", self.identity)
                self.say_hello(now)
            elif mtype != Msg.HEARTBEAT:
                messages.append((mtype, body))
        return messages

    def _welcomed(self, body):
        if self.ready and body["incarnation"] == self.incarnation:
            return      # one more answer to HELLOs repeated while it was away: welcomed once
        restarted = self.incarnation is not None and body["incarnation"] != self.incarnation
        if self.incarnation is None or restarted or not self.ready:
            log.info("%s: %s TaskManager at %s", self.identity,
                     "reconnected to a restarted" if restarted else "connected to the",
                     self.address)
        self.incarnation = body["incarnation"]
        self.interval = float(body["heartbeat"])
        self.liveness = int(body["liveness"])
        self.max_message = body.get("max_message", defaults.MAX_MESSAGE_SIZE)
        self.ready = True
        self.backoff = defaults.RECONNECT_INITIAL
        self.on_welcome(restarted)

    def watch_handshakes(self, now=None):
        """Read the socket's handshake events: a refusal that retrying cannot cure
        sets ``refused`` (the service then stops with one ERROR line). Once
        welcomed, at most every ``HANDSHAKE_WATCH`` seconds (a poll of its own
        each loop turn would cost a busy worker a system call a task)."""
        if now is not None and self.ready and self.watched is not None \
                and now - self.watched < defaults.HANDSHAKE_WATCH:
            return
        self.watched = now
        while self.monitor is not None and self.monitor.poll(0):
            event = protocol.recv_monitor_event(self.monitor, zmq.NOBLOCK)
            kind, value = event["event"], event["value"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.failed_handshakes = 0
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self.refused = ("the TaskManager at %s refused this key (ZAP status %d): it is "
                                "not authorized there, or was revoked" % (self.address, value))
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and \
                    value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                self.refused = (
                    "the TaskManager at %s refused the connection: it requires keys and "
                    "this process has none (farm.yaml keys: server and secret)" % self.address
                    if not self.curve else
                    "the TaskManager at %s refused the connection: it uses no keys and this "
                    "process has some" % self.address)
            else:
                self.failed_handshakes += 1
                if self.failed_handshakes >= defaults.HANDSHAKE_FAILURES:
                    self.refused = ((
                        "no handshake with %s after %d tries: it is not a TaskManager, or it "
                        "requires keys and this process has none (farm.yaml keys: server and "
                        "secret)" if not self.curve else
                        "no secure handshake with %s after %d tries: it is not a TaskManager "
                        "of this user's without keys, and this process has none of its own "
                        "(farm.yaml keys: server and secret)" if self.local_keys else
                        "no secure handshake with %s after %d tries: is it a TaskManager, "
                        "and keys.server its public key?") % (self.address,
                                                             self.failed_handshakes))

    def tick(self, now):
        """Heartbeat, notice a silent TaskManager, reconnect when it is time."""
        self.watch_handshakes(now)
        if self.socket is None:
            if self.reopen_at is not None and now >= self.reopen_at:
                self.open(now)
            return
        if now - self.last_recv > self.interval * self.liveness:
            log.warning("%s: no word from the TaskManager at %s for %.1fs, reconnecting in %.1fs",
                        self.identity, self.address, now - self.last_recv, self.backoff)
            self.close()
            self.reopen_at = now + self.backoff
            self.backoff = min(self.backoff * 2, defaults.RECONNECT_MAX)
        elif now - self.last_send >= self.interval:
            self._send(Msg.HEARTBEAT if self.ready else Msg.HELLO,
                       {} if self.ready else self.hello(), now)
