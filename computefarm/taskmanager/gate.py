"""The one port closed to strangers: CurveZMQ keys, their roles, and ZAP.

The TaskManager has a key pair; every machine or user has one too. A peer's
public key is trusted when its certificate lies in the ``authorized`` directory,
where it also says the peer's role. The TaskManager answers ZeroMQ's ZAP
requests itself, in its own loop (``ZapHandler``): a connection with an unknown,
revoked or missing key is refused and logged with its address. Each message
then carries the key that signed its connection (ZeroMQ's User-Id), and
``may_send`` says whether that key's role may send it. Revoking is moving the
certificate out of ``authorized``: the directory is re-read when it changes.

Key files are read by ``wire.certificates``.
"""

import logging
import os
from collections import namedtuple

import zmq
from zmq.utils import z85

from .. import addresses, defaults
from ..exceptions import ConfigError, UsageError
from ..localkeys import local_keys
from ..wire.certificates import KEY_ROLES, ROLE_INCLUDES, load_secret, read_certificate
from ..wire.protocol import Code, Msg

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
DOMAIN = "computefarm"

# What an authorized key grants: its name (the user, for a client), its role,
# and the machine it may speak for (monitor keys always: by default their
# name; worker keys when their certificate says so), else None.
Grant = namedtuple("Grant", "name role machine")


class KeyRing:
    """The authorized public keys and their roles, re-read when the directory changes."""

    def __init__(self, directory):
        self.directory = os.path.expanduser(directory)
        self.keys = {}              # z85 public key -> Grant
        self.extra = {}             # keys authorized in memory (the log forwarder's)
        self.stamp = None
        self.refresh()

    def refresh(self):
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".key"))
            stamp = (os.stat(self.directory).st_mtime_ns, tuple(
                (n, os.stat(os.path.join(self.directory, n)).st_mtime_ns) for n in names))
        except OSError as exc:
            raise ConfigError("%s: cannot read the authorized keys: %s"
                              % (self.directory, exc.strerror)) from None
        if stamp == self.stamp:
            return False
        keys = {}
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                public, _, metadata = read_certificate(path)
            except ConfigError as exc:
                log.warning("TaskManager: ignoring %s", exc)
                continue
            role = metadata.get("role", "")
            if role not in KEY_ROLES:
                log.warning("TaskManager: ignoring %s: role %r is not one of %s", path, role,
                            ", ".join(KEY_ROLES))
                continue
            key_name = metadata.get("name", name[:-4])
            machine = metadata.get("machine") or (
                key_name if role in ("monitor", "machine") else None)
            keys[public] = Grant(key_name, role, machine)
        if self.stamp is not None:
            log.info("TaskManager: authorized keys changed: %d key(s)", len(keys))
        self.keys, self.stamp = keys, stamp
        return True

    def lookup(self, public):
        return self.keys.get(public) or self.extra.get(public)


class ZapHandler:
    """Answers ZeroMQ's authentication requests in the TaskManager's loop."""

    def __init__(self, context, keyring, admits=None):
        self.keyring = keyring
        self.admits = admits        # (public, address, now) -> may an unknown key enrol?
        self.socket = context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(ZAP_ENDPOINT)
        self.refused = 0
        self.last_logged = {}       # address -> when a refusal from it was last logged

    def handle(self, now):
        """Answer every pending request (call when the socket is readable)."""
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 6:
                self.socket.send_multipart([b"1.0", frames[1] if len(frames) > 1 else b"",
                                            b"400", b"malformed ZAP request", b"", b""])
                continue
            version, request_id, _domain, address, _identity, mechanism = frames[:6]
            entry = None
            reason = b"CURVE required"
            if mechanism == b"CURVE" and len(frames) == 7 and len(frames[6]) == 32:
                public = z85.encode(frames[6])
                entry = self.keyring.lookup(public)
                reason = b"unknown or revoked key"
                if entry is None and self.admits is not None and self.admits(
                        public, address.decode("ascii", "replace"), now):
                    entry = "stranger"      # may send ENROL, nothing else (Gate)
            if entry is None:
                self._refused(address.decode("utf-8", "replace"), reason.decode(), now)
                self.socket.send_multipart([version, request_id, b"400", reason, b"", b""])
            else:
                self.socket.send_multipart([version, request_id, b"200", b"OK", public, b""])

    def _refused(self, address, reason, now):
        self.refused += 1
        if now - self.last_logged.get(address, -1e9) >= defaults.REFUSAL_LOG_INTERVAL:
            self.last_logged[address] = now
            log.warning("TaskManager: refused a connection from %s: %s (%d refused so far)",
                        address, reason, self.refused)
            if len(self.last_logged) > 10000:
                self.last_logged.clear()

    def close(self):
        self.socket.close(0)


class Gate:
    """Per message: may the key behind this connection send it, as this peer?

    ``allowed`` maps each peer role to the message types it may send: the
    server's handler tables. An ``admin`` key may say hello as any role and send
    what that role may.
    """

    def __init__(self, keyring, allowed):
        self.keyring = keyring
        self.allowed = dict(allowed)
        for role, includes in ROLE_INCLUDES.items():
            self.allowed[role] = set().union(*(allowed[r] for r in includes))
        self.allowed["admin"] = set().union(*allowed.values())

    def check(self, peer, mtype, body, user):
        """None when allowed; else ``(code, why)`` (the caller refuses the message)."""
        entry = self.keyring.lookup(user) if user else None
        if entry is None:
            if mtype == Msg.ENROL and user:     # a stranger ZAP let in: enrolment decides
                return None
            return Code.KEY_REFUSED, "the key of this connection is not (or no longer) authorized"
        name, role, machine = entry
        if mtype not in self.allowed.get(role, ()):
            return Code.NOT_ALLOWED, "a %s key (%s) may not send %s" % (role, name, mtype.name)
        if mtype == Msg.HELLO and role != "admin":
            if body.get("role") not in ROLE_INCLUDES.get(role, (role,)):
                return Code.ROLE_MISMATCH, "a %s key (%s) may not say hello as a %s" % (
                    role, name, body.get("role"))
            if machine is not None and body.get("machine") != machine:
                return Code.MACHINE_BOUND, "the %s key %s speaks for machine %r only, not " \
                    "%r (farm-keys add --machine)" % (role, name, machine, body.get("machine"))
        if peer is not None and peer.key != user:
            return Code.ID_BOUND, "this routing id belongs to another key"
        return None




def secure_router(sock, bind, keys, insecure, context, allowed, enrolment=None):
    """CURVE and ZAP on the TaskManager's socket when keys are configured, else
    loopback only (or ``insecure``). ``(keyring, zap, gate, server public)``;
    all None without keys. ``enrolment(keyring)`` makes what admits strangers
    (invitations), for a farm whose keys are in a key directory."""
    if keys is None or not keys.server_secret:
        host, _ = addresses.split(bind, "bind", allow_port_zero=True)
        if addresses.is_loopback(host) and not insecure:
            keys = local_keys()        # this user's own: other local users are refused
        elif not insecure:
            sock.close(0)
            raise UsageError(
                "refusing to bind %s without CURVE keys: anyone reaching it could run code "
                "on your workers. Create keys with `farm-keys init` and name them in "
                "farm.yaml (keys:), bind 127.0.0.1, or pass --insecure on a trusted network"
                % bind)
        else:
            for line in ("%s is open without authentication or encryption." % bind,
                         "anyone who can reach it (%s) can run code on every worker of this "
                         "farm, as you." % ("any user of this machine"
                                            if addresses.is_loopback(host) else "anyone"),
                         "use `farm-keys init` instead (docs/security.md)."):
                log.warning("TaskManager: INSECURE: %s", line)
            return None, None, None, None
    public, secret = load_secret(keys.server_secret)
    keyring = KeyRing(keys.authorized)
    enrolling = enrolment(keyring) if enrolment is not None else None
    admits = enrolling.admits if enrolling is not None else None
    zap = ZapHandler(context, keyring, admits)
    sock.curve_server = True
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.zap_domain = DOMAIN.encode()
    log.info("TaskManager: CURVE on, %d authorized key(s) in %s", len(keyring.keys),
             keyring.directory)
    return keyring, zap, Gate(keyring, allowed), public
