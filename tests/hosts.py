"""Several hosts on one machine, for tests of what crosses a network.

Each host is a network namespace with one interface on a bridge that lives in a
namespace of its own, so every address exists only inside namespaces this
module made, and nothing is added to the machine's own network. Before a test
starts anything in a host, ``Host.check_isolated`` proves the namespace has no
default route: a wrong address can never send a packet off this machine.
A partition is iptables rules inside the host's namespace. ``Network.close``
deletes every namespace (and with it every interface and rule) it made.

Needs root (CI runs as root), iproute2, and iptables for partitions.
"""

import contextlib
import os
import shutil
import subprocess
import sys

SUBNET = "10.213.0.%d"


def _ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True, check=check)


def available():
    """Why these tests cannot run here (a string), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


class Host:
    def __init__(self, network, name, number):
        self.network = network
        self.name = name
        self.ns = "%s-%s" % (network.prefix, name)
        self.address = SUBNET % number
        self.partitioned = False
        self.hidden = []          # folders this host does not see (an empty tmpfs over each)

    def hide(self, *paths):
        """Give this host a filesystem of its own without ``paths``: each process
        started in it gets a private mount namespace with an empty tmpfs over each
        (a machine that shares nothing but the network)."""
        self.hidden.extend(str(path) for path in paths)

    def argv(self, argv):
        """``argv`` run inside this host (``ip netns exec``, ``unshare`` and ``sh``
        each exec the next: same pid)."""
        return ["ip", "netns", "exec", self.ns] + hiding(self.hidden, argv)

    def popen(self, argv, **options):
        self.check_isolated()
        return subprocess.Popen(self.argv(argv), **options)

    def run(self, argv, **options):
        self.check_isolated()
        return subprocess.run(self.argv(argv), **options)

    def check_isolated(self):
        routes = _ip("-n", self.ns, "route", "show", "default").stdout.strip()
        if routes:
            raise AssertionError("host %s has a default route (%s): refusing to use it"
                                 % (self.name, routes))

    def partition(self):
        """Drop every packet between this host and the others, both ways."""
        for chain in ("INPUT", "OUTPUT"):
            subprocess.run(["ip", "netns", "exec", self.ns, "iptables", "-A", chain,
                            "-i" if chain == "INPUT" else "-o", "eth0", "-j", "DROP"],
                           check=True)
        self.partitioned = True

    def heal(self):
        subprocess.run(["ip", "netns", "exec", self.ns, "iptables", "-F"], check=True)
        self.partitioned = False


def hiding(paths, argv):
    """``argv`` in a private mount namespace with an empty tmpfs over each of
    ``paths`` (``unshare`` and ``sh`` exec the next: same pid); ``argv`` itself
    when there are none."""
    if not paths:
        return list(argv)
    script = ('for p in "$@"; do [ "$p" = -- ] && break; '
              'mount -t tmpfs cf-hidden "$p" || exit 97; shift; done; shift; exec "$@"')
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + \
        [str(path) for path in paths] + ["--"] + list(argv)


class Elsewhere:
    """For ``Farm.spawn(host=...)``: this machine's own network (loopback), and a
    filesystem without ``paths`` (benches: workers that do not see a project)."""

    def __init__(self, *paths):
        self.hidden = [str(path) for path in paths]

    def check_isolated(self):
        """Nothing to check: its traffic stays on this machine's loopback."""

    def argv(self, argv):
        return hiding(self.hidden, argv)


class Network:
    """A bridge and hosts on it: ``add(name)`` makes one, ``close()`` deletes all."""

    def __init__(self, prefix=None):
        self.prefix = prefix or "cf%d" % os.getpid()
        self.switch = "%s-sw" % self.prefix
        self.hosts = {}
        _ip("netns", "add", self.switch)
        try:
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            _ip("-n", self.switch, "link", "set", "lo", "up")
        except subprocess.CalledProcessError:
            self.close()
            raise

    def add(self, name):
        host = Host(self, name, len(self.hosts) + 1)
        _ip("netns", "add", host.ns)
        self.hosts[name] = host
        port = "p%d" % len(self.hosts)
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", host.ns)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", host.ns, "addr", "add", host.address + "/24", "dev", "eth0")
        _ip("-n", host.ns, "link", "set", "eth0", "up")
        _ip("-n", host.ns, "link", "set", "lo", "up")
        host.check_isolated()
        return host

    def close(self):
        for host in self.hosts.values():
            _ip("netns", "del", host.ns, check=False)
        _ip("netns", "del", self.switch, check=False)
        self.hosts.clear()


def python(*args):
    return [sys.executable] + list(args)


@contextlib.contextmanager
def lan(*names):
    """A Network with hosts ``names``, deleted afterwards (for fixtures)."""
    reason = available()
    assert reason is None, reason
    network = Network()
    try:
        for name in names:
            network.add(name)
        yield network
    finally:
        network.close()
