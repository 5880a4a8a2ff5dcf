"""majordomo's doit runner: the one module, with runcommand.py, that relies on
doit's internals.

doit is pinned at 0.37.0 in pyproject.toml for them. What this one takes from
doit: the ``Runner`` class whose ``run_tasks`` is replaced by an event loop that
keeps as many tasks in flight as the farm takes, and the way ``CmdAction`` and
``PythonAction`` turn their results into ``TaskFailed``/``TaskError`` (mirrored
in ``_cmd_outcome`` and ``_python_outcome``). Up-to-date checks, getargs, file
dependencies and the database all stay in this process, exactly as in doit.
"""

import os
import queue
import time
from collections import deque

from doit.action import PythonAction
from doit.exceptions import TaskError, TaskFailed
from doit.runner import Runner

from .. import defaults, pickling
from ..exceptions import FarmError, FarmUnreachable
from ..hostinfo import machine_id
from ..wire.protocol import Code
from .placement import Placement


class Job:
    """One task being executed on the farm, an action at a time."""

    __slots__ = ("node", "task", "placement", "index", "future", "hosts", "machines",
                 "ran", "submitted", "restaged")

    def __init__(self, node, placement):
        self.node = node
        self.task = node.task
        self.placement = placement
        self.index = 0
        self.future = None
        self.hosts = []
        self.machines = set()         # where its actions ran
        self.ran = 0.0                # seconds its actions ran (not queued)
        self.submitted = None         # when its current action was sent (wall time)
        self.restaged = False         # its files were sent again once (the store lost one)


class FarmRunner(Runner):
    """doit's Runner with ``run_tasks`` replaced: actions run on farm workers.

    ``session`` provides ``client`` (a computefarm Client), ``progress`` (told of
    each event) and ``project`` (the directory whose modules ship by value).
    """

    def __init__(self, dep_manager, reporter, continue_, always_execute, stream, session):
        super().__init__(dep_manager, reporter, continue_, always_execute, stream)
        self.session = session
        self.done = queue.Queue()
        self.jobs = {}
        self.here = machine_id()

    def run_tasks(self, task_dispatcher):
        generator = task_dispatcher.generator
        to_send = deque()
        exhausted = False
        try:
            while True:
                while not exhausted and not self._stop_running:
                    try:
                        node = generator.send(to_send.popleft() if to_send else None)
                    except StopIteration:
                        exhausted = True
                        break
                    if node == "hold on":
                        if not to_send:
                            break
                        continue
                    if self.select_task(node, task_dispatcher.tasks):
                        self._start(node)
                    else:
                        to_send.append(node)
                if not self.jobs and (exhausted or self._stop_running or not to_send):
                    break
                if self.jobs:
                    job, result, error = self._next_done()
                    finished = self._advance(job, result, error)
                    if finished:
                        to_send.append(job.node)
        except KeyboardInterrupt:
            self._interrupt()
            raise

    def select_task(self, node, tasks_dict):
        selected = super().select_task(node, tasks_dict)
        if node.run_status == "up-to-date":
            self.session.progress.up_to_date(node.task.name, counted=bool(node.task.actions))
        return selected

    def _next_done(self):
        while True:
            try:
                return self.done.get(timeout=0.5)
            except queue.Empty:
                self.session.progress.refresh()
                self.session.check()

    # -- one task --------------------------------------------------------------
    def _start(self, node):
        task = node.task
        if task.teardown:
            self.teardown_list.append(task)
        self.reporter.execute_task(task)
        task.executed = True
        task.init_options()
        job = Job(node, Placement(task))
        if not task.actions:
            self.jobs[id(job)] = job
            self.done.put((job, None, None))
            return
        self._submit(job)

    def _submit(self, job):
        action = job.task.actions[job.index]
        capability = job.placement.capability_of(action)
        try:
            request = self._request(job.task, action)
        except Exception as exc:                       # expansion failed, as in doit
            self.jobs[id(job)] = job
            self.done.put((job, None, TaskError("CmdAction Error creating command string",
                                                exc)))
            return
        files, remote = self.session.files, self.session.remote
        requires = job.placement.requires if capability == job.placement.capability else None
        cache_as = None
        try:
            if files is not None:
                request = files.stage(request, job.task.file_dep, job.task.targets,
                                      narrow=job.placement.inputs, remote=remote)
                if job.placement.cache and job.task.targets and \
                        not isinstance(action, PythonAction):   # a pickle names no outcome
                    cache_as = files.action(capability, request, requires)
            elif remote is not None:   # it reads the project itself: the farm's files land
                remote.land(self.session.client, job.task.file_dep)
        except FarmError as exc:
            self.jobs[id(job)] = job
            self.done.put((job, None, TaskError("farm: staging its files: %s" % exc)))
            return
        out, err = self.stream._get_out_err(job.task.verbosity)
        progress = self.session.progress
        on_output = _live_writer(out and progress.writer(out), err and progress.writer(err)) \
            if (out or err) else None
        name = job.task.name
        future = self.session.client.submit(
            capability, request, requires=requires, priority=job.placement.priority,
            label=name,
            timeout=job.placement.timeout, max_attempts=job.placement.max_attempts,
            on_output=on_output, estimated_load=job.placement.estimated_load, action=cache_as,
            speculate=job.placement.speculate,
            on_start=lambda host, name=name: self.session.progress.started(name, host))
        job.future = future
        job.submitted = time.time()
        self.jobs[id(job)] = job
        self.session.progress.submitted(job.task.name)
        future.add_done_callback(lambda f, job=job: self.done.put((job, f, None)))

    def _request(self, task, action):
        cwd = os.getcwd()
        if isinstance(action, PythonAction):
            self.session.ship_by_value(action.py_callable)
            payload = pickling.cloudpickle().dumps((action.py_callable, list(action.args),
                                         action._prepare_kwargs()))
            request = {"payload": payload, "cwd": cwd}
            origin = pickling.origin(action.py_callable)
            if origin is not None:            # tracebacks name dodo.py, not <dynamic-code>
                request["origin"] = origin
            return request
        command = action.expand_action()
        request = {"cwd": action.pkwargs.get("cwd") or cwd}
        if isinstance(command, list):
            request["argv"] = [str(part) for part in command]
        else:
            request["cmd"] = command
        env = dict(action.pkwargs["env"]) if "env" in action.pkwargs else None
        if action.buffering:
            env = env if env is not None else {}
            env["PYTHONUNBUFFERED"] = "1"
        if env is not None:
            request["env"] = env
            request["replace_env"] = "env" in action.pkwargs
        return request

    def _advance(self, job, future, error):
        """One action of ``job`` ended; True once the whole task is processed."""
        task = job.task
        if error is None and future is not None:
            result = None
            if future.cancelled():
                error = TaskError("cancelled")
            else:
                try:
                    result = future.result()
                except FarmUnreachable as exc:
                    error = TaskError("the farm went away: %s" % exc)
            lost = self._lost_inputs(job, result) if result is not None else None
            if result is not None and lost is None and self._restage(job, result):
                return False
            if result is not None:
                job.hosts.append(result.host if result.code != Code.CACHE_HIT else "")
                job.machines.add(result.machine)
                job.ran += result.duration or 0.0
                self.session.timeline.add(task.name, job.submitted, result)
                self.session.progress.ran(task.name, result)
                action = task.actions[job.index]
                error = lost or self._fetch(job, result) or self._apply(action, result)
                if error is None:
                    task.result = action.result
                    task.values.update(action.values)
                    job.index += 1
                    if job.index < len(task.actions):
                        self._submit(job)
                        return False
        del self.jobs[id(job)]
        if error is None:       # staged: the outputs are here already, no filesystem lags
            self._check_targets(task, set() if self.session.files is not None
                                else job.machines - {self.here})
        self.session.progress.finished(task.name, error is None, job.hosts, job.ran,
                                       counted=bool(task.actions),
                                       why=_first_line(error) if error is not None else None)
        self.process_task_result(job.node, error)
        return True

    def _restage(self, job, result):
        """A task whose worker found a blob gone from the store (evicted since it was
        sent): the files go again and the task is sent again, once. True if so."""
        files = self.session.files
        if result.code != Code.STAGING or Code.MISSING not in (result.error or "") or \
                files is None or job.restaged:
            return False
        job.restaged = True
        try:
            files.refresh()
        except FarmError:
            return False            # the result's own error says what went wrong
        self._submit(job)
        return True

    def _lost_inputs(self, job, result):
        """A TaskError naming the inputs left on the farm that a staged task found
        gone from the store (``RemoteOutputs.lost``), or None. Sending the
        project again would not bring them back."""
        remote = self.session.remote
        if remote is None or result.code != Code.STAGING or \
                Code.MISSING not in (result.error or ""):
            return None
        lost = remote.lost(job.task.file_dep)
        if not lost:
            return None
        return TaskError("farm: %s left the TaskManager's store during the run: it had to "
                         "evict blobs runs held, being too small for them (see farm-status); "
                         "the next run makes %s again" % (
                             ", ".join("%s (made by %s)" % item for item in lost),
                             "them" if len(lost) > 1 else "it"))

    def _fetch(self, job, result):
        """A staged task's outputs, written into the project (or left on the farm,
        ``--download toplevel``); a TaskError if they cannot be."""
        if not result.outputs or result.status != "ok":
            return None
        remote = self.session.remote
        try:
            if self.session.leaves_remote(job.task.name):
                remote.record(job.task.name, result.outputs)   # a bad path: StorageError
                return None
            self.session.files.fetch(result)
        except FarmError as exc:
            return TaskError("farm: fetching its outputs: %s" % exc)
        if remote is not None:
            remote.forget([entry["path"] for entry in result.outputs])
        return None

    def _apply(self, action, result):
        out = "".join(line + "\n" for line in result.stdout)
        err = "".join(line + "\n" for line in result.stderr)
        action.out, action.err = out, err
        if result.status in ("timeout", "lost", "cancelled", "error"):
            # a lost task's error says where and why (its workers, their fate)
            return TaskError("farm: task %s%s: %s" % (
                result.status, " on %s" % result.host if result.host else "", result.error))
        if isinstance(action, PythonAction):
            return _python_outcome(action, result)
        return _cmd_outcome(action, result, out, err)

    def _check_targets(self, task, elsewhere):
        """As doit, a task whose actions succeeded succeeded, targets or not (doit
        runs it again next time, as a target is missing); majordomo says so. When
        it ran on other machines, its targets get a while to appear here (a
        shared filesystem may lag)."""
        deadline = time.monotonic() + (defaults.TARGET_WAIT if elsewhere else 0.0)
        remote = self.session.remote
        missing = [t for t in task.targets if not os.path.exists(t) and
                   (remote is None or remote.get(t) is None)]
        while missing and time.monotonic() < deadline:
            time.sleep(0.05)
            missing = [t for t in missing if not os.path.exists(t)]
        if missing:
            self.session.progress.note(
                "task '%s' succeeded but did not create its target %r%s (as doit, it is "
                "done, and runs again next time)" % (task.name, missing[0], (
                    " on this machine within %gs" % defaults.TARGET_WAIT if elsewhere
                    else "")))

    # -- stopping ----------------------------------------------------------------
    def _cancel_running(self, why):
        """Cancel every task in flight and wait until the workers confirm."""
        for job in list(self.jobs.values()):
            if job.future is not None:
                self.session.client.cancel(job.future)
        deadline = time.monotonic() + defaults.CANCEL_WAIT
        while self.jobs and time.monotonic() < deadline:
            try:
                job, _, _ = self.done.get(timeout=0.2)
            except queue.Empty:
                continue
            self.jobs.pop(id(job), None)
            self.dep_manager.remove_success(job.task)

    def _interrupt(self):
        self.session.progress.note("interrupted: stopping %d remote task(s)" % len(self.jobs))
        self._cancel_running("interrupted")


def _first_line(error):
    """What a doit TaskError or TaskFailed says, on one line (for the log viewer)."""
    text = error.get_msg() if hasattr(error, "get_msg") else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _live_writer(out, err):
    def write(stream, line):
        target = err if stream == "stderr" else out
        if target is not None:
            target.write(line + "\n")
    return write


def _cmd_outcome(action, result, out, err):
    """What CmdAction.execute returns for this exit code (doit 0.37 rules)."""
    action.result = out + err
    code = result.exit_code if result.exit_code is not None else 255
    command = action.expand_action()
    if code > 125:
        return TaskError("Command error: '%s' returned %s" % (command, code))
    if code != 0:
        return TaskFailed("Command failed: '%s' returned %s" % (command, code))
    if action.save_out:
        action.values[action.save_out] = out
    return None


def _python_outcome(action, result):
    """What PythonAction.execute returns for the callable's outcome (doit 0.37 rules)."""
    if result.status != "ok":
        error = TaskError("PythonAction Error")
        error.traceback = [result.error or ""]
        return error
    value = pickling.cloudpickle().loads(result.value)
    if value is False:
        return TaskFailed("Python Task failed: '%s' returned %s" % (action.py_callable, value))
    if value is True or value is None:
        return None
    if isinstance(value, str):
        action.result = value
        return None
    if isinstance(value, dict):
        action.values = value
        action.result = value
        return None
    if isinstance(value, (TaskFailed, TaskError)):
        return value
    return TaskError("Python Task error: '%s'. It must return:\nFalse for failed task.\n"
                     "True, None, string or dict for successful task\nreturned %s (%s)"
                     % (action.py_callable, value, type(value)))
