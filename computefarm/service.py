"""The one shape of every long-running part: initialize, loop, shutdown.

``run_service`` owns the stop flag, the signals, crash logging and, for a process
that must not outlive the one that started it (``parent``: a LocalFarm's), the
watch on that parent; a service only implements ``initialize()``,
``loop(now=None)`` (one short iteration that polls for at most
``defaults.POLL_MAX``) and ``shutdown()``. Tests call ``loop(now)``
directly with the time they want.
"""

import logging
import os
import signal

from .exceptions import FarmError

log = logging.getLogger(__name__)


class Service:
    """Base of the TaskManager, the worker, the monitor and the log forwarder."""

    name = "service"

    def __init__(self):
        self.stop_requested = False

    def initialize(self):
        """Open sockets and start what the service needs."""

    def loop(self, now=None):
        """One iteration: poll briefly, handle what arrived, run timers due at ``now``."""
        raise NotImplementedError

    def shutdown(self):
        """Stop cleanly: hand back or stop work, say goodbye, close sockets."""

    def request_stop(self, reason="asked to stop"):
        if not self.stop_requested:
            log.info("%s: %s", self.name, reason)
        self.stop_requested = True


def drain_pipe(fd):
    """Read a non-blocking wake-up pipe empty (its bytes only said: look again)."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def write_ready_file(path, text):
    """Write ``text`` to ``path`` atomically: a reader sees all of it or none.

    Ready files are how a process says it is ready (the TaskManager: its bound
    address; a worker: how often it was welcomed), never a line in a log."""
    tmp = path + ".tmp"
    with open(tmp, "w") as stream:
        stream.write(text)
    os.replace(tmp, path)


def run_service(service, signals=(signal.SIGTERM, signal.SIGINT), parent=None):
    """Run ``service`` until a stop signal, or until process ``parent`` (the one
    that started it) is gone: killed or crashed, it could not stop it. Returns
    the process exit code."""

    def on_signal(signum, _frame):
        service.request_stop("received %s, shutting down" % signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        service.initialize()
        try:
            while not service.stop_requested:
                service.loop()
                if parent is not None and os.getppid() != parent:
                    service.request_stop("the process that started it (pid %d) is gone"
                                         % parent)
        finally:
            service.shutdown()
    except FarmError:
        raise                      # a user's mistake: the command prints one ERROR line
    except Exception:
        log.exception("%s crashed", service.name)
        return 70  # EX_SOFTWARE: a bug, with its traceback above
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
