"""``gcc``: compile and link C (and C++) with the machine's compiler.

Requests:
  ``{"action": "compile", "source": "a.c", "output": "a.o", "flags": ["-O2"], "cwd": ...}``
  ``{"action": "link", "objects": ["a.o", "b.o"], "output": "prog", "flags": [], "libs": ["m"]}``
  ``{"cmd": "gcc -c a.c -o a.o"}`` or ``{"argv": ["gcc", "-c", ...]}``: a whole command line,
  as majordomo sends for the command actions of a ``gcc`` task.
Optional ``compiler`` picks another driver (default: the plugin's, ``gcc``), and
``cwd``, ``env`` as for ``shell``.

Attributes: ``version`` (``12.2.0``), ``target`` (``x86_64-linux-gnu``) and
``platform``, so requests can ask for ``{"version": ">=12"}``. Each diagnostic
line ``file:line:col: error: text`` becomes a record with level, file, line,
column and message (sent with the output lines).
"""

import re
import shutil
import subprocess

from computefarm.exceptions import PluginError
from computefarm.worker.plugin import WorkerPlugin, command_request

_DIAGNOSTIC = re.compile(
    r"^(?P<file>[^:\s][^:]*):(?P<line>\d+):(?:(?P<column>\d+):)?\s*"
    r"(?P<kind>fatal error|error|warning|note):\s*(?P<message>.*)$")
_LEVELS = {"fatal error": "ERROR", "error": "ERROR", "warning": "WARNING", "note": "INFO"}


def _probe(compiler, flag):
    try:
        out = subprocess.run([compiler, flag], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class GccWorker(WorkerPlugin):
    capability = "gcc"
    cache_attributes = ("platform", "compiler", "version", "target")
    default_compiler = "gcc"

    def __init__(self, slots, options=None):
        super().__init__(slots, options)
        self.compiler = self.options.get("compiler", self.default_compiler)
        if shutil.which(self.compiler) is None:
            raise PluginError("the gcc worker needs %r on PATH" % self.compiler)

    def attributes(self):
        attrs = super().attributes()
        attrs["compiler"] = self.compiler
        attrs["version"] = _probe(self.compiler, "-dumpfullversion") or \
            _probe(self.compiler, "-dumpversion") or "unknown"
        attrs["target"] = _probe(self.compiler, "-dumpmachine") or "unknown"
        return attrs

    def command(self, request, task):
        compiler = request.get("compiler", self.compiler)
        flags = _strings(request.get("flags", []), "flags")
        action = request.get("action")
        if action == "compile":
            source = _string(request, "source")
            argv = [compiler, "-c", source, "-o", _string(request, "output")] + flags
        elif action == "link":
            objects = _strings(request.get("objects"), "objects")
            libs = ["-l" + lib for lib in _strings(request.get("libs", []), "libs")]
            argv = [compiler] + objects + ["-o", _string(request, "output")] + flags + libs
        elif "cmd" in request or "argv" in request:
            argv = None     # a whole command line (majordomo's command actions)
        else:
            raise PluginError("gcc request needs action 'compile' or 'link', 'cmd' or 'argv'")
        # Diagnostics in plain text, one per line, whatever the user's terminal.
        env = dict(request.get("env") or {}, GCC_COLORS="", LC_ALL="C")
        generic = dict(request, env=env)
        if argv is not None:
            generic.pop("cmd", None)
            generic["argv"] = argv
        return command_request(generic, task, "gcc")

    def records(self, stream, line):
        match = _DIAGNOSTIC.match(line)
        if match is None:
            return None
        return {"level": _LEVELS[match.group("kind")], "file": match.group("file"),
                "line": int(match.group("line")),
                "column": int(match.group("column") or 0),
                "message": match.group("message")}

    def finish(self, request, outcome):
        detail = dict(outcome.detail or {})
        detail["output"] = request.get("output")
        outcome.detail = detail
        return outcome


def _string(request, key):
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise PluginError("gcc request needs %r (a path)" % key)
    return value


def _strings(value, key):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PluginError("gcc request: %r must be a list of strings" % key)
    return value
