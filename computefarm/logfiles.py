"""One owner per log file: a process's own log (``logging.file``) and a log
forwarder's records file are each written and rotated by one process only.

Every farm process started from one farm.yaml reads the same ``logging.file``,
and two TaskManagers (two majordomo runs at once) the same ``logging.records``.
Rotating one file from several processes loses lines: each renames the file the
others are writing. So a process first takes an exclusive lock on ``PATH.lock``
(flock: the kernel drops it when the process ends, however it ends) and, when
a live process holds it, writes beside it instead: ``NAME.ROLE.EXT``, then
``NAME.ROLE-2.EXT``, ... the first one free (``NAME-2.EXT``, ... without a
role). Names are reused after a restart, so they do not pile up. The lock file
holds its owner's pid, so the others can say who has the file.
"""

import fcntl
import os

from . import defaults
from .exceptions import ConfigError


class Claim:
    """The file this process writes (``path``), and who held the one it asked
    for: ``holder`` is None when it got it, else the holder's pid (0: unknown)."""

    def __init__(self, path, holder, lock_fd):
        self.path = path
        self.holder = holder
        self.lock_fd = lock_fd

    def release(self):
        if self.lock_fd is not None:
            os.close(self.lock_fd)       # closing the last descriptor drops the flock
            self.lock_fd = None

    def describe(self, wanted):
        """One line for the log when this process writes elsewhere than ``wanted``."""
        owner = "pid %d" % self.holder if self.holder else "another process"
        return "%s is in use by %s: this process writes %s" % (wanted, owner, self.path)


def claim(path, role=None):
    """Lock ``path`` for this process, or the first free name beside it. OSError
    when the lock files cannot be made (a folder not writable)."""
    fd = _lock(path)
    if fd is not None:
        return Claim(path, None, fd)
    holder = _holder(path)
    for candidate in alternatives(path, role):
        fd = _lock(candidate)
        if fd is not None:
            return Claim(candidate, holder, fd)
    raise ConfigError("%s and the %d names tried beside it are all in use by other "
                      "processes" % (path, defaults.LOG_FILE_CLAIMS - 1))


def alternatives(path, role=None):
    """``farm.log`` -> ``farm.worker.log``, ``farm.worker-2.log``, ...;
    ``records.jsonl`` (no role) -> ``records-2.jsonl``, ``records-3.jsonl``, ..."""
    stem, ext = os.path.splitext(path)
    if role:
        stem += "." + role
        yield stem + ext
    for number in range(2, defaults.LOG_FILE_CLAIMS + 1 - bool(role)):
        yield "%s-%d%s" % (stem, number, ext)


def _lock(path):
    """The descriptor of ``path``.lock, locked by this process; None if held."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
    except OSError:                     # a full disk: the pid only helps to explain
        pass
    return fd


def _holder(path):
    try:
        with open(path + ".lock", "rb") as stream:
            return int(stream.read(32).strip() or 0)
    except (OSError, ValueError):
        return 0
