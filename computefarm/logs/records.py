"""The records file: every record the log forwarder handles, one JSON line each."""

import json
import logging
import os
import time

from .. import defaults, logfiles

log = logging.getLogger(__name__)


class RotatingFile:
    """Appends records (one line each) to ``path``, readable by its owner only;
    past ``max_bytes`` it becomes path.1 (and so on), between two records.

    One forwarder owns the file (``logfiles.claim``): a second TaskManager's
    forwarder sharing the setting writes ``NAME-2.EXT`` beside it and says so.

    A full disk (any failed write) pauses it: what part of a write got in is cut
    off again, so no line is left half written; the records are counted as lost
    and writing is tried again every ``DISK_RETRY`` seconds. The first write that
    gets in starts with a WARNING record saying how many were lost and for how
    long; the forwarder's own log says when it paused and resumed."""

    def __init__(self, path, max_bytes=defaults.RECORDS_FILE_SIZE,
                 backups=defaults.RECORDS_FILE_BACKUPS, clock=time.monotonic):
        self.wanted = os.path.expanduser(path)
        self.path = self.wanted
        self.max_bytes = max_bytes
        self.backups = backups
        self.clock = clock
        self.claim = None
        self.fd = None
        self.written = 0               # bytes in the file
        self.pending = []              # encoded lines not written yet
        self.pending_bytes = 0
        self.paused_until = None
        self.lost = 0                  # records lost in the current pause
        self.lost_since = None         # when it began (time.time()), None: not paused
        self.cause = None
        self._open()

    def _open(self):
        """Claim and open the file; on failure pause (True when open)."""
        try:
            if self.claim is None:
                os.makedirs(os.path.dirname(self.wanted) or ".", exist_ok=True)
                self.claim = logfiles.claim(self.wanted)
                self.path = self.claim.path
                if self.claim.holder is not None:
                    log.warning("log forwarder: records file %s",
                                self.claim.describe(self.wanted))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
            os.fchmod(fd, 0o600)        # a file made before by a laxer version
            self.fd = fd
            self.written = os.fstat(fd).st_size
            return True
        except OSError as exc:
            self._pause(exc, 0)
            return False

    @property
    def size(self):
        return self.written + self.pending_bytes

    def write_records(self, records):
        """Queue each record as a line, written by ``flush``; False while paused
        (the records are lost, and counted)."""
        if self.paused_until is not None:
            if self.clock() < self.paused_until:
                self.lost += len(records)
                return False
            self.paused_until = None
        if self.fd is None and not self._open():
            self.lost += len(records)
            return False
        for index, text in enumerate(records):
            line = (text + "\n").encode("utf-8", "replace")
            if self.size + len(line) > self.max_bytes and self.size and not self.rotate():
                self.lost += len(records) - index
                return False
            self.pending.append(line)
            self.pending_bytes += len(line)
        return True

    def flush(self):
        """Write what is queued in one go; True when it all got in."""
        if not self.pending:
            return True
        notice = self._notice() if self.lost_since is not None else b""
        data = notice + b"".join(self.pending)
        count = len(self.pending)
        self._drop_pending()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self._cut()
            self._pause(exc, count)
            return False
        self.written += len(data)
        if notice:
            log.warning("log forwarder: writing %s again; %d record(s) were lost while it "
                        "could not", self.path, self.lost)
            self.lost, self.lost_since, self.cause = 0, None, None
        return True

    def _drop_pending(self):
        self.pending = []
        self.pending_bytes = 0

    def _notice(self):
        """The WARNING record that opens the file again after a pause."""
        return (json.dumps({
            "name": "farm.logs", "levelname": "WARNING", "created": time.time(),
            "msg": "%d record(s) lost: %s could not be written for %.0f s (%s)" % (
                self.lost, self.path, time.time() - self.lost_since, self.cause),
            "lost": self.lost}, separators=(",", ":")) + "\n").encode()

    def _cut(self):
        """Take back the part of a failed write that got in: a half line would
        spoil the line written after it."""
        try:
            os.ftruncate(self.fd, self.written)
        except OSError:               # nothing better to do: the next pause says so
            pass

    def _pause(self, exc, count):
        if self.lost_since is None:
            self.lost_since = time.time()
            self.cause = exc.strerror or str(exc)
            log.warning("log forwarder: cannot write %s (%s): records are lost until it "
                        "can, tried every %.0f s", self.path, self.cause, defaults.DISK_RETRY)
        self.lost += count
        self.paused_until = self.clock() + defaults.DISK_RETRY

    def rotate(self):
        """Flush, then shift path -> path.1 -> ... and start an empty file; on
        failure pause (False)."""
        if not self.flush():
            return False
        try:
            os.close(self.fd)
            self.fd = None
            for index in range(self.backups - 1, 0, -1):
                older = "%s.%d" % (self.path, index)
                if os.path.exists(older):
                    os.replace(older, "%s.%d" % (self.path, index + 1))
            os.replace(self.path, self.path + ".1")
        except OSError as exc:
            self._pause(exc, 0)
            return False
        return self._open()

    def close(self):
        self.flush()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.claim is not None:
            self.claim.release()
