"""Helpers shared by the tests: a real farm of real processes on 127.0.0.1.

``Farm`` starts farm-taskmanager and farm-worker as subprocesses (with a short
heartbeat so failures are noticed quickly), waits for conditions with deadlines,
and stops every process it started, by pid.
"""

import contextlib
import fcntl
import io
import json
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pyte
import yaml
import zmq

from computefarm.client import Client
from computefarm.commands import keys
from computefarm.wire.certificates import load_public, load_secret

HEARTBEAT = 0.2
LIVENESS = 3


def wait_until(condition, timeout=15.0, interval=0.02, what="condition"):
    """Poll ``condition`` until it returns a true value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def welcomes(proc):
    """How many times a worker started with a ready file has been welcomed."""
    try:
        return json.loads(proc.ready_file.read_text())["welcomes"]
    except (FileNotFoundError, ValueError):
        return 0


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as stream:
            state = stream.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def command(name):
    """argv that runs console script ``name`` of this installation."""
    return [sys.executable, "-m", "computefarm.commands", name[len("farm-"):]]


class Farm:
    def __init__(self, tmp_path, extra=None, **taskmanager):
        self.dir = tmp_path
        self.processes = []
        self.clients = []
        self.config = tmp_path / "farm.yaml"
        settings = {"heartbeat_interval": HEARTBEAT, "heartbeat_liveness": LIVENESS,
                    # a peer's reconnection takes up to RECONNECT_MAX, plus a hello
                    "recovery_grace": 2.0,
                    # batches: one database per farm, found again by a restart
                    "database": str(tmp_path / "taskmanager.sqlite")}
        settings.update(taskmanager)
        document = {"taskmanager": settings,
                    "logging": {"records": str(tmp_path / "records.jsonl"), "cutelog": None}}
        document.update(extra or {})
        self.config.write_text(yaml.safe_dump(document))
        self.address = None
        self.taskmanager = None
        self._logs = 0

    def log_path(self, name):
        self._logs += 1
        return self.dir / ("%s-%d.log" % (name, self._logs))

    def spawn(self, name, args, log_name, host=None):
        """Start console script ``name``; inside ``host`` (hosts.Host) if given."""
        log = self.log_path(log_name)
        ready = None
        if name == "farm-worker":         # it says when it is welcomed in its ready file
            ready = log.with_suffix(".ready")
            args = list(args) + ["--ready-file", str(ready)]
        argv = command(name) + list(args)
        if host is not None:
            host.check_isolated()
            argv = host.argv(argv)
        with open(log, "w") as stream:
            proc = subprocess.Popen(argv, stdout=stream, stderr=stream,
                                    cwd=str(self.dir), start_new_session=True)
        proc.log, proc.ready_file = log, ready
        self.processes.append(proc)
        return proc

    def start_taskmanager(self, bind="tcp://127.0.0.1:0", extra_args=(), host=None):
        ready = self.dir / "ready"
        if ready.exists():
            ready.unlink()
        proc = self.spawn("farm-taskmanager", ["--config", str(self.config), "--bind", bind,
                                               "--ready-file", str(ready), "--log-level",
                                               "DEBUG"] + list(extra_args), "taskmanager",
                          host)
        wait_until(lambda: ready.exists() or proc.poll() is not None, what="TaskManager ready")
        assert proc.poll() is None, proc.log.read_text()
        self.address = ready.read_text().strip()
        self.taskmanager = proc
        return proc

    def start_worker(self, *capabilities, slots=1, machine=None, attrs=(), wait=True,
                     config=None, host=None):
        args = ["--config", str(config or self.config), "--taskmanager", self.address,
                "--slots", str(slots), "--log-level", "DEBUG"]
        for cap in capabilities:
            args += ["--capability", cap]
        if machine:
            args += ["--machine", machine]
        for attr in attrs:
            args += ["--attr", attr]
        proc = self.spawn("farm-worker", args, "worker", host)
        if wait:
            self.wait_registered(proc)
        return proc

    def wait_registered(self, proc, after=0):
        """Wait until the worker has been welcomed more than ``after`` times."""
        def welcomed():
            assert proc.poll() is None, proc.log.read_text()
            return welcomes(proc) > after
        wait_until(welcomed, what="worker %d registered" % proc.pid)

    def start_monitor(self, machine, owner_scope, interval=0.2, config=None, host=None):
        return self.spawn("farm-monitor", [
            "--config", str(config or self.config), "--taskmanager", self.address,
            "--machine", machine, "--owner-scope", str(owner_scope), "--interval",
            str(interval), "--log-level", "DEBUG"], "monitor", host)

    def client(self, **kwargs):
        client = Client(self.address, **kwargs)
        self.clients.append(client)
        return client

    def stop(self, proc, sig=signal.SIGTERM, timeout=10.0):
        """Signal ``proc`` and wait for it; SIGKILL its group if it does not go."""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

    def close(self):
        for client in self.clients:
            client.close(wait=False)
        self.clients.clear()
        for proc in reversed(self.processes):
            self.stop(proc, timeout=5.0)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything the process left behind
            except (ProcessLookupError, PermissionError):
                pass


class SecureFarm(Farm):
    """A farm whose TaskManager trusts only the keys made with farm-keys."""

    PEERS = (("w1", "worker"), ("c1", "client"), ("c2", "client"), ("doomed", "client"))

    def __init__(self, tmp_path, peers=PEERS, users=None, **taskmanager):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.keydir = tmp_path / "keys"
        keys.main(["--dir", str(self.keydir), "init"], out=io.StringIO())
        for name, role in peers:
            keys.main(["--dir", str(self.keydir), "add", name, "--role", role],
                      out=io.StringIO())
        extra = {"keys": {"server": str(self.keydir / "taskmanager.key"),
                          "server_secret": str(self.keydir / "taskmanager.key_secret"),
                          "authorized": str(self.keydir / "authorized")}}
        if users:
            extra["users"] = users          # farm.yaml users: name -> settings
        super().__init__(tmp_path, extra=extra, **taskmanager)
        self.server = load_public(self.keydir / "taskmanager.key")

    def peer_config(self, name):
        path = self.dir / ("%s.yaml" % name)
        path.write_text(yaml.safe_dump({"keys": {
            "server": str(self.keydir / "taskmanager.key"),
            "secret": str(self.keydir / "peers" / ("%s.key_secret" % name))}}))
        return path

    def curve(self, name):
        public, secret = load_secret(self.keydir / "peers" / ("%s.key_secret" % name))
        return public, secret, self.server

    def curve_env(self, name):
        """The keys of peer ``name`` as tests/rawpeer.py takes them."""
        return {"RAWPEER_CURVE": " ".join(key.decode() for key in self.curve(name))}

    def secure_client(self, name, **kwargs):
        client = Client(self.address, curve=self.curve(name), **kwargs)
        self.clients.append(client)
        return client

    def raw_peer(self, curve):
        peer = zmq.Context.instance().socket(zmq.DEALER)
        peer.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            peer.curve_publickey, peer.curve_secretkey, peer.curve_serverkey = curve
        peer.connect(self.address)
        return peer


@contextlib.contextmanager
def running_secure_farm(tmp_path, peers=SecureFarm.PEERS):
    """A SecureFarm whose TaskManager runs; every process stopped afterwards."""
    farm = SecureFarm(tmp_path, peers=peers)
    farm.start_taskmanager()
    try:
        yield farm
    finally:
        farm.close()


def run_tool(tool, cwd, *args, timeout=300, env=None):
    """Run ``majordomo`` or ``doit`` in ``cwd``; the CompletedProcess (text)."""
    module = {"majordomo": "computefarm.majordomo", "doit": "doit"}[tool]
    return subprocess.run([sys.executable, "-m", module] + list(args), cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def read_doit_db(directory, name=".doit.db"):
    """doit's dependency database as {task: {key: value}}, file mtimes left out
    (two copies of a project differ in mtimes, not in what doit decides from)
    and the file_dep list sorted (doit stores a set in hash order)."""
    import dbm
    import json
    path = str(directory / name)
    with dbm.open(path, "r") as db:
        raw = {key.decode(): json.loads(db[key]) for key in db.keys()}
    for entry in raw.values():
        for key, value in entry.items():
            if isinstance(value, list) and len(value) == 3 and isinstance(value[0], float):
                entry[key] = value[1:]          # [size, md5]
        if isinstance(entry.get("deps:"), list):
            entry["deps:"] = sorted(entry["deps:"])   # doit keeps file_dep as a set
    return raw


def tree(directory, skip=(".doit.db",)):
    """{relative path: bytes} of every file under ``directory`` but doit's db."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.name.startswith(skip) and "__pycache__" not in path.parts:
            files[str(path.relative_to(directory))] = path.read_bytes()
    return files


class Terminal:
    """A program on a pseudo-terminal of its own (stdin, stdout and stderr), and
    what it wrote there, rendered by pyte as a user's screen would show it."""

    def __init__(self, args, cwd=None, env=None, columns=160, lines=60):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        env = {k: v for k, v in (env or os.environ).items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)

    def read_until(self, condition, timeout=60.0):
        """Read what it writes until ``condition(output)`` or it closes the terminal."""
        deadline = time.monotonic() + timeout
        while not condition(bytes(self.output)):
            left = deadline - time.monotonic()
            assert left > 0, "timed out; the terminal shows:\n" + "\n".join(self.lines())
            if not select.select([self.master], [], [], min(left, 0.5))[0]:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:                   # EIO: every writer closed the terminal
                chunk = b""
            if not chunk:
                return
            self.output += chunk
            self.stream.feed(chunk)

    def wait(self, timeout=60.0):
        """Read to the end; its exit code."""
        self.read_until(lambda output: False, timeout)
        return self.proc.wait(timeout)

    def lines(self):
        return [line.rstrip() for line in self.screen.display]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
