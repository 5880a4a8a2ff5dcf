"""Records of the task trees running on this machine, so that none outlives its worker.

A worker killed with SIGKILL cannot stop its tasks: they run on, re-parented to
init, and finish beside their rerun, writing the same targets. So while a task
runs, its worker keeps one small file for it in a private folder of the user
(``directory()``): the worker's pid, start and routing id, the task, its
process group, and the leader's pid and start. The file is written once
the task has run ``defaults.TASK_RECORD_AFTER`` (50 ms; the worker's loop turns
every 10 ms while tasks run): a build's many tasks of a few milliseconds cost
no file (nor the read of their leader's start, which waits on the kernel while
the new process execs), and a worker killed within that time leaves at most
the tasks it started in it, each only until it ends. ``reap``, called by a worker
before its first hello and by the machine's monitor at every report, kills
the trees of the records whose worker is gone, with SIGKILL (nobody waits for
their output any more), and removes those records.

Starts are the kernel's (``processes.process_start``), never the wall clock's:
a clock set back or forth must not make a live worker look dead. Without /proc
(not Linux) nothing is recorded or reaped.

A record's name says whose it is: host, boot, the worker's pid and start, the
leader's pid. So a reaper opens only the records of dead workers, and leaves
alone those of other hosts (a home folder shared over NFS): their pids mean
nothing here.
"""

import json
import logging
import os
import re
import signal
import socket
import stat

import psutil

from .. import defaults
from ..exceptions import ConfigError
from ..hostinfo import process_start
from .processes import running

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<host>[\w.-]+)~(?P<boot>[0-9a-f]+)~(?P<pid>\d+)-(?P<start>\d+)"
                   r"~(?P<leader>\d+)\.task(?P<partial>\.tmp)?$", re.ASCII)

# Rounds of finding and killing a tree's processes: one forked meanwhile by a
# process outside the group is found in the next round.
KILL_ROUNDS = 3


def directory():
    """This user's records folder: $COMPUTEFARM_TASK_RECORDS, else under
    $XDG_RUNTIME_DIR (this user's, emptied at boot), else ~/.cache."""
    chosen = os.environ.get(defaults.TASK_RECORDS_ENV)
    if chosen:
        return os.path.expanduser(chosen)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, defaults.TASK_RECORDS_RUNTIME)
    return os.path.expanduser(defaults.TASK_RECORDS_DIR)


class TaskRecords:
    """The records folder as a worker (``add``, ``remove``) or a reaper (``reap``) uses it.

    ``name`` names the user in log lines; ``identity`` is the worker's routing id
    (its tasks' COMPUTEFARM_WORKER); ``pid`` is for tests that record for a
    process of theirs.
    """

    def __init__(self, path=None, name="task records", machine="", identity="", pid=None):
        self.path = path or directory()
        self.name = name
        self.machine = machine
        self.identity = identity
        self.pid = os.getpid() if pid is None else pid
        me = process_start(self.pid)
        self.enabled = me is not None
        self.start = me[0] if me else None
        self.host = re.sub(r"[^\w.-]", "_", socket.gethostname(), flags=re.ASCII)
        self.boot = _boot_id()
        self.files = {}              # task id -> its record's path
        self.failed = False          # a record could not be written (said once)
        self.ignored = set()         # names that could not be removed (said once)
        if self.enabled:
            _private(self.path)

    # -- the worker's side ---------------------------------------------------------
    def add(self, task_id, attempt, tree):
        """Record the tree (``processes.Tree``) of a task that just started."""
        if not self.enabled:
            return
        path = os.path.join(self.path, "%s~%s~%d-%d~%d.task" % (
            self.host, self.boot, self.pid, self.start, tree.pgid))
        body = json.dumps({
            "worker": self.pid, "worker_start": self.start, "worker_id": self.identity,
            "task": task_id, "attempt": attempt, "pgid": tree.pgid, "leader": tree.pgid,
            "leader_start": tree.started, "machine": self.machine, "host": self.host,
            "boot": self.boot}).encode()
        try:
            _write(path, body)
        except OSError:
            try:                     # the folder went (a logout empties XDG_RUNTIME_DIR)
                _private(self.path)
                _write(path, body)
            except (OSError, ConfigError) as exc:
                if not self.failed:
                    log.warning("%s: cannot record task %s in %s (%s): if this worker is "
                                "killed, its tasks may outlive it", self.name, task_id,
                                self.path, exc)
                self.failed = True
                return
        self.files[task_id] = path

    def remove(self, task_id):
        """Forget the record of a task that ended (finished, cancelled, timed out)."""
        path = self.files.pop(task_id, None)
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass                 # a leftover only costs a reaper a look once we are gone

    # -- the reaper's side -----------------------------------------------------------
    def reap(self):
        """Kill the trees of the records whose worker is gone, remove those records;
        the number of trees killed. One listdir when no task runs."""
        if not self.enabled:
            return 0
        try:
            names = os.listdir(self.path)
        except OSError:
            return 0
        living = {}                  # (worker pid, start) -> alive
        killed = 0
        for name in names:
            match = _NAME.match(name)
            if match is None:
                self._discard(name, "not a task record")
                continue
            if match["host"] != self.host:
                continue             # another machine's, in a home folder it shares
            worker = int(match["pid"]), int(match["start"])
            if worker not in living:
                living[worker] = match["boot"] == self.boot and _alive(*worker)
            if living[worker]:
                continue
            if match["partial"] or match["boot"] != self.boot:
                _unlink(os.path.join(self.path, name))  # half-written, or of an earlier boot
                continue
            killed += self._reap(name, worker)
        return killed

    def _reap(self, name, worker):
        path = os.path.join(self.path, name)
        try:
            with open(path, "rb") as stream:
                record = _checked(json.loads(stream.read()), worker)
        except FileNotFoundError:
            return 0                 # another reaper was quicker
        except (OSError, ValueError) as exc:
            self._discard(name, "unreadable: %s" % exc)
            return 0
        count = kill_tree(record)
        _unlink(path)
        if not count:
            log.info("%s: task %s of worker %d, which is gone, left nothing running",
                     self.name, record["task"], record["worker"])
            return 0
        log.warning("%s: killed %d process(es) of task %s (attempt %d) left running by "
                    "worker %d of machine %s, which is gone", self.name, count,
                    record["task"], record["attempt"], record["worker"], record["machine"])
        return 1

    def _discard(self, name, why):
        if name in self.ignored:
            return
        path = os.path.join(self.path, name)
        log.warning("%s: removing %s: %s", self.name, path, why)
        if not _unlink(path):
            self.ignored.add(name)


def kill_tree(record):
    """SIGKILL whatever still runs of a recorded tree; how many processes were killed.

    Never a stranger's process. The leader's pid is the task's only while it has
    the recorded start. Its group is the task's when the leader is, or when the
    leader is gone and a member carries the task's marks: a pid is not reused
    while it names a group, but once the group emptied, another process may get
    the pid, make its own group and die, leaving members. Any other process is
    the task's when its environment carries the marks (its worker's routing id
    and task id, inherited from the leader even by processes that left the group).
    """
    marks = {"COMPUTEFARM_WORKER": record["worker_id"], "COMPUTEFARM_TASK_ID": record["task"]}
    killed = set()
    for _ in range(KILL_ROUNDS):
        victims, group = _find(record, marks)
        if group:
            try:
                os.killpg(record["pgid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in victims.values():
            try:
                proc.send_signal(signal.SIGKILL)    # psutil checks the pid was not reused
            except psutil.Error:
                pass
        fresh = set(victims) - killed
        killed.update(victims)
        if not fresh:
            break
    return len(killed)


def _find(record, marks):
    """``({pid: Process}, whether to kill the group)``: the tree's running processes."""
    me = os.getpid()
    leader = process_start(record["leader"])
    ours = leader is not None and leader[0] == record["leader_start"]
    reused = leader is not None and not ours
    victims, members, marked_member = {}, {}, False
    if ours:
        try:
            proc = psutil.Process(record["leader"])
            victims = {p.pid: p for p in [proc] + proc.children(recursive=True)}
        except psutil.Error:
            pass
    for proc in psutil.process_iter():
        try:
            in_group = not reused and os.getpgid(proc.pid) == record["pgid"]
        except OSError:
            continue
        if in_group:
            members[proc.pid] = proc
            marked_member = marked_member or ours or _marked(proc, marks)
        elif proc.pid not in victims and _marked(proc, marks):
            victims[proc.pid] = proc
    group = bool(members) and marked_member
    if group:
        victims.update(members)
    return {pid: p for pid, p in victims.items() if pid != me and running(p)}, group


def _marked(proc, marks):
    try:
        environ = proc.environ()
    except psutil.Error:
        return False
    return all(environ.get(key) == value for key, value in marks.items())


def _alive(pid, start):
    known = process_start(pid)
    return known is not None and known[0] == start and known[1] not in "ZX"


def _checked(record, worker):
    """The record if it has every field, of the right type, for the worker its name says."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    for key, kind in (("worker", int), ("worker_start", int), ("worker_id", str),
                      ("task", str), ("attempt", int), ("pgid", int), ("leader", int),
                      ("machine", str)):
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            raise ValueError("%r missing or not a %s" % (key, kind.__name__))
    if not isinstance(record.get("leader_start"), (int, type(None))):
        raise ValueError("'leader_start' not a number")
    if (record["worker"], record["worker_start"]) != worker:
        raise ValueError("not the record of the worker its name says")
    if record["pgid"] <= 1 or record["leader"] <= 1:
        raise ValueError("no process group of a task")
    return record


def _private(path):
    """Make ``path`` (0700) if it is missing; ConfigError unless it is this user's
    alone: whoever can write a record here can have this user's processes killed."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError("%s: cannot make the task records folder: %s (%s names another)"
                          % (path, exc.strerror, defaults.TASK_RECORDS_ENV)) from None
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("%s: the task records folder must be this user's own and private "
                          "(owner uid %d, mode %o): chmod 700 %s"
                          % (path, info.st_uid, stat.S_IMODE(info.st_mode), path))


def _write(path, body):
    """Write a record whole under a temporary name, then rename it into place."""
    partial = path + ".tmp"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, body)
    finally:
        os.close(fd)
    os.replace(partial, path)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _boot_id():
    """This boot's id, short: a pid or start time of another boot means nothing now."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as stream:
            return stream.read().strip().replace("-", "")[:12]
    except OSError:
        return "0"
