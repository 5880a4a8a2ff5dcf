"""Invitations: a new machine joins the farm with one line, and no key is copied.

``farm-keys invite`` writes an invitation into the key directory
(``invitations/ID.json``) and prints a *token*: the TaskManager's address, its
public key and a random secret, in one shell-safe line. Only the secret's sha256
is kept; ``ID`` is the first 16 hex digits of it, so the secret is looked up by
its own digest and never stored or logged. The TaskManager consumes invitations
(``use``) when a new machine enrols with the token (taskmanager/enrolment.py);
``farm-keys`` creates, lists and revokes them. Every write is a whole new file
renamed over the old one, so both sides may work on the directory at once.

Times in an invitation are wall-clock seconds (``time.time()``): an invitation
outlives the processes that made and use it.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time

from .exceptions import ConfigError, UsageError

TOKEN_PREFIX = "cfjoin1-"
SECRET_BYTES = 32
ID_DIGITS = 16
# The roles an invitation may grant: a whole machine (its workers and its
# monitor), a worker only (a dedicated node, a pilot), or a user.
INVITE_ROLES = ("machine", "worker", "client")


def make_token(address, server_public, secret):
    """The one line ``farm-join`` takes."""
    text = json.dumps({"a": address, "k": _text(server_public), "s": secret},
                      separators=(",", ":"))
    return TOKEN_PREFIX + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_token(token):
    """``(address, server public key as z85 bytes, secret)``; UsageError when the
    line is not a token (cut short when copied, say)."""
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX):
        raise UsageError("this is not a ComputeFarm invitation (it should start with %r: "
                         "copy the whole line farm-keys invite printed)" % TOKEN_PREFIX)
    payload = token[len(TOKEN_PREFIX):]
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        address, public, secret = fields["a"], fields["k"].encode(), fields["s"]
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise UsageError("the invitation is damaged (cut short or mistyped): copy the whole "
                         "line farm-keys invite printed") from None
    if not (isinstance(address, str) and len(public) == 40 and isinstance(secret, str)):
        raise UsageError("the invitation is damaged (cut short or mistyped): copy the whole "
                         "line farm-keys invite printed")
    return address, public, secret


def digest(secret):
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


class Invitations:
    """The ``invitations`` directory beside ``authorized``."""

    def __init__(self, directory):
        self.directory = os.path.expanduser(directory)
        self.stamp = None
        self.open_until = 0.0       # wall time: when the last pending one expires

    # -- farm-keys -------------------------------------------------------------
    def create(self, role, expires, uses, machine=None, capabilities=(), slots=None,
               now=None):
        """A new invitation: ``(its record, the secret)``; the secret is not kept."""
        if role not in INVITE_ROLES:
            raise UsageError("--role must be one of %s" % ", ".join(INVITE_ROLES))
        if uses < 1:
            raise UsageError("--uses must be at least 1")
        if expires <= 0:
            raise UsageError("--expires must be more than 0 seconds")
        now = time.time() if now is None else now
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        hashed = digest(secret)
        record = {"id": hashed[:ID_DIGITS], "sha256": hashed, "role": role,
                  "machine": machine, "capabilities": list(capabilities), "slots": slots,
                  "created": now, "expires": now + expires, "uses": uses, "used": 0,
                  "revoked": False, "joined": []}
        self._write(record)
        return record, secret

    def revoke(self, invitation_id):
        record = self.read(invitation_id)
        if record is None:
            raise UsageError("no invitation %s in %s (farm-keys list shows them)"
                             % (invitation_id, self.directory))
        record["revoked"] = True
        self._write(record)
        return record

    def all(self):
        """Every invitation, oldest first (a damaged file is skipped)."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError("%s: cannot read the invitations: %s"
                              % (self.directory, exc.strerror)) from None
        records = (self.read(name[:-5]) for name in names if name.endswith(".json"))
        return sorted((r for r in records if r is not None), key=lambda r: r["created"])

    # -- the TaskManager -------------------------------------------------------
    def pending(self, now=None):
        """Whether any invitation can still be used: strangers are let in to enrol
        only then. Re-reads the directory when it changed, else answers from memory."""
        now = time.time() if now is None else now
        try:
            stamp = os.stat(self.directory).st_mtime_ns
        except OSError:
            return False
        if stamp != self.stamp:
            self.stamp = stamp
            self.open_until = max((r["expires"] for r in self.all()
                                   if not r["revoked"] and r["used"] < r["uses"]),
                                  default=0.0)
        return now < self.open_until

    def use(self, secret, grant_name, public, address, now=None):
        """Consume one use of the invitation whose secret this is: its record,
        or ``(None, why)`` when there is none it may use."""
        now = time.time() if now is None else now
        hashed = digest(secret)
        record = self.read(hashed[:ID_DIGITS])
        if record is None or not hmac.compare_digest(record["sha256"], hashed):
            return None, "no such invitation"
        why = refusal(record, now)
        if why is not None:
            return None, why
        record["used"] += 1
        record["joined"].append({"name": grant_name, "key": _text(public),
                                 "address": address, "at": now})
        self._write(record)
        return record, None

    # -- files -----------------------------------------------------------------
    def read(self, invitation_id):
        if not invitation_id or not all(c in "0123456789abcdef" for c in invitation_id):
            return None
        path = os.path.join(self.directory, invitation_id + ".json")
        try:
            with open(path, encoding="utf-8") as stream:
                record = json.load(stream)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and "sha256" in record else None

    def _write(self, record):
        path = os.path.join(self.directory, record["id"] + ".json")
        temporary = "%s.%d.tmp" % (path, os.getpid())
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(record, stream, indent=1)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)


def refusal(record, now):
    """Why this invitation cannot be used now, or None."""
    if record["revoked"]:
        return "revoked"
    if record["used"] >= record["uses"]:
        return "used %d time(s) already" % record["used"]
    if now >= record["expires"]:
        return "expired %s" % time.strftime("%Y-%m-%d %H:%M", time.localtime(record["expires"]))
    return None


def _text(key):
    return key.decode() if isinstance(key, bytes) else key
