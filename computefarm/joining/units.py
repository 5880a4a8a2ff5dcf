"""Keeping ``farm-service run`` up without root: a systemd user unit, else cron.

Where the user's systemd answers (``systemctl --user``), a unit in
``~/.config/systemd/user`` restarts the supervisor when it fails and starts it at
login, or at boot once ``loginctl enable-linger USER`` was run (``install``
says so when it is not). Elsewhere (containers, minimal systems) a line in the
user's crontab starts it ``@reboot``, and ``install`` starts it now. ``uninstall``
stops it and removes the unit or the line; nothing else was written.

The supervisor writes its pid file (``pid_path``); cron's ``status`` and
``uninstall`` use it, after checking that the pid is still that supervisor.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

from .. import defaults
from ..exceptions import UsageError
from ..hostinfo import live_start
from ..storage.cas import location

UNIT = "computefarm-machine.service"
CRON_TAG = "# computefarm-machine"


def command(config_path):
    """The supervisor's command line."""
    return [sys.executable, "-m", "computefarm.commands", "service", "run", "--config",
            os.path.abspath(config_path)]


def pid_path():
    return os.path.join(location(None, defaults.DATA_ENV, defaults.DATA_DIR), "service.pid")


def pid_line(pid):
    """What the supervisor writes in its pid file: its pid and when it started, so
    a pid the system has given to another process since is never taken for it."""
    return "%d %d\n" % (pid, live_start(pid))


def running_pid():
    """The pid of this user's running supervisor, or None."""
    try:
        with open(pid_path()) as stream:
            pid, started = (int(field) for field in stream.read().split())
    except (OSError, ValueError):
        return None
    return pid if live_start(pid) == started else None


def choose():
    """The way this machine keeps services up: Systemd() when it answers, else Cron()."""
    for way in (Systemd(), Cron()):
        if way.available():
            return way
    raise UsageError("neither systemd (systemctl --user) nor cron (crontab) is available "
                     "here: run `farm-service run` from whatever starts programs at boot")


class Systemd:
    name = "systemd user unit"

    def __init__(self):
        self.path = os.path.expanduser(os.path.join("~/.config/systemd/user", UNIT))

    def available(self):
        return shutil.which("systemctl") is not None and _quiet(
            ["systemctl", "--user", "show-environment"]) == 0

    def unit(self, config_path):
        return "\n".join([
            "[Unit]",
            "Description=ComputeFarm: this machine's workers and monitor",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "ExecStart=%s" % " ".join(shlex.quote(a) for a in command(config_path)),
            "Restart=on-failure",
            "RestartSec=10",
            "RestartPreventExitStatus=2 4",
            "KillMode=mixed",
            "TimeoutStopSec=%d" % (defaults.SUPERVISE_STOP + 10),
            "",
            "[Install]",
            "WantedBy=default.target",
            ""])

    def install(self, config_path):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "w") as stream:
            stream.write(self.unit(config_path))
        _run(["systemctl", "--user", "daemon-reload"])
        _run(["systemctl", "--user", "enable", "--now", UNIT])
        notes = ["installed %s (systemctl --user status %s)" % (self.path, UNIT)]
        user = os.environ.get("USER") or str(os.getuid())
        linger = subprocess.run(["loginctl", "show-user", user, "--property=Linger"],
                                capture_output=True, text=True)
        if linger.returncode != 0 or "Linger=yes" not in linger.stdout:
            notes.append("it starts when you log in; to start it at boot without a login, "
                         "run once: loginctl enable-linger %s" % user)
        return notes

    def uninstall(self):
        if not os.path.exists(self.path):
            return ["no %s was installed" % self.path]
        _quiet(["systemctl", "--user", "disable", "--now", UNIT])
        os.remove(self.path)
        _run(["systemctl", "--user", "daemon-reload"])
        return ["stopped and removed %s" % self.path]

    def status(self):
        if not os.path.exists(self.path):
            return False, "not installed"
        state = subprocess.run(["systemctl", "--user", "is-active", UNIT],
                               capture_output=True, text=True).stdout.strip()
        return True, "installed (%s), %s" % (self.path, state or "unknown")


class Cron:
    name = "crontab @reboot line"

    def available(self):
        return shutil.which("crontab") is not None

    def line(self, config_path, log_path):
        return "@reboot %s >> %s 2>&1 %s" % (" ".join(shlex.quote(a) for a in command(
            config_path)), shlex.quote(log_path), CRON_TAG)

    def install(self, config_path):
        log_path = self.log_path()
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        lines = [line for line in self._read() if CRON_TAG not in line]
        self._write(lines + [self.line(config_path, log_path)])
        notes = ["added an @reboot line to your crontab (crontab -l)"]
        if running_pid() is None:
            with open(log_path, "ab") as stream:
                process = subprocess.Popen(command(config_path), stdin=subprocess.DEVNULL,
                                           stdout=stream, stderr=stream,
                                           start_new_session=True)
            notes.append("started it now (pid %d; its log: %s)" % (process.pid, log_path))
        return notes

    def uninstall(self):
        lines = self._read()
        kept = [line for line in lines if CRON_TAG not in line]
        notes = []
        if len(kept) != len(lines):
            self._write(kept)
            notes.append("removed the @reboot line from your crontab")
        pid = running_pid()
        if pid is not None:
            started = live_start(pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + defaults.SUPERVISE_STOP + 5
            while live_start(pid) == started and time.monotonic() < deadline:
                time.sleep(0.1)            # until that very process is gone
            notes.append("stopped it (pid %d)" % pid)
        if os.path.exists(self.log_path()):
            os.remove(self.log_path())
            notes.append("removed its log %s" % self.log_path())
        return notes or ["nothing was installed"]

    @staticmethod
    def log_path():
        return os.path.join(os.path.dirname(pid_path()), "service.log")

    def status(self):
        installed = any(CRON_TAG in line for line in self._read())
        pid = running_pid()
        return installed, "%s, %s" % ("installed (crontab @reboot)" if installed
                                      else "not installed",
                                      "running (pid %d)" % pid if pid else "not running")

    def _read(self):
        listed = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
        if listed.returncode != 0:
            return []           # "no crontab for USER"
        return listed.stdout.splitlines()

    def _write(self, lines):
        if lines:
            _run(["crontab", "-"], "\n".join(lines) + "\n")
        else:
            _quiet(["crontab", "-r"])


def _run(argv, stdin=None):
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise UsageError("%s failed: %s" % (" ".join(argv), (done.stderr or done.stdout)
                                            .strip().splitlines()[-1:] or "exit %d"
                                            % done.returncode))
    return done.stdout


def _quiet(argv):
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
