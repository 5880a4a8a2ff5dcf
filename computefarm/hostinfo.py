"""Who this machine is: host name, a stable machine id, the platform tag, the user."""

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
