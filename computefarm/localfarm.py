"""A farm on this machine alone: a TaskManager and workers as child processes.

``with LocalFarm(["shell", "python"]) as farm:`` gives ``farm.address`` to
connect clients to; everything it started is stopped (by pid) on exit. It binds
127.0.0.1 on a free port only. majordomo's embedded farm and the examples use it.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

from .exceptions import FarmError

START_TIMEOUT = 20.0


class LocalFarm:
    def __init__(self, capabilities, slots=None, workers=1, log_level="WARNING", log_dir=None,
                 bind="tcp://127.0.0.1:0"):
        self.capabilities = list(capabilities)
        self.slots = slots or os.cpu_count() or 1
        self.workers = workers
        self.bind = bind
        self.log_level = log_level
        self.log_dir = log_dir
        self.address = None
        self.processes = []
        self._tmp = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="computefarm-")
        ready = os.path.join(self._tmp.name, "ready")
        manager = self._spawn("taskmanager", ["--bind", self.bind, "--ready-file", ready])
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(ready):
            if manager.poll() is not None or time.monotonic() > deadline:
                text = _read(manager.log).strip()
                self.stop()
                raise FarmError("the local TaskManager did not start: %s"
                                % (text.splitlines() or ["no output"])[-1])
            time.sleep(0.01)
        with open(ready) as stream:
            self.address = stream.read().strip()
        for _ in range(self.workers):
            self.add_worker(self.capabilities, self.slots, deadline=deadline)
        return self.address

    def add_worker(self, capabilities, slots, attributes=(), deadline=None):
        """Start one more worker and wait until the TaskManager has welcomed it."""
        args = ["--taskmanager", self.address, "--slots", str(slots)]
        for cap in capabilities:
            args += ["--capability", cap]
        for attr in attributes:
            args += ["--attr", attr]
        worker = self._spawn("worker", args, log_level="INFO")
        deadline = deadline or time.monotonic() + START_TIMEOUT
        while "connected to the" not in _read(worker.log):
            if worker.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise FarmError("the local worker did not start: %s"
                                % _read(worker.log).strip()[-500:])
            time.sleep(0.01)
        return worker

    def _spawn(self, command, args, log_level=None):
        directory = self.log_dir or self._tmp.name
        log = os.path.join(directory, "%s-%d.log" % (command, len(self.processes)))
        with open(log, "w") as stream:
            proc = subprocess.Popen(
                [sys.executable, "-m", "computefarm.cli", command, "--log-level",
                 log_level or self.log_level] + args, stdout=stream, stderr=stream,
                stdin=subprocess.DEVNULL, start_new_session=True)
        proc.log = log
        self.processes.append(proc)
        return proc

    def stop(self):
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.processes = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _read(path):
    with open(path) as stream:
        return stream.read()
