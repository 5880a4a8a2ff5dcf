"""Who this machine is: host name, a stable machine id, the platform tag, the user;
and a process's identity on it (its pid and when it started)."""

import getpass
import os
import platform
import socket
import sys

_MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


def host_name():
    return socket.gethostname()


def machine_id():
    """A stable id shared by every farm process on this machine.

    The systemd machine id when there is one (short form), else the host name.
    ``--machine NAME`` overrides it (tests, containers).
    """
    for path in _MACHINE_ID_FILES:
        try:
            with open(path) as stream:
                value = stream.read().strip()
        except OSError:
            continue
        if value:
            return "%s-%s" % (host_name(), value[:8])
    return host_name()


def platform_tag():
    """``linux-x86_64`` style: the OS and machine this process runs on."""
    return "%s-%s" % (sys.platform.rstrip("0123456789"), platform.machine().lower())


def local_user():
    """The name of the user running this process (the embedded farm's fair-share user)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):       # no name for this uid (a container)
        return "uid%d" % os.getuid()


def process_start(pid):
    """``(start, state)`` of process ``pid``, or None when there is none (or no /proc).

    The start is the kernel's, in clock ticks since boot: unlike psutil's
    create_time, which adds the boot time as the wall clock now gives it, it
    never changes, so a clock set back or forth cannot make a process look new.
    """
    try:
        with open("/proc/%d/stat" % pid, "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
        return int(fields[19]), fields[0].decode()
    except (OSError, IndexError, ValueError):
        return None


def live_start(pid):
    """The start of process ``pid`` if it runs (not a zombie), else None: with the
    pid, what a pid file keeps so a pid given to another process since is never
    taken for it."""
    known = process_start(pid) if isinstance(pid, int) else None
    return known[0] if known is not None and known[1] != "Z" else None
