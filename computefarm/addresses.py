"""Addresses: ``tcp://HOST:PORT`` of the one port and ``HOST:PORT`` of the log
viewer, parsed in one place, and which hosts are this machine's loopback."""

import ipaddress
import re

from .exceptions import ConfigError

_TCP = re.compile(r"^tcp://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.*-]+):(\d{1,5})$")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")

# Hosts that reach only this machine: what may be bound without CURVE keys,
# and where the log viewer (which unpickles nothing, but trusts its port) listens.
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Hosts a bind uses to mean every interface of this machine ("::": IPv6 and IPv4).
WILDCARD = ("0.0.0.0", "*", "::")


def split(address, where="address", allow_port_zero=False):
    """``(host, port)`` of ``tcp://HOST:PORT`` (brackets of an IPv6 host removed);
    ConfigError naming ``where`` otherwise."""
    return _split(_TCP, address, where, "tcp://HOST:PORT", allow_port_zero)


def split_host_port(address, where="address"):
    """``(host, port)`` of ``HOST:PORT``; ConfigError naming ``where`` otherwise."""
    return _split(_HOST_PORT, address, where, "HOST:PORT", False)


def tcp(host, port):
    """``tcp://HOST:PORT``, an IPv6 host in brackets."""
    return "tcp://%s:%d" % ("[%s]" % host if ":" in host else host, port)


def is_loopback(host):
    """True for a host that reaches only this machine: ``localhost``, 127.0.0.0/8,
    ``::1`` however it is written."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_ipv6(address):
    """True when ``address`` (``tcp://HOST:PORT``) has an IPv6 host: its socket needs
    ``zmq.IPV6``. Names keep resolving to IPv4 only, so a name with both kinds of
    address (``localhost`` on many systems) still reaches a TaskManager bound on
    127.0.0.1."""
    try:
        host, _ = split(address, allow_port_zero=True)
    except ConfigError:
        return False
    return ":" in host


def _split(pattern, address, where, expected, allow_port_zero):
    match = pattern.match(address) if isinstance(address, str) else None
    port = int(match.group(2)) if match else -1
    if not match or port > 65535 or (port == 0 and not allow_port_zero):
        raise ConfigError("%s: expected %s, got %r" % (where, expected, address))
    return match.group(1).strip("[]"), port
