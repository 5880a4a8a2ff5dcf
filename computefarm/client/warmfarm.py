"""A local farm that outlives one majordomo run, so the next starts at once.

majordomo's embedded farm costs four Python processes starting on a small
machine before the first task; for a build of a second that is most of the
time. So by default the embedded farm is *kept*: the first run starts a
*keeper* (``python -m computefarm.commands localfarm``, in a session of its
own) that runs a ``LocalFarm`` (TaskManager, one worker offering every built-in
capability this machine has, a monitor) and writes where it listens in a state
file; later runs of the same user with the same farm.yaml and slots find it
there and connect at once. The keeper stops the farm (and removes the state
file) once no client has been connected and nothing has run for ``idle``
seconds (majordomo --keep-farm, 300 by default; 0: a farm per run, as before),
when the installed ComputeFarm changes, or on SIGTERM (``stop``).

Two runs starting together do not start two keepers: the state file is read
and the keeper started under a lock. A keeper holds a lock of its own for its
life (``claim``), which the kernel drops when it ends, however it ends: a
second keeper, even one started by hand in the same instant, is refused.
"""

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

from .. import __version__, defaults
from ..exceptions import FarmError
from ..hostinfo import live_start
from ..storage.cas import location


def state_dir():
    return os.path.join(location(None, defaults.DATA_ENV, defaults.DATA_DIR), "local-farm")


def state_path():
    return os.path.join(state_dir(), "state.json")


def read_state():
    """The running keeper's state, or None (none, or it is gone)."""
    try:
        with open(state_path()) as stream:
            state = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or live_start(state.get("pid")) != state.get("started"):
        return None
    return state


def write_state(state):
    path = state_path()
    temporary = path + ".tmp"
    with open(temporary, "w") as stream:
        json.dump(state, stream)
    os.replace(temporary, path)


def wanted(config, slots):
    """What a farm must match to be reused: the code, farm.yaml (path and time
    it changed) and the slots."""
    stamp = None
    if config:
        try:
            stamp = os.stat(config).st_mtime_ns
        except OSError:
            pass
    return {"version": __version__, "config": config, "config_stamp": stamp,
            "slots": slots or os.cpu_count() or 1}


def attach(config, slots, idle, timeout=defaults.START_TIMEOUT):
    """The address of this user's kept farm for ``config`` and ``slots``, started
    now if there is none (or one that does not match, which is stopped)."""
    want = wanted(config, slots)
    with locked():
        state = read_state()
        if state is not None and all(state.get(k) == v for k, v in want.items()):
            lease()                     # the keeper counts it as use: it stays
            return state
        if state is not None:
            stop(state)                 # another version, farm.yaml or size
        argv = [sys.executable, "-m", "computefarm.commands", "localfarm", "--idle",
                "%g" % idle, "--slots", str(want["slots"])]
        if config:
            argv += ["--config", config]
        with open(os.path.join(state_dir(), "keeper.log"), "ab") as log:
            keeper = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = read_state()
            if state is not None and state.get("pid") == keeper.pid:
                return state
            if keeper.poll() is not None:
                raise FarmError("the local farm did not start (exit %s): see %s" % (
                    keeper.returncode, os.path.join(state_dir(), "keeper.log")))
            time.sleep(0.01)
        keeper.terminate()
        raise FarmError("the local farm did not start within %g s: see %s"
                        % (timeout, os.path.join(state_dir(), "keeper.log")))


def claim():
    """Make this process the keeper: the open lock file, held until it is closed
    or the process ends; FarmError (naming the running keeper) if another holds it."""
    os.makedirs(state_dir(), mode=0o700, exist_ok=True)
    handle = open(os.path.join(state_dir(), "keeper.lock"), "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        running = read_state()
        if running is None:
            raise FarmError("another local farm is starting: stop it with 'localfarm stop' "
                            "once it runs") from None
        # its state would be overwritten: no run, nor 'localfarm stop', would find it
        raise FarmError("a local farm already runs (keeper pid %d, %s): stop it first with "
                        "'localfarm stop'" % (running["pid"], running.get("address"))) from None
    return handle


@contextlib.contextmanager
def locked():
    """The state's lock: runs attaching and a keeper deciding to stop take turns."""
    os.makedirs(state_dir(), mode=0o700, exist_ok=True)
    with open(os.path.join(state_dir(), "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def lease():
    """Say the farm is about to be used (a run attached and will connect soon)."""
    path = os.path.join(state_dir(), "lease")
    with open(path, "a"):
        pass
    os.utime(path)


def leased_since(when):
    """Whether a run attached after ``when`` (wall time)."""
    try:
        return os.stat(os.path.join(state_dir(), "lease")).st_mtime > when
    except OSError:
        return False


def stop(state=None, timeout=30.0):
    """Stop the kept farm (SIGTERM to its keeper, which stops its processes);
    True when there was one."""
    state = state or read_state()
    if state is None:
        return False
    pid, started = state["pid"], state["started"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live_start(pid) == started and time.monotonic() < deadline:
        time.sleep(0.02)
    return True
