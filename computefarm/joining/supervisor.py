"""A machine's farm processes, kept running: its workers and its monitor.

``farm-service run`` (what ``farm-join`` and the installed service start) reads
this machine's entry in farm.yaml and runs one ``farm-worker`` per worker it
lists, and a ``farm-monitor`` unless the entry says ``monitor: false``. A child
that dies is started again after a back-off that doubles up to a cap (and
resets once it has stayed up); a child refused for good (its key revoked,
farm.yaml wrong: exit codes 2 and 4) stops the supervisor with that child's
code, since starting it again cannot help. SIGTERM stops every child by its pid.
"""

import logging
import signal
import subprocess
import sys
import time

from .. import defaults
from ..exceptions import AccessRefused, UsageError
from ..service import Service

log = logging.getLogger(__name__)

# Exit codes of a child that restarting cannot cure (exceptions.py).
FATAL = {2: UsageError, 4: AccessRefused}


class Child:
    """One process the supervisor keeps running."""

    def __init__(self, name, argv):
        self.name = name
        self.argv = argv
        self.process = None
        self.started = 0.0
        self.backoff = defaults.SUPERVISE_BACKOFF
        self.due = 0.0           # when to start it (again)
        self.starts = 0


class Supervisor(Service):
    name = "farm-service"

    def __init__(self, machine, config_path, clock=None):
        super().__init__()
        self.clock = clock or time.monotonic
        self.config_path = config_path
        self.children = []
        self.failure = None      # (exit code, why) once a child is refused for good
        base = [sys.executable, "-m", "computefarm.commands"]
        common = ["--config", config_path, "--machine", machine.name]
        for index, spec in enumerate(machine.workers):
            argv = base + ["worker"] + common
            for capability in spec.capabilities:
                argv += ["--capability", capability]
            if spec.slots:
                argv += ["--slots", str(spec.slots)]
            argv += ["--attr=%s=%s" % item for item in spec.attributes.items()]
            self.children.append(Child("worker-%d" % index, argv))
        if machine.monitor:
            self.children.append(Child("monitor", base + ["monitor"] + common))
        if not self.children:
            raise UsageError("%s: machine %s lists no workers and no monitor: nothing to run"
                             % (config_path, machine.name))

    def loop(self, now=None):
        now = self.clock() if now is None else now
        for child in self.children:
            if child.process is None:
                if now >= child.due:
                    self.start(child, now)
                continue
            code = child.process.poll()
            if code is None:
                if now - child.started > defaults.SUPERVISE_STABLE:
                    child.backoff = defaults.SUPERVISE_BACKOFF
                continue
            child.process = None
            if code in FATAL:
                self.failure = (code, "%s exited with code %d: starting it again cannot help "
                                "(its log says why)" % (child.name, code))
                log.error("farm-service: %s", self.failure[1])
                self.request_stop("a child cannot run")
                return
            log.warning("farm-service: %s exited with code %s; starting it again in %.0f s",
                        child.name, code, child.backoff)
            child.due = now + child.backoff
            child.backoff = min(child.backoff * 2, defaults.SUPERVISE_BACKOFF_MAX)
        time.sleep(defaults.POLL_MAX)

    def start(self, child, now):
        """Its output goes where the supervisor's goes (a terminal, the journal, the
        service log)."""
        child.process = subprocess.Popen(child.argv, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        child.started, child.starts = now, child.starts + 1
        log.info("farm-service: started %s (pid %d)", child.name, child.process.pid)

    def shutdown(self):
        running = [c.process for c in self.children if c.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + defaults.SUPERVISE_STOP
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("farm-service: pid %d did not stop within %.0f s: killed",
                            process.pid, defaults.SUPERVISE_STOP)
                process.kill()
                process.wait()
        if self.failure is not None:
            raise FATAL[self.failure[0]](self.failure[1])
