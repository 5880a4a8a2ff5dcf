"""The client library: submit tasks to the farm from any Python program.

``Client.submit(capability, request, ...)`` returns a ``concurrent.futures.Future``
of a ``TaskResult``; ``FarmExecutor`` is a real ``concurrent.futures.Executor``
running Python callables on ``python`` workers. One background thread owns the
socket: it batches submissions, resubmits what is outstanding when the
TaskManager restarts, and resolves each future exactly once.
"""

import collections
import itertools
import logging
import os
import threading
import time
from concurrent.futures import Future, TimeoutError

import zmq

from .. import defaults, localkeys
from ..configcheck import check_address
from ..exceptions import AccessRefused, FarmUnreachable, UsageError
from ..hostinfo import local_user
from ..wire import protocol
from ..wire.link import peer_id
from ..wire.schemas import MAX_ID
from . import report
from .batches import Batch, Batches, batch_spec, check_commands, new_batch_id, resolve
from .clientthread import ClientThread
from .files import Files
from .tasks import TaskFuture, _Pending
from .timeline import Timeline
from .timeline import paths as timeline_paths

log = logging.getLogger(__name__)



class Client(ClientThread):
    """A connection to the TaskManager at ``address`` and the tasks sent through it.

    ``connect_timeout``: seconds to wait for the TaskManager's welcome before
    FarmUnreachable is raised (None: do not wait; tasks wait for it instead).
    ``on_notice(level, code, text, ids)`` hears the TaskManager's notices (``code``
    is a ``wire.protocol.Code``, e.g. ``no-capability``: that no
    worker offers a capability yet); by default they are logged.
    ``nice``: this client's tasks get only the slots no other run wants.
    ``user``: whom the tasks are for when the key may say (an admin key, the
    local farm's); else the TaskManager takes the key's name. Default: the
    local user name.
    ``timeline``: keep each finished task's times and where it ran, for
    ``write_report`` (off by default: it holds every result).
    """

    def __init__(self, address, connect_timeout=10.0, on_notice=None, context=None,
                 clock=time.monotonic, curve=None, nice=False, user=None, timeline=False):
        self.address = check_address(address, "the TaskManager's address")
        self.nice = bool(nice)
        self.user = user or local_user()
        self.groups = {}               # work spec name -> (priority, weight)
        self.timeline = Timeline() if timeline else None
        # (public, secret, TaskManager public) keys; None: this user's local set when
        # the address is loopback (localkeys), else none; False: none
        self.curve = curve
        if curve is None:
            localkeys.peer_curve(address)      # a problem with the local set: said now
        self.context = context or zmq.Context.instance()
        self.clock = clock
        self.identity = peer_id("client")
        self.on_notice = on_notice or _log_notice
        self.stats = {"submitted": 0, "results": 0, "duplicate_results": 0, "resubmitted": 0}
        self.refused = collections.Counter()   # ERROR code -> messages the TaskManager refused
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._incoming = []            # task ids submitted, not yet handed to the thread
        self._cancels = []
        self._status = []              # Futures waiting for the TaskManager's STATE
        self._logs = []                # LOG records waiting to be sent
        self._pending = {}             # task id -> _Pending
        self.files = Files(self._wake)  # blobs to and from the TaskManager's store
        self.batch_requests = Batches(self._wake)   # batches kept by the TaskManager
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._closing = False
        self._woken = False
        self._status_asked = False
        self._report = None            # what status(report=) says of this client
        self._logs_sent = 0.0
        self._connected = threading.Event()
        self._error = None
        self._refused = None             # why the TaskManager will not let this key in
        self._away = None                # (until when, wait, why): the TaskManager said goodbye
        self._thread = threading.Thread(target=self._run, name="farm-client", daemon=True)
        self._thread.start()
        if connect_timeout is not None and self._connected.wait(connect_timeout) \
                and self._refused:
            self.close(wait=False)
            raise AccessRefused(self._refused)
        if connect_timeout is not None and not self._connected.is_set():
            self.close(wait=False)
            raise FarmUnreachable("no TaskManager answers at %s (waited %gs)%s"
                                  % (address, connect_timeout,
                                     "; is this key authorized, and keys.server the "
                                     "TaskManager's?" if curve else ""))

    # -- the caller's side -------------------------------------------------------
    def submit(self, capability, request, requires=None, priority=0, timeout=None,
               max_attempts=None, on_output=None, on_start=None, estimated_load=None,
               label=None, group=None, action=None, speculate=False, _settle=None):
        """Queue a task; returns a TaskFuture of its TaskResult.

        ``request`` is the plugin's request map (see workers/); ``requires`` maps
        attribute names to values or comparisons (``{"version": ">=12"}``);
        ``on_output(stream, line)`` is called from the client thread per line;
        ``on_start(host)`` each time a worker is given the task;
        ``estimated_load``: cores' worth of CPU the task uses (placement, default 1);
        ``label``: a name for people, shown in logs and status (e.g. the doit task).
        ``group``: the work spec it belongs to (``group()``; default: this client's).
        ``action``: the digest naming what decides its outcome (client/staging.py,
        ``ProjectFiles.action``): a task of an action done before is answered from
        the TaskManager's action cache (its result's ``code`` is ``cache-hit``).
        ``speculate``: the task may run twice at once: a straggler gets a second
        copy on another machine while slots are idle; the first result is its
        result (``TaskResult.copies`` 2, ``winner`` 1 or 2).
        ``_settle(future, result item)`` (for FarmExecutor): resolves the future
        itself, so a task needs no second future to turn its result into a value.
        """
        if not isinstance(capability, str) or not capability:
            raise UsageError("submit: capability must be a non-empty string")
        if requires is not None and not all(isinstance(v, str) for v in requires.values()):
            raise UsageError("submit: requires must map names to strings")
        if self._refused:
            raise AccessRefused(self._refused)
        if self._closing or self._error is not None:
            raise FarmUnreachable(self._error or "the client is closed")
        task_id = "%s:%d" % (self.identity, next(self._ids))
        spec = {"id": task_id, "capability": capability, "body": protocol.pack_body(request),
                "priority": int(priority)}
        if requires:
            spec["requires"] = dict(requires)
        if timeout is not None:
            spec["timeout"] = float(timeout)
        if max_attempts is not None:
            spec["max_attempts"] = int(max_attempts)
        if on_output is not None:
            spec["stream"] = True
        if on_start is not None:
            spec["track"] = True
        if estimated_load is not None:
            spec["load"] = float(estimated_load)
        if label is not None:
            spec["label"] = str(label)
        if action is not None:
            spec["action"] = action
        if speculate:
            spec["speculate"] = True
        if group is not None:
            if group not in self.groups:
                raise UsageError("submit: group %r was not declared with Client.group()"
                                 % (group,))
            spec["group"] = group
            spec["group_priority"], spec["group_weight"] = self.groups[group]
        future = TaskFuture(self, task_id)
        with self._lock:
            self._pending[task_id] = _Pending(
                future, spec, on_output, on_start, _settle,
                time.time() if self.timeline is not None else None)
            self._incoming.append(task_id)
            self.stats["submitted"] += 1
        self._wake()
        return future

    def upload(self, files, hold=False):
        """Make sure the TaskManager's store has ``files``, each ``(digest, size,
        path or bytes)`` (``storage.cas.digest_file``); a Future resolved once it
        has, or failed with StorageError. ``hold``: while this client is
        connected, the store evicts them only when nothing else makes room (for
        files later tasks will read)."""
        return self.files.upload(files, hold)

    def missing(self, digests, hold=False):
        """Which of ``digests`` the TaskManager's store lacks: a Future of a set.
        ``hold``: as ``upload``'s, for those it has (and those that come later)."""
        return self.files.missing(digests, hold)

    def download(self, digest, size, path, mode=0o644):
        """Fetch blob ``digest`` (``size`` bytes) from the TaskManager's store to
        ``path``, written atomically with ``mode``; a Future of the path."""
        return self.files.download(digest, size, path, mode)

    def submit_batch(self, commands, replicas=1, capability="shell", timeout=None, **settings):
        """Hand the TaskManager a batch: each of ``commands`` (shell lines, with
        placeholders such as ``{replica}`` and ``{token}``: ``placeholders``) run
        ``replicas`` times. Returns its ``Batch`` once every command is in the
        TaskManager's database: the batch then needs no client (close this one,
        attach later with ``batch(id)``). ``settings``: requires, priority,
        weight, task_timeout (each task's), max_attempts, speculate, label, cwd,
        env. A command that cannot run is refused (UsageError) before anything
        is sent. ``timeout``: seconds to wait for the TaskManager to take it all
        (default: a minute, plus a second per 5,000 commands)."""
        commands = list(commands)
        if not commands:
            raise UsageError("submit_batch: no commands")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise UsageError("submit_batch: replicas must be a whole number of at least 1")
        check_commands(commands)
        task_timeout = settings.pop("task_timeout", None)
        spec = batch_spec(capability, timeout=task_timeout, **settings)
        batch_id = new_batch_id()
        self._check_open()
        future = self.batch_requests.submit(batch_id, spec, commands, replicas)
        resolve(future, 60.0 + len(commands) / 5000 if timeout is None else timeout,
                self.address)
        return Batch(self, batch_id)

    def batch(self, batch_id):
        """The batch ``batch_id`` (submitted by this user, from any client): checked
        with the TaskManager (BatchError when it knows none of that id)."""
        self._batch_query("status", batch_id)
        return Batch(self, batch_id)

    def batches(self, timeout=30.0):
        """This user's batches the TaskManager knows (an admin key: everyone's)."""
        return self._batch_query("list", timeout=timeout)["batches"]

    def _batch_query(self, what, batch_id=None, after=None, timeout=30.0):
        self._check_open()
        return resolve(self.batch_requests.query(what, batch_id, after), timeout, self.address)

    def _check_open(self):
        if self._refused:
            raise AccessRefused(self._refused)
        if self._closing or self._error is not None:
            raise FarmUnreachable(self._error or "the client is closed")

    def group(self, name, priority=0, weight=1.0):
        """Declare a work spec: tasks submitted with ``group=name`` share this user's
        slots as one run. Among a user's runs the highest ``priority`` is served
        first; runs of equal priority share by ``weight``. Calling again changes
        them (for tasks submitted from then on)."""
        if not isinstance(name, str) or not name or len(name) > MAX_ID:
            raise UsageError("group: the name must be a non-empty string of at most %d "
                             "characters" % MAX_ID)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise UsageError("group %s: priority must be a whole number" % name)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not 0.001 <= weight <= 1e6:
            raise UsageError("group %s: weight must be a number from 0.001 to 1000000" % name)
        self.groups[name] = (priority, float(weight))

    def write_report(self, path):
        """Write the HTML report of the tasks finished so far (``Client(...,
        timeline=True)``) to ``path``, and their timeline in the Chrome trace format
        beside it (``.json``); ``(report, trace)`` paths."""
        if self.timeline is None:
            raise UsageError("write_report: this client keeps no timeline (Client(..., "
                             "timeline=True))")
        trace, page = timeline_paths(path, None)
        self.timeline.write(trace)
        report.write(self.timeline, {}, "ComputeFarm batch of %d task(s) (client %s)"
                     % (len(self.timeline.actions), self.identity), page)
        return page, trace

    def log(self, logger, level, msg, **fields):
        """Send a log record to the farm's log viewer (and records file).

        ``logger`` places it in the viewer's tree (``majordomo.project.task``);
        ``fields`` are extra columns (strings and numbers).
        """
        record = {"logger": logger, "level": level, "msg": msg, "created": time.time(),
                  "fields": fields}
        with self._lock:            # sent with the thread's next turn (within 0.1 s)
            if len(self._logs) < defaults.CLIENT_LOG_BACKLOG:
                self._logs.append(record)

    def status(self, timeout=10.0, report=None):
        """The TaskManager's view of the farm (what farm-status shows), as a dict.
        ``report`` (a map): what this client says of itself in farm-status (a
        factory of pilots: its pilots and its last error); kept until the next."""
        future = Future()
        with self._lock:
            if report is not None:
                self._report = report
            self._status.append(future)
        self._wake()
        try:
            return future.result(timeout)
        except TimeoutError:
            raise FarmUnreachable("the TaskManager at %s did not answer a status request"
                                  % self.address) from None

    def labels(self, ids):
        """The label each task of ``ids`` was submitted with (its id if it had none
        or is no longer outstanding): to name tasks of a NOTICE to people."""
        with self._lock:
            pending = [self._pending.get(task_id) for task_id in ids]
        return [(p.spec.get("label") if p is not None else None) or task_id
                for p, task_id in zip(pending, ids)]

    def cancel(self, future):
        """Stop the task on the farm; its future then resolves with status ``cancelled``
        once its worker has stopped it (unlike ``future.cancel()``, which returns
        at once)."""
        if not future.done():
            self._request_cancel(future.task_id)

    def close(self, wait=True):
        """Say goodbye (the TaskManager cancels what is left) and stop the thread."""
        if self._closing:
            return
        self._closing = True
        self._wake()
        if wait:
            self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _request_cancel(self, task_id):
        with self._lock:
            self._cancels.append(task_id)
        self._wake()

    def _wake(self):
        if self._woken:
            return               # the thread has not run since the last wake-up
        self._woken = True
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass


def _log_notice(level, code, text, ids):
    log.log(logging.ERROR if level == "error" else logging.WARNING, "TaskManager: %s", text)
