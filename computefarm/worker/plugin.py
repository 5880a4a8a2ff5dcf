"""Specialised workers: one plugin class per capability, and the registry of them.

A plugin turns a decoded request into a ``Run`` and may read meaning into the
lines it prints (``records``) and the way it ended (``finish``). The built-in
plugins live in the project's ``workers/`` folder, installed as the package
``computefarm_workers``; third parties register theirs in the entry-point group
``computefarm.workers`` (``name = "package.module:Class"``).
"""

import importlib
import logging
import os
import re

from ..exceptions import PluginError
from ..hostinfo import platform_tag
from .runs import ProcessRun

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "computefarm.workers"

BUILTIN = (
    ("shell", "computefarm.worker.plugins.shell:ShellWorker"),
    ("python", "computefarm.worker.plugins.python:PythonWorker"),
    ("gcc", "computefarm.worker.plugins.gcc:GccWorker"),
)


class Task:
    """What a plugin knows of the task it is asked to run."""

    __slots__ = ("id", "attempt", "timeout", "worker")

    def __init__(self, task_id, attempt, timeout, worker):
        self.id = task_id
        self.attempt = attempt
        self.timeout = timeout
        self.worker = worker

    def environ(self, extra=None, base=None):
        """The environment of the task: ``base`` (or ours), ``extra``, and who it is."""
        env = dict(os.environ if base is None else base)
        if extra:
            env.update(extra)
        env["COMPUTEFARM_TASK_ID"] = self.id
        env["COMPUTEFARM_ATTEMPT"] = str(self.attempt)
        env["COMPUTEFARM_WORKER"] = self.worker
        return env


class WorkerPlugin:
    """Base class of every specialised worker.

    Class attributes:
      capability -- the name requests ask for (``meta: {capability: ...}``)
    A subclass implements ``start`` (or ``command`` for a plain process) and
    may override ``attributes``, ``records`` and ``finish``.
    """

    capability = None
    # The attributes that decide a run's outcome besides its request and inputs:
    # results are reused (the action cache) only from a worker with the same.
    # Empty: this plugin's results are never reused.
    cache_attributes = ("platform",)
    # True: the worker runs its tasks through a blobruns.BlobRun, which fetches the
    # blobs a request names (``blob_paths`` in the request the plugin gets) and
    # uploads a result the plugin's run spilled (``Outcome.spilled``).
    takes_blobs = False

    def __init__(self, slots, options=None):
        self.slots = slots
        self.options = dict(options or {})

    def attributes(self):
        """Attributes requests can constrain on; ``platform`` at least."""
        return {"platform": platform_tag()}

    def start(self, request, task, now):
        """A Run for ``request`` (the decoded task body). Raise PluginError if invalid."""
        argv, cwd, env = self.command(request, task)
        try:
            return ProcessRun(task.id, task.attempt, argv, cwd, env, task.timeout, now)
        except OSError as exc:
            raise PluginError("cannot start %s: %s" % (argv[0], exc.strerror)) from None

    def command(self, request, task):
        """``(argv, cwd, env)`` of the process that runs ``request``."""
        raise NotImplementedError

    def records(self, stream, line):
        """A structured log record for one output line (``level``, ``file``, ``line``,
        ``column``, ``message``), or None: the line gets ``default_level``."""
        return None

    def default_level(self, stream):
        """The log level of a plain output line: INFO on both streams (a record's
        ``stream`` tells them apart; a program's stderr holds progress, context and
        compilers' caret lines, not only warnings); lines ``records`` recognises
        carry their own level."""
        return "INFO"

    def finish(self, request, outcome):
        """Adjust the Outcome once the run ended (e.g. add details)."""
        return outcome

    def close(self):
        """Release what the plugin holds (idle processes), at worker shutdown."""


class PathMap:
    """Where this machine mounts what clients see at other paths (farm.yaml path_map).

    Longest prefix first; applied to a request's ``cwd``, ``cmd``, ``argv`` and
    ``env`` values.
    """

    def __init__(self, mapping=None):
        self.pairs = sorted(((s.rstrip("/"), t.rstrip("/")) for s, t in (mapping or {}).items()),
                            key=lambda pair: -len(pair[0]))

    def path(self, text):
        for source, target in self.pairs:
            if text == source or text.startswith(source + "/"):
                return target + text[len(source):]
        return text

    def line(self, text):
        for source, target in self.pairs:
            text = re.sub(re.escape(source) + r"(?=[/\s\"':;]|$)", lambda _: target, text)
        return text

    def apply(self, request):
        if not self.pairs:
            return request
        request = dict(request)
        if isinstance(request.get("cwd"), str):
            request["cwd"] = self.path(request["cwd"])
        if isinstance(request.get("cmd"), str):
            request["cmd"] = self.line(request["cmd"])
        if isinstance(request.get("argv"), list):
            request["argv"] = [self.line(a) if isinstance(a, str) else a
                               for a in request["argv"]]
        if isinstance(request.get("env"), dict):
            request["env"] = {key: self.line(value) if isinstance(value, str) else value
                              for key, value in request["env"].items()}
        return request


def command_request(request, task, name):
    """``(argv, cwd, env)`` from a generic command request.

    ``{"cmd": "a shell line"}`` or ``{"argv": [...]}``, with optional ``cwd``,
    ``env`` (added to the worker's environment) and ``replace_env`` (``env`` is
    the whole environment). Every command-running plugin accepts this form.
    """
    if "argv" in request:
        argv = request["argv"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise PluginError("%s request: 'argv' must be a non-empty list of strings" % name)
    elif isinstance(request.get("cmd"), str):
        argv = ["/bin/sh", "-c", request["cmd"]]
    else:
        raise PluginError("%s request needs 'cmd' (a string) or 'argv' (a list)" % name)
    cwd = request.get("cwd")
    if cwd is not None and not (isinstance(cwd, str) and os.path.isdir(cwd)):
        raise PluginError("%s request: cwd %r is not a directory here" % (name, cwd))
    env = request.get("env") or {}
    if not isinstance(env, dict):
        raise PluginError("%s request: 'env' must be a map" % name)
    base = {} if request.get("replace_env") else None
    return argv, cwd, task.environ({str(k): str(v) for k, v in env.items()}, base=base)


def load_plugin(name):
    """The plugin class registered as ``name`` (built-in or from an entry point)."""
    for builtin, target in BUILTIN:
        if builtin == name:
            return _import(name, target)
    for entry in _entry_points():
        if entry.name == name:
            return _import(name, entry.value)
    known = sorted({b for b, _ in BUILTIN} | {e.name for e in _entry_points()})
    raise PluginError("no worker plugin for capability %r (known: %s)" % (name, ", ".join(known)))


def _entry_points():
    from importlib.metadata import entry_points
    eps = entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, ()))


def _import(name, target):
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError("worker plugin %r (%s) cannot be loaded: %s" % (name, target, exc)) \
            from None
    if not (isinstance(cls, type) and issubclass(cls, WorkerPlugin)):
        raise PluginError("worker plugin %r (%s) is not a WorkerPlugin" % (name, target))
    return cls
