"""Runs: one attempt of one task on a worker, as the worker's loop sees it.

A ``Run`` owns some file descriptors the worker polls (output pipes), turns what
they carry into lines, and decides when it is finished (``poll`` returns an
``Outcome``). ``stop`` ends it early for a cancel, a timeout or a shutdown: the
whole process tree gets SIGTERM, then SIGKILL after a grace period, and the run
only finishes once nothing of the tree is left running.
"""

import os
import signal

from .. import defaults
from .processes import Tree, spawn


class Outcome:
    __slots__ = ("status", "exit_code", "value", "error", "detail", "code", "duration",
                 "outputs", "staging", "spilled")

    def __init__(self, status, exit_code=None, value=None, error=None, detail=None,
                 code=None):
        self.status = status
        self.exit_code = exit_code
        self.value = value
        self.error = error
        self.detail = detail
        self.code = code              # a wire Code when the worker itself failed it
        self.duration = None          # the run's own time when not since its start (staged)
        self.outputs = None           # staged: the output files, stored and uploaded
        self.staging = None           # staged: fetch and upload times
        self.spilled = None           # the file a python slot wrote its big result to


class LineSplitter:
    """Bytes in, complete text lines out; a partial last line waits for more.

    Linear in what it is fed, whatever the lines' lengths: the partial line is
    kept in pieces, joined once. A line longer than ``limit`` bytes keeps its
    first ``limit`` bytes and a marker saying how many more were cut.
    """

    __slots__ = ("limit", "pieces", "size", "cut")

    def __init__(self, limit=defaults.OUTPUT_LINE_MAX):
        self.limit = limit
        self.pieces = []
        self.size = 0                 # bytes kept of the partial line
        self.cut = 0                  # bytes of it dropped beyond the limit

    def feed(self, data):
        if not data:
            return []
        parts = data.split(b"\n")
        tail = parts.pop()
        lines = []
        if parts:
            self._add(parts[0])        # ends the partial line (or is a whole one)
            lines.append(self._finish())
            limit = self.limit
            for index in range(1, len(parts)):
                part = parts[index]
                if len(part) <= limit:
                    lines.append(part.decode("utf-8", "replace"))
                else:
                    lines.append(_cut(part[:limit], len(part) - limit))
        self._add(tail)
        return lines

    def close(self):
        return [self._finish()] if self.pieces or self.cut else []

    def _add(self, piece):
        room = self.limit - self.size
        if room >= len(piece):
            if piece:
                self.pieces.append(piece)
                self.size += len(piece)
        else:
            if room > 0:
                self.pieces.append(piece[:room])
                self.size += room
            self.cut += len(piece) - max(room, 0)

    def _finish(self):
        text = b"".join(self.pieces)
        cut, self.pieces, self.size, self.cut = self.cut, [], 0, 0
        return _cut(text, cut) if cut else text.decode("utf-8", "replace")


def _cut(kept, dropped):
    return kept.decode("utf-8", "replace") + " [line cut: %d more bytes]" % dropped


class Run:
    """Base of every run; ``fds`` maps each polled descriptor to its stream name."""

    lasting_tree = False              # True: its tree (a slot's) outlives the task

    def __init__(self, task_id, attempt, timeout, now):
        self.task_id = task_id
        self.attempt = attempt
        self.timeout = timeout
        self.started = now
        self.fds = {}                 # fd -> (stream name, LineSplitter)
        self.stopping = None          # (status, reason) once stop() was called
        self.kill_at = None
        self.tree = None              # the processes.Tree that runs the task
        self.recorded = False         # its tree is in the worker's task records
        self.suspended_at = None      # when the task was stopped for the machine's owner

    def readable(self, fd):
        """Lines now readable on ``fd`` as (stream, line) pairs; closes it at EOF."""
        stream, splitter = self.fds[fd]
        lines = []
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                lines.extend(splitter.close())
                self.close_fd(fd)
                break
            lines.extend(splitter.feed(data))
            if len(data) < 65536:
                break
        return [(stream, line) for line in lines]

    def close_fd(self, fd):
        self.fds.pop(fd, None)
        self.on_close_fd(fd)
        try:
            os.close(fd)
        except OSError:
            pass

    def on_close_fd(self, fd):
        """Hook for the worker to stop polling ``fd``; replaced when the run is watched."""

    def drain(self):
        """Whatever output is left, read without waiting, and the pipes closed."""
        lines = []
        for fd in list(self.fds):
            if fd in self.fds:
                lines.extend(self.readable(fd))
        for fd in list(self.fds):
            stream, splitter = self.fds[fd]
            lines.extend((stream, line) for line in splitter.close())
            self.close_fd(fd)
        return lines

    def timed_out(self, now):
        return self.timeout is not None and self.stopping is None \
            and self.suspended_at is None and now - self.started > self.timeout

    def suspend(self, now):
        """Stop the task's processes (SIGSTOP) while the machine's owner needs it."""
        if self.suspended_at is None and self.stopping is None:
            self.suspended_at = now
            self.tree.signal(signal.SIGSTOP)

    def resume(self, now):
        """Continue after ``suspend``; time spent stopped does not count to the timeout."""
        if self.suspended_at is not None:
            self.started += now - self.suspended_at
            self.suspended_at = None
            self.tree.signal(signal.SIGCONT)

    def stop(self, now, status, reason):
        """End the run early: SIGTERM to its tree now, SIGKILL after the grace."""
        if self.stopping is None:
            self.stopping = (status, reason)
            self.kill_at = now + defaults.KILL_GRACE
            self.tree.signal(signal.SIGTERM)
            if self.suspended_at is not None:    # a stopped process cannot act on SIGTERM
                self.tree.signal(signal.SIGCONT)

    def poll(self, now):
        """An Outcome once the run is over, else None."""
        raise NotImplementedError

    def busy(self):
        """True while the run needs ``poll`` soon even without I/O (it is stopping)."""
        return self.stopping is not None

    def release(self):
        """Give back what the run held once the worker is done with it."""
        for fd in list(self.fds):
            self.close_fd(fd)


class ProcessRun(Run):
    """A command line run as the leader of its own session."""

    def __init__(self, task_id, attempt, argv, cwd, env, timeout, now):
        super().__init__(task_id, attempt, timeout, now)
        self.proc = spawn(argv, cwd=cwd, env=env)
        self.pid = self.proc.pid
        self.tree = Tree(self.proc.pid)
        self.fds = {self.proc.stdout.fileno(): ("stdout", LineSplitter()),
                    self.proc.stderr.fileno(): ("stderr", LineSplitter())}
        self._files = (self.proc.stdout, self.proc.stderr)
        self.exited_at = None

    def close_fd(self, fd):
        self.fds.pop(fd, None)
        self.on_close_fd(fd)
        for stream in self._files:
            if not stream.closed and stream.fileno() == fd:
                stream.close()


    def poll(self, now):
        if self.exited_at is None and self.proc.poll() is not None:
            self.exited_at = now
        if self.timed_out(now):
            self.stop(now, "timeout", "timed out after %gs" % self.timeout)
        if self.stopping is not None:
            return self._poll_stopping(now)
        if self.exited_at is None:
            return None
        if self.fds and now - self.exited_at < defaults.OUTPUT_DRAIN_GRACE:
            return None                       # children may still be writing
        code = self.proc.returncode
        if -code in _STOPPING and now - self.exited_at < defaults.SIGNALLED_GRACE:
            return None     # stopped from outside: its worker may be stopped too (a
            #                 scheduler ending a job signals every process of it), and
            #                 then the task is handed back, not failed
        self.tree.kill()                      # nothing of a finished task outlives it
        if code < 0:
            return Outcome("failed", code, error="killed by signal %s" % _signame(-code))
        return Outcome("ok" if code == 0 else "failed", code,
                       error=None if code == 0 else "exit code %d" % code)

    def _poll_stopping(self, now):
        if now >= self.kill_at:
            self.tree.kill()
            self.kill_at = now + defaults.KILL_GRACE
        if self.exited_at is None or self.tree.alive():
            return None
        status, reason = self.stopping
        return Outcome(status, self.proc.returncode, error=reason)


def _signame(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# Signals a scheduler or an administrator stops a whole job (worker and tasks) with.
_STOPPING = {signal.SIGTERM, signal.SIGKILL, signal.SIGHUP, signal.SIGINT}
