"""``shell``: run a command line (through /bin/sh) or an argv list.

Request: ``{"cmd": "make -j2"}`` or ``{"argv": ["make", "-j2"]}``, with optional
``cwd`` (a directory on the worker) and ``env`` (variables added to the worker's
environment). The task id and attempt are in ``COMPUTEFARM_TASK_ID`` and
``COMPUTEFARM_ATTEMPT`` so a rerun's outputs never collide.
"""

import os
import subprocess

from computefarm.exceptions import PluginError
from computefarm.plugins import WorkerPlugin


def _shell_version():
    try:
        out = subprocess.run(["/bin/sh", "-c", "echo ${BASH_VERSION:-posix}"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "posix"


class ShellWorker(WorkerPlugin):
    capability = "shell"

    def attributes(self):
        attrs = super().attributes()
        attrs["shell"] = _shell_version()
        return attrs

    def command(self, request, task):
        if "argv" in request:
            argv = request["argv"]
            if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
                raise PluginError("shell request: 'argv' must be a non-empty list of strings")
        elif isinstance(request.get("cmd"), str):
            argv = ["/bin/sh", "-c", request["cmd"]]
        else:
            raise PluginError("shell request needs 'cmd' (a string) or 'argv' (a list)")
        cwd = request.get("cwd")
        if cwd is not None and not (isinstance(cwd, str) and os.path.isdir(cwd)):
            raise PluginError("shell request: cwd %r is not a directory here" % (cwd,))
        env = request.get("env") or {}
        if not isinstance(env, dict):
            raise PluginError("shell request: 'env' must be a map")
        return argv, cwd, task.environ({str(k): str(v) for k, v in env.items()})
