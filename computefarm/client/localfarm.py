"""A farm on this machine alone: a TaskManager and workers as child processes.

``with LocalFarm(["shell", "python"]) as farm:`` gives ``farm.address`` to
connect clients to; everything it started is stopped (by pid) on exit. By
default it binds a free port of 127.0.0.1; ``bind`` can name another address
(majordomo starts the farm.yaml TaskManager that way). majordomo's embedded
farm, the examples and the benchmarks use it. Its ready files (and logs, when
no ``log_dir`` is given) go in a temporary folder named for its owner's pid,
removed by ``stop``; one whose owner was killed is removed by the next
LocalFarm that starts (its processes stopped by themselves: ``--parent``).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from .. import addresses, defaults
from ..exceptions import FarmError
from ..storage.cas import pid_alive

FOLDER_PREFIX = "computefarm-"     # + the owner's pid + "-": its temporary folder


class LocalFarm:
    @staticmethod
    def check_capability(name):
        """FarmError unless this machine's workers can offer capability ``name``."""
        from ..worker.plugin import load_plugin  # only for the local workers it starts
        load_plugin(name)

    def __init__(self, capabilities, slots=None, workers=1, log_level="WARNING", log_dir=None,
                 bind="tcp://127.0.0.1:0", config=None, monitor=False):
        self.capabilities = list(capabilities)
        self.slots = slots or os.cpu_count() or 1
        self.workers = workers
        self.bind = bind
        self.config = config       # the farm.yaml its processes read (None: the usual search)
        # A monitor reports this machine's load (farm-status shows it); the one
        # machine then takes every task in turn and none is ever suspended: the
        # owner is the one running it.
        self.monitor = monitor
        self.log_level = log_level
        self.log_dir = log_dir
        self.address = None
        self.processes = []
        self._tmp = None
        self._manager = None
        self._ready = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        """Start the TaskManager and the workers side by side; the address once all
        workers are welcomed."""
        self.start_taskmanager()
        workers = [self._start_worker(self.capabilities, self.slots)
                   for _ in range(self.workers)]
        self._start_monitor()
        self.wait_ready(workers)
        return self.address

    def start_taskmanager(self):
        """Start the TaskManager without waiting for it; its address is known at once
        (a port of 0 in ``bind`` is replaced by a free port of 127.0.0.1)."""
        _remove_orphaned_folders()
        self._tmp = tempfile.TemporaryDirectory(prefix="%s%d-" % (FOLDER_PREFIX, os.getpid()))
        self.address = _with_free_port(self.bind)
        self._ready = os.path.join(self._tmp.name, "ready")
        self._manager = self._spawn("taskmanager", ["--bind", self.address,
                                                    "--ready-file", self._ready,
                                                    "--database", "memory"] +
                                    (["--placement", "round-robin", "--on-owner",
                                      "continue"] if self.monitor else []))
        return self.address

    def wait_ready(self, workers=(), timeout=defaults.START_TIMEOUT):
        """Wait until the TaskManager listens and ``workers`` are welcomed."""
        deadline = time.monotonic() + timeout
        if not self._wait(self._manager, lambda: os.path.exists(self._ready), deadline):
            self._fail(self._manager, "TaskManager")
        for worker in workers:
            self._wait_worker(worker, deadline)

    def start_workers(self, capabilities, wait=True):
        """Start this farm's workers (one process offering ``capabilities``), and
        its monitor after them, at low priority: it must not slow their start."""
        self.capabilities = list(capabilities)
        workers = [self._start_worker(self.capabilities, self.slots)
                   for _ in range(self.workers)]
        self._start_monitor()
        if wait:
            self.wait_ready(workers)
        return workers

    def _start_monitor(self):
        if self.monitor:
            self._spawn("monitor", ["--taskmanager", self.address], nice=10)

    def check(self):
        """FarmError if a process of this farm has died."""
        for proc in self.processes:
            if proc.poll() is not None:
                self._fail(proc, "TaskManager" if proc is self._manager else "process")

    def add_worker(self, capabilities, slots, attributes=(), deadline=None):
        """Start one more worker and wait until the TaskManager has welcomed it."""
        worker = self._start_worker(capabilities, slots, attributes)
        self._wait_worker(worker, deadline or time.monotonic() + defaults.START_TIMEOUT)
        return worker

    def _start_worker(self, capabilities, slots, attributes=()):
        ready = os.path.join(self._tmp.name, "worker-%d.ready" % len(self.processes))
        args = ["--taskmanager", self.address, "--slots", str(slots), "--ready-file", ready]
        for cap in capabilities:
            args += ["--capability", cap]
        for attr in attributes:
            args += ["--attr", attr]
        worker = self._spawn("worker", args)
        worker.ready_file = ready
        return worker

    def _wait_worker(self, worker, deadline):
        if not self._wait(worker, lambda: os.path.exists(worker.ready_file), deadline):
            self._fail(worker, "worker")

    @staticmethod
    def _wait(proc, condition, deadline):
        """True once ``condition`` holds; False if ``proc`` exited first."""
        while not condition():
            if proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _fail(self, proc, what):
        lines = _read(proc.log).strip().splitlines() or ["no output"]
        self.stop()
        raise FarmError("the local %s stopped: %s" % (what, lines[-1]))

    def _spawn(self, command, args, log_level=None, nice=0):
        directory = self.log_dir or self._tmp.name
        log = os.path.join(directory, "%s-%d.log" % (command, len(self.processes)))
        with open(log, "w") as stream:
            proc = subprocess.Popen(
                (["nice", "-n", str(nice)] if nice else []) +
                [sys.executable, "-m", "computefarm.commands", command, "--log-level",
                 log_level or self.log_level, "--parent", str(os.getpid())] +
                (["--config", self.config] if self.config else []) + args,
                stdout=stream, stderr=stream,
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


def _remove_orphaned_folders():
    """Remove the temporary folders of LocalFarms whose owner is gone (killed, it
    could not remove its own)."""
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        if name.startswith(FOLDER_PREFIX):
            pid = name[len(FOLDER_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(pid):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _read(path):
    with open(path) as stream:
        return stream.read()


def _with_free_port(address):
    """``address`` with a free port of 127.0.0.1 (::1 for an IPv6 host) put in for a
    port of 0."""
    host, port = addresses.split(address, "bind", allow_port_zero=True)
    if port != 0:
        return address
    ipv6 = addresses.is_ipv6(address)
    probe = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET)
    try:
        probe.bind(("::1" if ipv6 else "127.0.0.1", 0))
        return addresses.tcp(host, probe.getsockname()[1])
    finally:
        probe.close()
