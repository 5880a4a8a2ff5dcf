"""Enrolment: a stranger's key becomes a trusted one by proving an invitation.

A machine running ``farm-join`` makes its own key pair and connects with it over
CURVE (it knows the TaskManager's public key from the token, so it talks to the
real one). Its key is unknown: ZAP lets it in only while some invitation can
still be used and its address has not failed too often (``admits``), and the
gate lets it send ENROL and nothing else. ``enrol`` checks the secret against
the invitations (only their digests are stored), writes the new key's
certificate into ``authorized/`` with the role and machine the invitation
grants, and answers ENROLLED; the key ring picks it up at once. Every refusal
is logged with the address it came from, never with the secret.
"""

import logging
import os
import re
import time

from .. import defaults
from ..exceptions import ProtocolError
from ..invitations import ID_DIGITS, Invitations, digest
from ..wire.certificates import write_certificate
from ..wire.protocol import Code

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Enrolment:
    """Invitations consumed on the TaskManager's side, and the guessing limit."""

    def __init__(self, keyring, invitations_dir, wall_clock=time.time):
        self.keyring = keyring
        self.invitations = Invitations(invitations_dir)
        self.wall_clock = wall_clock
        self.addresses = {}     # stranger's public key -> its address (from ZAP), bounded
        self.failures = {}      # address -> [monotonic times of recent failed attempts]
        self.enrolled = 0
        self.refused = 0

    def admits(self, public, address, now):
        """ZAP asks about an unknown key: may it connect, to enrol?"""
        if self.blocked(address, now) or not self.invitations.pending(self.wall_clock()):
            return False
        if len(self.addresses) >= defaults.ENROL_STRANGERS:
            self.addresses.clear()         # bounded; a pending enrolment just retries
        self.addresses[public] = address
        return True

    def blocked(self, address, now):
        recent = [t for t in self.failures.get(address, ()) if now - t < defaults.ENROL_WINDOW]
        if recent:
            self.failures[address] = recent
        else:
            self.failures.pop(address, None)
        return len(recent) >= defaults.ENROL_FAILURES

    def enrol(self, public, body, now):
        """An ENROL from a stranger's key: the ENROLLED body; ProtocolError (code
        ``enrol-refused``) when the secret opens no usable invitation."""
        address = self.addresses.get(public, "an unknown address")
        if self.blocked(address, now):
            raise self._refuse(address, now, "too many failed attempts from this address; "
                               "wait %d s" % defaults.ENROL_WINDOW, counted=False)
        wall = self.wall_clock()
        existing = self.keyring.lookup(public)
        if existing is not None:
            raise ProtocolError("this key is authorized already, as %s %s"
                                % (existing.role, existing.name), Code.NOT_ALLOWED)
        invitation = self.invitations.read(digest(body["secret"])[:ID_DIGITS])
        wanted = invitation.get("machine") if invitation else None
        name = self._free_name(wanted or body.get("name") or body["host"])
        record, why = self.invitations.use(body["secret"], name, public, address, wall)
        if record is None:
            raise self._refuse(address, now, "the invitation is %s" % why)
        role = record["role"]
        metadata = {"name": name, "role": role, "invitation": record["id"]}
        if role in ("machine", "worker"):
            metadata["machine"] = name
        path = os.path.join(self.keyring.directory, name + ".key")
        write_certificate(path, public, metadata=metadata)
        self.keyring.refresh()
        self.addresses.pop(public, None)
        self.enrolled += 1
        log.warning("TaskManager: %s joined from %s as %s with invitation %s (%d use(s) left)",
                    name, address, role, record["id"], record["uses"] - record["used"])
        return {"name": name, "role": role, "machine": metadata.get("machine"),
                "capabilities": record.get("capabilities") or [], "slots": record.get("slots"),
                "invitation": record["id"]}

    def _refuse(self, address, now, why, counted=True):
        self.refused += 1
        if counted:
            self.failures.setdefault(address, []).append(now)
            if len(self.failures) > defaults.ENROL_STRANGERS:
                self.failures.pop(next(iter(self.failures)))
        log.warning("TaskManager: refused an enrolment from %s: %s", address, why)
        return ProtocolError(why, Code.ENROL_REFUSED)

    def _free_name(self, wanted):
        """``wanted`` made safe as a file name, and not yet taken by another key."""
        base = _UNSAFE.sub("-", wanted).strip(".-")[:64] or "machine"
        taken = {grant.name for grant in self.keyring.keys.values()}
        name, number = base, 1
        while name in taken or os.path.exists(os.path.join(self.keyring.directory,
                                                           name + ".key")):
            number += 1
            name = "%s-%d" % (base, number)
        return name

    def status(self):
        return {"enrolled": self.enrolled, "refused": self.refused,
                "open": self.invitations.open_until > self.wall_clock()}
