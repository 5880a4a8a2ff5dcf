"""``shell``: run a command line (through /bin/sh) or an argv list.

Request: ``{"cmd": "make -j2"}`` or ``{"argv": ["make", "-j2"]}``, with optional
``cwd`` (a directory on the worker) and ``env`` (variables added to the worker's
environment, or the whole environment with ``"replace_env": true``). The task id and attempt are in ``COMPUTEFARM_TASK_ID`` and
``COMPUTEFARM_ATTEMPT`` so a rerun's outputs never collide.
"""

import subprocess

from computefarm.worker.plugin import WorkerPlugin, command_request


def _shell_version():
    try:
        out = subprocess.run(["/bin/sh", "-c", "echo ${BASH_VERSION:-posix}"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "posix"


class ShellWorker(WorkerPlugin):
    capability = "shell"
    cache_attributes = ("platform", "shell")

    def attributes(self):
        attrs = super().attributes()
        attrs["shell"] = _shell_version()
        return attrs

    def command(self, request, task):
        return command_request(request, task, "shell")
