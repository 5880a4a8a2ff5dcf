"""Process trees: start a command in its own session, stop all of it.

Each task runs as the leader of a new session (so a new process group). Stopping
a task signals the group and also every descendant psutil can still see, which
catches children that moved to a session of their own. SIGTERM first, SIGKILL
after a grace period for whatever is left.
"""

import os
import signal
import subprocess

import psutil

from ..hostinfo import process_start


def spawn(argv, cwd=None, env=None, pass_fds=(), stdin=subprocess.DEVNULL):
    """Start ``argv`` as a session leader with its stdout and stderr on pipes."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            pass_fds=pass_fds, close_fds=True)
    for stream in (proc.stdout, proc.stderr):
        os.set_blocking(stream.fileno(), False)
    return proc


class Tree:
    """The processes of one task: its leader's process group plus known descendants."""

    def __init__(self, pid):
        self.pgid = pid
        self.known = {}   # pid -> psutil.Process, remembered so re-parented ones are found
        self._started = False

    @property
    def started(self):
        """The leader's start (``process_start``), so a later process with its pid is
        not taken for it; read when first asked, not at the spawn: right after it the
        kernel makes the read wait for the new process's exec (160 us against 26)."""
        if self._started is False:
            known = process_start(self.pgid)
            self._started = known[0] if known else None
        return self._started

    def remember(self):
        """Record the leader's current descendants (they may re-parent to init later)."""
        try:
            children = psutil.Process(self.pgid).children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            self.known.setdefault(child.pid, child)

    def signal(self, sig):
        self.remember()
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for pid, proc in list(self.known.items()):
            try:
                proc.send_signal(sig)   # psutil checks the pid was not reused
            except psutil.Error:
                del self.known[pid]

    def alive(self):
        """True while any process of the tree still runs (zombies do not count)."""
        try:
            os.killpg(self.pgid, 0)
            group = True
        except (ProcessLookupError, PermissionError):
            group = False
        if group:
            group = any(running(p) for p in _group_members(self.pgid))
        return group or any(running(p) for p in self.known.values())

    def kill(self):
        self.signal(signal.SIGKILL)


def _group_members(pgid):
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                yield proc
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue


def running(proc):
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
