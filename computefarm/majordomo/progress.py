"""What majordomo shows while it runs: a live progress line and a closing summary.

The line (on a terminal only) reads ``done/total, running, queued, failed, ETA``
and which hosts run what. ``total`` counts the tasks with actions that this run
executes: up-to-date tasks leave it, and tasks without actions are neither in it
nor counted done. Anything else written to the terminal while the line is shown
(task output, doit's reporter, notes) goes through ``Progress.writer``: the line
is cleared first, under the same lock, so the screen is never garbled. The
summary (always, on stderr) gives tasks and task time per host.
"""

import threading
import time

from .. import defaults
from ..wire.protocol import Code

CACHE_HIT = Code.CACHE_HIT


class Progress:
    """Counts, the live line, the summary; each event also goes to ``events``
    (``events(level, task or None, text, **fields)``), majordomo's log tree."""

    def __init__(self, stream, live=None, clock=time.monotonic):
        self.events = lambda level, task, text, **fields: None
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.clock = clock
        self.lock = threading.RLock()
        self.began = clock()
        self.total = 0             # tasks with actions this run executes (up to date: out)
        self.queued = set()
        self.running = {}          # task name -> host
        self.since = {}            # task name -> when it started
        self.announced = set()     # tasks whose start went to the log viewer
        self.done = 0
        self.failed = 0
        self.cached = 0            # actions answered from the action cache
        self.hosts = {}            # host -> [tasks, seconds of task time]
        self.shown = False
        self.last_draw = 0.0

    def expect(self, count):
        """``count`` tasks with actions may run (those selected and their dependencies)."""
        with self.lock:
            self.total = count

    def submitted(self, name):
        with self.lock:
            if name not in self.running:
                self.queued.add(name)
        self.refresh()

    def started(self, name, host):
        with self.lock:
            self.queued.discard(name)
            self.running[name] = host
            self.since[name] = self.clock()
        self.refresh()

    def announce(self):
        """A "started" event for each task running longer than defaults.ANNOUNCE_AFTER: the
        viewer sees long tasks start; a quick one only gets its "finished" event
        (thousands of tiny tasks would otherwise double the log)."""
        now = self.clock()
        with self.lock:
            due = [(name, self.running.get(name)) for name, since in self.since.items()
                   if now - since >= defaults.ANNOUNCE_AFTER and name not in self.announced]
            self.announced.update(name for name, _ in due)
        for name, host in due:
            self.events("INFO", name, "started on %s" % host, host=host)

    def up_to_date(self, name, counted=True):
        """``name`` needs no run (``counted``: it has actions, so it leaves the total)."""
        if counted:
            with self.lock:
                self.total -= 1
        self.events("INFO", name, "up to date")

    def ran(self, name, result):
        """One action of ``name`` ended on ``result.host``."""
        with self.lock:
            if result.code == CACHE_HIT:       # it did not run: reused from the cache
                self.cached += 1
                return
            stats = self.hosts.setdefault(result.host or "?", [0, 0.0])
            stats[1] += result.duration or 0.0

    def finished(self, name, ok, hosts, seconds, counted=True, why=None):
        """``name`` ended after ``seconds`` of run time on its ``hosts`` (one per
        action; a task without actions ran nowhere and is not ``counted``);
        ``why`` it failed, for its ERROR record."""
        with self.lock:
            self.queued.discard(name)
            self.running.pop(name, None)
            self.since.pop(name, None)
            self.announced.discard(name)
            if counted and ok:
                self.done += 1
            elif counted:
                self.failed += 1
            host = next((h for h in reversed(hosts) if h), None)
            if host is not None:
                self.hosts.setdefault(host, [0, 0.0])[0] += 1
        where = " on %s" % host if host else ""
        if ok:
            self.events("INFO", name, "finished%s in %.2fs" % (where, seconds), host=host,
                        seconds=seconds)
        else:
            self.events("ERROR", name, "failed%s after %.2fs%s" % (
                where, seconds, ": %s" % why if why else ""), host=host, seconds=seconds)
        self.refresh()

    def line(self):
        per_host = {}
        for host in self.running.values():
            per_host[host] = per_host.get(host, 0) + 1
        hosts = ", ".join("%s: %d" % item for item in sorted(per_host.items()))
        ended = self.done + self.failed
        left = max(0, self.total - ended)
        eta = ""
        if ended and left:
            eta = ", ETA %s" % _duration((self.clock() - self.began) / ended * left)
        return "majordomo: %d/%d done, %d running, %d queued, %d failed%s%s" % (
            self.done, self.total, len(self.running), len(self.queued), self.failed, eta,
            " | " + hosts if hosts else "")

    def refresh(self, force=False):
        if self.since:
            self.announce()
        if not self.live:
            return
        now = self.clock()
        with self.lock:
            if not force and now - self.last_draw < 0.2:
                return
            self.last_draw = now
            self.stream.write("\r\033[K" + self.line()[:200])
            self.stream.flush()
            self.shown = True

    def writer(self, stream):
        """A file-like ``stream`` whose writes clear the progress line first."""
        return _Clearing(self, stream)

    def note(self, text):
        with self.lock:
            self._clear()
            self.stream.write("majordomo: %s\n" % text)
            self.stream.flush()

    def close(self):
        with self.lock:
            self._clear()
            elapsed = self.clock() - self.began
            lines = ["%d task(s) done, %d failed in %.1fs%s" % (
                self.done, self.failed, elapsed, ", %d action(s) from the action cache"
                % self.cached if self.cached else "")]
            for host, (tasks, seconds) in sorted(self.hosts.items()):
                lines.append("  %-24s %5d task(s) %9.1fs of task time" % (host, tasks, seconds))
            for line in lines:
                self.stream.write("majordomo: %s\n" % line)
            self.stream.flush()
        self.events("WARNING" if self.failed else "INFO", None, "\n".join(lines),
                    done=self.done, failed=self.failed, cached=self.cached, seconds=elapsed)

    def _clear(self):
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


class _Clearing:
    """A stream that clears the progress line before each write, under its lock."""

    def __init__(self, progress, stream):
        self.progress = progress
        self.stream = stream

    def write(self, text):
        with self.progress.lock:
            self.progress._clear()
            return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _duration(seconds):
    seconds = int(seconds + 0.5)
    return "%dm%02ds" % divmod(seconds, 60) if seconds >= 60 else "%ds" % seconds
