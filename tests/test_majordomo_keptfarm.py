"""majordomo's kept local farm (client/warmfarm.py): started by the first run,
found by the next, stopped when unused; every test stops it by its pids."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from support import pid_alive, run_tool, wait_until

DODO = """
def task_hello():
    for i in range(4):
        yield {"name": str(i), "actions": ["echo hi %d > out%d.txt" % (i, i)],
               "targets": ["out%d.txt" % i]}
"""


@pytest.fixture
def kept(tmp_path):
    """An environment whose majordomo keeps its farm, in a data folder of its own."""
    env = dict(os.environ, COMPUTEFARM_DATA=str(tmp_path / "data"))
    env.pop("COMPUTEFARM_KEEP_FARM")
    state = tmp_path / "data" / "local-farm" / "state.json"
    seen = []

    def current():
        try:
            found = json.loads(state.read_text())
        except (OSError, ValueError):
            return None
        seen.append(found)
        return found
    yield env, current
    for found in seen:                       # whatever was started is stopped, by pid
        for pid in [found["pid"]] + found["processes"]:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def project(tmp_path, name="project"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "dodo.py").write_text(DODO)
    return folder


def test_the_next_run_finds_the_farm_and_it_stops_when_unused(tmp_path, kept):
    env, current = kept
    first = project(tmp_path, "first")
    done = run_tool("majordomo", first, "run", "--keep-farm", "3", env=env)
    assert done.returncode == 0, done.stderr
    assert "kept 3 s after the last run" in done.stderr
    state = current()
    assert pid_alive(state["pid"]) and all(pid_alive(p) for p in state["processes"])
    second = project(tmp_path, "second")
    again = run_tool("majordomo", second, "run", "--keep-farm", "3", env=env)
    assert again.returncode == 0, again.stderr
    assert current()["pid"] == state["pid"]             # the same farm, not a new one
    assert (second / "out3.txt").read_text() == "hi 3\n"
    assert state["address"] in again.stderr
    # unused for 3 s: the keeper stops its farm and removes the state
    wait_until(lambda: current() is None, timeout=20, what="the kept farm stopping")
    wait_until(lambda: not any(pid_alive(p) for p in [state["pid"]] + state["processes"]),
               what="all its processes gone")


def test_another_size_replaces_it_and_keep_farm_0_leaves_it_alone(tmp_path, kept):
    env, current = kept
    folder = project(tmp_path)
    assert run_tool("majordomo", folder, "run", "--keep-farm", "60", env=env).returncode == 0
    old = current()
    shutil.rmtree(folder)
    folder = project(tmp_path)
    done = run_tool("majordomo", folder, "run", "--keep-farm", "60", "--slots", "1", env=env)
    assert done.returncode == 0, done.stderr
    new = current()
    assert new["pid"] != old["pid"] and new["slots"] == 1
    assert not pid_alive(old["pid"]) and not any(pid_alive(p) for p in old["processes"])
    shutil.rmtree(folder)
    folder = project(tmp_path)
    alone = run_tool("majordomo", folder, "run", "--keep-farm", "0", env=env)
    assert alone.returncode == 0 and "embedded farm at" in alone.stderr
    assert current()["pid"] == new["pid"]
    stopped = subprocess.run([sys.executable, "-m", "computefarm.commands", "localfarm",
                              "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.stdout.strip() == "stopped the local farm"
    assert current() is None
    assert not pid_alive(new["pid"]) and not any(pid_alive(p) for p in new["processes"])


def test_a_second_keeper_is_refused_and_the_first_stays_reachable(tmp_path, kept):
    """A keeper started by hand while one runs would overwrite its state: no run,
    nor 'localfarm stop', would find the first any more. It is refused instead."""
    env, current = kept
    assert run_tool("majordomo", project(tmp_path), "run", "--keep-farm", "60",
                    env=env).returncode == 0
    state = current()
    second = subprocess.Popen([sys.executable, "-m", "computefarm.commands", "localfarm",
                               "--idle", "60"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        _, error = second.communicate(timeout=60)
    finally:
        after = current()          # one that started anyway is in the state: stopped after
        if second.poll() is None:
            second.kill()
            second.wait()
    assert second.returncode == 2, error
    assert error.strip() == ("ERROR: localfarm: a local farm already runs (keeper pid %d, "
                             "%s): stop it first with 'localfarm stop'"
                             % (state["pid"], state["address"]))
    assert after == state and pid_alive(state["pid"])
    stopped = subprocess.run([sys.executable, "-m", "computefarm.commands", "localfarm",
                              "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.stdout.strip() == "stopped the local farm"
    assert not pid_alive(state["pid"]) and not any(pid_alive(p) for p in state["processes"])


def test_of_two_keepers_started_in_the_same_instant_one_runs(kept):
    """Each checked the state before the other wrote it: both ran a farm, and the
    state named only one. A lock each holds for its life decides instead."""
    env, current = kept
    keepers = [subprocess.Popen([sys.executable, "-m", "computefarm.commands", "localfarm",
                                 "--idle", "60"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        wait_until(lambda: any(k.poll() is not None for k in keepers), timeout=60,
                   what="one keeper to give way")
        [refused] = [k for k in keepers if k.poll() is not None]
        [running] = [k for k in keepers if k is not refused]
        wait_until(lambda: (current() or {}).get("pid") == running.pid, timeout=60,
                   what="the other to run")
        error = refused.stderr.read()
        assert refused.returncode == 2, error
        assert error.startswith("ERROR: localfarm: ") and len(error.strip().splitlines()) == 1
        assert "stop it" in error and "localfarm stop" in error
        state = current()
        assert pid_alive(running.pid) and all(pid_alive(p) for p in state["processes"])
        stopped = subprocess.run([sys.executable, "-m", "computefarm.commands", "localfarm",
                                  "stop"], env=env, capture_output=True, text=True, timeout=60)
        assert stopped.stdout.strip() == "stopped the local farm"
        assert running.wait(30) == 0
    finally:
        for keeper in keepers:
            if keeper.poll() is None:
                keeper.kill()
            keeper.wait()
            keeper.stderr.close()


def test_a_run_that_attached_but_has_not_connected_yet_keeps_it(tmp_path, kept, monkeypatch):
    """The keeper decides to stop under the lock runs attach under, and counts an
    attach (a lease) as use: a run between attaching and connecting is not left
    with a farm that stopped."""
    env, current = kept
    assert run_tool("majordomo", project(tmp_path), "run", "--keep-farm", "4",
                    env=env).returncode == 0
    state = current()
    monkeypatch.setenv("COMPUTEFARM_DATA", env["COMPUTEFARM_DATA"])
    from computefarm.client import warmfarm
    attached = warmfarm.attach(state["config"], state["slots"], 4)   # never connects
    assert attached["pid"] == state["pid"]
    began = time.monotonic()
    # past the 4 s it would have been kept unused (checked every second), well
    # before the next 4 s from the keeper's look that saw the lease
    wait_until(lambda: time.monotonic() - began > 6.5, timeout=10, what="an idle period")
    assert current()["pid"] == state["pid"]                  # kept for the attached run
    wait_until(lambda: current() is None, timeout=20, what="stopping once unused again")
