"""The factory's loop: every ``interval``, read the demand, count the pilots,
start or cancel some (policy.py), and say how it went in farm-status.

It talks to the TaskManager as a client (STATUS, with its report). A failing
engine (a command missing or refusing) or an unreachable TaskManager is logged
as one ERROR line, shown in farm-status, and tried again after a wait that
doubles up to ``FACTORY_BACKOFF_MAX``; the factory never gives up and never
takes the TaskManager down with it.
"""

import logging
import os
import sys
import time

from .. import defaults
from ..client import Client
from ..exceptions import AccessRefused, FarmError
from ..service import Service
from .backends import PENDING, RUNNING, FactoryError
from .policy import plan, waiting_for

log = logging.getLogger(__name__)


def pilot_argv(settings, address, config_path):
    """The farm-worker command line every pilot runs (the backend adds --machine)."""
    argv = [settings.python or sys.executable, "-m", "computefarm.commands", "worker",
            "--taskmanager", address, "--slots", str(settings.slots),
            "--idle-exit", "%g" % settings.idle_exit]
    if config_path:
        argv += ["--config", config_path]
    for capability in settings.capabilities:
        argv += ["--capability", capability]
    for key, value in sorted(settings.attributes.items()):
        argv += ["--attr", "%s=%s" % (key, value)]
    if settings.lifetime:
        argv += ["--lifetime", "%g" % settings.lifetime]
    if settings.max_tasks:
        argv += ["--max-tasks", str(settings.max_tasks)]
    return argv


class Factory(Service):
    name = "farm-factory"

    def __init__(self, settings, backend, address, curve, argv, clock=time.monotonic):
        super().__init__()
        self.settings = settings
        self.backend = backend
        self.address = address
        self.curve = curve
        self.argv = argv
        self.clock = clock
        self.client = None
        self.next_check = 0.0
        self.backoff = settings.interval
        self.error = None            # the last failure, until a round succeeds
        self.started = 0             # pilots started, in all
        self.cancelled = 0
        self.pilots = {}             # the engine's answer last round

    def initialize(self):
        self.client = Client(self.address, curve=self.curve, on_notice=lambda *args: None)
        log.info("farm-factory %s: %s pilots, %d to %d, offering %s, every %g s",
                 self.settings.name, self.backend.name, self.settings.min, self.settings.max,
                 ", ".join(self.settings.capabilities), self.settings.interval)

    def loop(self, now=None):
        now = self.clock() if now is None else now
        if now < self.next_check:
            time.sleep(min(defaults.POLL_MAX, self.next_check - now))
            return
        self.round(now)

    def round(self, now):
        status = None
        try:
            status = self.client.status(defaults.FACTORY_STATUS_TIMEOUT, self.report())
            self.pilots = self.backend.pilots()
            start, cancel = plan(status.get("demand") or [], self.pilots, self.settings)
            if start:
                ids = self.backend.submit(start, self.argv, now)
                self.started += len(ids)
                self.pilots.update((pilot, PENDING) for pilot in ids)
                log.info("farm-factory %s: started %d pilot(s) (%s): %d task(s) wait",
                         self.settings.name, len(ids), ", ".join(ids),
                         waiting_for(status.get("demand") or [], self.settings))
            if cancel:
                self.backend.cancel(cancel)
                self.cancelled += len(cancel)
                for pilot in cancel:
                    self.pilots.pop(pilot, None)
                log.info("farm-factory %s: cancelled %d waiting pilot(s): nothing waits",
                         self.settings.name, len(cancel))
        except AccessRefused:
            raise                    # its key is not let in: trying again cannot help
        except (FactoryError, FarmError) as exc:
            if str(exc) != self.error:
                log.error("farm-factory %s: %s (trying again in %g s)", self.settings.name,
                          exc, self.backoff)
            self.error = str(exc)
            self.next_check = now + self.backoff
            self.backoff = min(self.backoff * 2, defaults.FACTORY_BACKOFF_MAX)
            return
        if self.error is not None:
            log.info("farm-factory %s: working again", self.settings.name)
        self.error, self.backoff = None, self.settings.interval
        self.next_check = now + self.settings.interval

    def report(self):
        """What farm-status shows of this factory."""
        counts = {PENDING: 0, RUNNING: 0}
        for state in self.pilots.values():
            counts[state] += 1
        return {"factory": self.settings.name, "backend": self.backend.name,
                "min": self.settings.min, "max": self.settings.max,
                "pending": counts[PENDING], "running": counts[RUNNING],
                "started": self.started, "cancelled": self.cancelled,
                "error": self.error, "pid": os.getpid()}

    def shutdown(self):
        try:
            self.backend.close()
        finally:
            if self.client is not None:
                self.client.close()
