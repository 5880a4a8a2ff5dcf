"""Key files: ZeroMQ CURVE certificates (ZPL text, as ``zmq.auth`` writes them).

Every process that connects reads its own secret key and the TaskManager's public
key from such files; the TaskManager reads its own pair and the authorized ones.
Secret files are written 0600 and refused when others can read them.
"""

import os
import stat
import time

import zmq

from ..exceptions import ConfigError
from .protocol import ROLES

# The roles a key file may grant: every peer role but the log forwarder's (its
# key is made in memory by the TaskManager), machine (the workers and the
# monitor of one machine: what farm-join grants) and admin (any role).
KEY_ROLES = tuple(role for role in ROLES if role != "logger") + ("machine", "admin")
# The peer roles a key role that is not itself a peer role may say hello as.
ROLE_INCLUDES = {"machine": ("worker", "monitor")}


def write_certificate(path, public, secret=None, metadata=None):
    """A ZeroMQ certificate file; with a secret key it is created 0600."""
    lines = ["#   ComputeFarm %s key, written %s" % ("secret" if secret else "public",
                                                   time.strftime("%Y-%m-%d %H:%M:%S")),
             "#   ZeroMQ CURVE certificate (ZPL). %s" % (
                 "Keep it secret: never copy it anywhere but its own machine."
                 if secret else "Public: safe to copy."),
             "metadata"]
    lines += ['    %s = "%s"' % (key, value) for key, value in (metadata or {}).items()]
    lines += ["curve", '    public-key = "%s"' % _text(public)]
    if secret:
        lines.append('    secret-key = "%s"' % _text(secret))
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as stream:
        stream.write("\n".join(lines) + "\n")
    os.chmod(path, mode)


def read_certificate(path):
    """``(public, secret or None, metadata)`` of a certificate file (keys as z85 bytes)."""
    public = secret = None
    metadata = {}
    section = None
    try:
        with open(path, encoding="utf-8") as stream:
            for raw in stream:
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                if not raw[:1].isspace():
                    section = line
                    continue
                key, _, value = line.partition("=")
                key, value = key.strip(), value.strip().strip("'\"")
                if section == "curve" and key == "public-key":
                    public = value.encode()
                elif section == "curve" and key == "secret-key":
                    secret = value.encode()
                elif section == "metadata":
                    metadata[key] = value
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("%s: cannot read the key file: %s" % (path, exc)) from None
    if public is None or len(public) != 40 or (secret is not None and len(secret) != 40):
        raise ConfigError("%s: not a CURVE certificate (public-key missing or malformed)"
                          % path)
    return public, secret, metadata


def load_secret(path):
    """``(public, secret)`` from a secret key file that only its owner can read."""
    path = os.path.expanduser(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError("%s: cannot read the secret key: %s" % (path, exc.strerror)) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("%s: secret key is readable by others (mode %o): chmod 600 %s"
                          % (path, stat.S_IMODE(mode), path))
    public, secret, _ = read_certificate(path)
    if secret is None:
        raise ConfigError("%s: has no secret-key (that is a public key file)" % path)
    return public, secret


def load_public(path):
    return read_certificate(os.path.expanduser(path))[0]


def generated_keys():
    """A fresh key pair (z85 bytes) for a process the TaskManager starts itself."""
    return zmq.curve_keypair()


def _text(key):
    return key.decode() if isinstance(key, bytes) else key
