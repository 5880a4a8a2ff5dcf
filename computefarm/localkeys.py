"""The per-user key set of a farm without keys: no configuration, yet closed to
every other local user.

A TaskManager on a loopback address with no ``keys:`` in farm.yaml (and
majordomo's embedded farm) still authenticates every connection. The first
process that needs keys makes a set in the user's ``LOCAL_KEYS_DIR`` (mode 0700,
secret keys 0600): a TaskManager key pair, and a "local" key pair authorized
with the admin role. Every process of the same user finds it there; another
user cannot read it, so the TaskManager refuses that user's connections.
``--insecure`` is the one way to a port without keys.
"""

import os
import secrets
import shutil
import stat

import zmq

from . import addresses, defaults
from .exceptions import ConfigError
from .wire.certificates import write_certificate


def directory():
    return os.path.expanduser(os.environ.get(defaults.LOCAL_KEYS_ENV) or
                              defaults.LOCAL_KEYS_DIR)


def local_keys():
    """``config.KeysConfig`` of this user's local set, made on first use."""
    from .config import KeysConfig
    path = directory()
    if not os.path.isdir(path):
        _create(path)
    info = os.stat(path)
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("%s: the local keys must be this user's own and private (owner "
                          "uid %d, mode %o): chmod 700 %s" % (path, info.st_uid,
                                                               stat.S_IMODE(info.st_mode), path))
    return KeysConfig(server=os.path.join(path, "taskmanager.key"),
                      server_secret=os.path.join(path, "taskmanager.key_secret"),
                      authorized=os.path.join(path, "authorized"),
                      secret=os.path.join(path, "local.key_secret"))


def _create(path):
    """Make the set in a private folder beside ``path``, then rename it into place:
    two processes starting at once end up with one set."""
    parent = os.path.dirname(path)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    building = "%s.%d-%s" % (path, os.getpid(), secrets.token_hex(4))
    os.mkdir(building, 0o700)
    try:
        os.mkdir(os.path.join(building, "authorized"), 0o700)
        public, secret = zmq.curve_keypair()
        write_certificate(os.path.join(building, "taskmanager.key"), public)
        write_certificate(os.path.join(building, "taskmanager.key_secret"), public, secret)
        public, secret = zmq.curve_keypair()
        metadata = {"name": "local", "role": "admin"}
        write_certificate(os.path.join(building, "authorized", "local.key"), public,
                          metadata=metadata)
        write_certificate(os.path.join(building, "local.key_secret"), public, secret, metadata)
        try:
            os.rename(building, path)
        except OSError:
            if not os.path.isdir(path):      # not another process that was quicker
                raise
    except OSError as exc:
        raise ConfigError("%s: cannot make the local keys: %s" % (path, exc.strerror)) from None
    finally:
        shutil.rmtree(building, ignore_errors=True)


def applies(address):
    """True when a farm at ``address`` without keys uses the local set: loopback."""
    try:
        host, _ = addresses.split(address, "address", allow_port_zero=True)
    except ConfigError:
        return False
    return addresses.is_loopback(host)


def peer_curve(address):
    """The local set's ``(public, secret, server public)`` for a peer of ``address``,
    or None where it does not apply."""
    return local_keys().peer_curve("local keys") if applies(address) else None
