"""Monitors, the spare-cycle policy and load-aware placement, with real owner load."""

import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from support import Farm, wait_until

from computefarm.client import Client, LocalFarm
from computefarm.hostinfo import machine_id
from computefarm.wire.protocol import Code

# An owner process that burns one core while toggled on by SIGUSR1.
OWNER = """
import signal, time
busy = [False]
signal.signal(signal.SIGUSR1, lambda *_: busy.__setitem__(0, not busy[0]))
while True:
    if busy[0]:
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            pass
    else:
        time.sleep(0.02)
"""


def policy_farm(tmp_path, **policy):
    settings = {"max_load": 1000, "owner_cpu_limit": 20, "min_free_memory": 1}
    settings.update(policy)
    farm = Farm(tmp_path, extra={"load": {"monitor_interval": 0.2, "policy": settings}})
    farm.start_taskmanager()
    return farm


@pytest.fixture
def owners(farm_procs):
    """Two owner processes (initially idle): one per simulated machine."""
    return [farm_procs(OWNER), farm_procs(OWNER)]


@pytest.fixture
def farm_procs():
    started = []

    def start(code):
        proc = subprocess.Popen([sys.executable, "-c", code])
        started.append(proc)
        return proc
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def machine_state(client, machine):
    for entry in client.status()["machines"]:
        if entry["id"] == machine:
            return entry["state"]
    return None


def report_age(client, machine):
    for entry in client.status()["machines"]:
        if entry["id"] == machine and entry["report_age"] is not None:
            return entry["report_age"]
    return float("inf")


def toggle(owner):
    owner.send_signal(signal.SIGUSR1)


def proc_state(pid):
    with open("/proc/%d/stat" % pid) as stream:
        return stream.read().rsplit(")", 1)[1].split()[0]


def watched_worker(farm, owner, **client):
    """A one-slot shell worker on machine A, whose monitor watches ``owner``; a
    client (``Client(**client)``) that has seen A idle."""
    farm.start_worker("shell", machine="A")
    farm.start_monitor("A", owner.pid)
    client = farm.client(**client)
    wait_until(lambda: machine_state(client, "A") == "idle", what="A idle")
    return client


def test_busy_owner_is_avoided_and_bursts_spread(tmp_path, owners):
    farm = policy_farm(tmp_path)
    try:
        farm.start_worker("shell", slots=4, machine="A")
        farm.start_worker("shell", slots=4, machine="B")
        farm.start_monitor("A", owners[0].pid)
        farm.start_monitor("B", owners[1].pid)
        client = farm.client()
        wait_until(lambda: machine_state(client, "A") == "idle" and
                   machine_state(client, "B") == "idle", what="both machines idle")
        burst = [client.submit("shell", {"cmd": "sleep 0.3"}) for _ in range(8)]
        assert {f.result(30).machine for f in burst} == {"A", "B"}
        toggle(owners[0])
        wait_until(lambda: machine_state(client, "A") == "owner-active", what="owner on A")
        avoid = [client.submit("shell", {"cmd": "sleep 0.1"}) for _ in range(6)]
        assert {f.result(30).machine for f in avoid} == {"B"}
        toggle(owners[0])
        wait_until(lambda: machine_state(client, "A") == "idle", what="A idle again")
    finally:
        farm.close()


def test_suspend_stops_and_resumes_the_task(tmp_path, owners):
    farm = policy_farm(tmp_path, on_owner="suspend")
    try:
        client = watched_worker(farm, owners[0], timeline=True)
        notices = []
        client.on_notice = lambda level, code, text, ids: notices.append((code, ids, text))
        pidfile, go = tmp_path / "pid", tmp_path / "go"
        # it runs until told to finish (a fixed length could end before a loaded
        # machine's monitor has noticed the owner)
        future = client.submit("shell", {"cmd": "echo $$ > %s; while [ ! -e %s ]; do "
                                                "sleep 0.05; done; echo finished"
                                                % (pidfile, go)}, label="waits-for-go")
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="started")
        pid = int(pidfile.read_text())
        toggle(owners[0])
        wait_until(lambda: proc_state(pid) == "T", what="task stopped (SIGSTOP)")
        assert client.status()["running"][0]["suspended"] is True
        wait_until(lambda: notices, what="the client told")      # the user is told, by name
        assert notices[0][:2] == (Code.SUSPENDED, [future.task_id])
        assert "the owner of machine A is back" in notices[0][2]
        assert client.labels(notices[0][1]) == ["waits-for-go"]
        toggle(owners[0])
        wait_until(lambda: proc_state(pid) != "T", what="task continued (SIGCONT)")
        wait_until(lambda: len(notices) == 2, what="the client told again")
        assert notices[1][:2] == (Code.RESUMED, [future.task_id])
        go.write_text("")
        result = future.result(30)
        assert result.ok and result.stdout == ["finished"] and result.attempt == 1
        page, trace = client.write_report(str(tmp_path / "report.html"))   # it shows there
        events = json.loads(pathlib.Path(trace).read_text())["traceEvents"]
        task = next(e for e in events if e["name"] == "waits-for-go")
        pause = next(e for e in events if e["name"] == "suspended: waits-for-go")
        assert (pause["pid"], pause["tid"]) == (task["pid"], task["tid"]) and pause["dur"] > 0
        assert task["ts"] <= pause["ts"] and pause["ts"] + pause["dur"] <= task["ts"] + \
            task["dur"] + 1000 and task["args"]["suspended_s"] > 0
        assert '<rect class=suspended' in pathlib.Path(page).read_text()
    finally:
        farm.close()


def test_a_task_waiting_on_a_suspended_machine_does_not_start(tmp_path, owners):
    """A task sent ahead to wait on its worker (pipelining) is held with the
    machine's running ones: a slot freed meanwhile does not start it."""
    farm = policy_farm(tmp_path, on_owner="suspend")
    try:
        client = watched_worker(farm, owners[0])
        assert all(f.result(30).ok for f in [client.submit("shell", {"cmd": "true"})
                                             for _ in range(20)])   # a short pace
        pidfile, marker = tmp_path / "pid", tmp_path / "ran"
        blocker = client.submit("shell", {"cmd": "echo $$ > %s; exec sleep 60" % pidfile})
        waiting = client.submit("shell", {"cmd": "touch %s" % marker})
        wait_until(lambda: client.status()["workers"][0]["used"] == 2, what="sent ahead")
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="started")
        toggle(owners[0])
        wait_until(lambda: proc_state(int(pidfile.read_text())) == "T", what="suspended")
        client.cancel(blocker)                # its slot frees while the owner is there
        assert blocker.result(30).status == "cancelled"
        # the worker decided what to start in the loop turn that sent that result
        assert not marker.exists() and not waiting.done()
        toggle(owners[0])
        assert waiting.result(30).ok and marker.exists()
    finally:
        farm.close()


def test_requeue_moves_the_task_elsewhere(tmp_path, owners):
    farm = policy_farm(tmp_path, on_owner="requeue", requeue_grace=0.3)
    try:
        farm.start_worker("shell", machine="A")
        farm.start_monitor("A", owners[0].pid)
        client = farm.client()
        wait_until(lambda: machine_state(client, "A") == "idle", what="A idle")
        pidfile = tmp_path / "pid"
        future = client.submit("shell", {"cmd": 'if [ "$COMPUTEFARM_ATTEMPT" = 1 ]; then '
                                                'echo $$ > %s; sleep 60; fi; echo moved'
                                                % pidfile}, max_attempts=1)
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="started")
        farm.start_worker("shell", machine="B")
        toggle(owners[0])
        result = future.result(30)
        assert result.ok and result.machine == "B" and result.stdout == ["moved"]
        assert result.attempt == 2
    finally:
        farm.close()


def test_dead_monitor_makes_machine_stale_and_policy_holds_it(tmp_path, owners):
    farm = policy_farm(tmp_path, stale="hold")
    try:
        farm.start_worker("shell", slots=4, machine="A")
        farm.start_worker("shell", slots=4, machine="B")
        monitor = farm.start_monitor("A", owners[0].pid)
        client = farm.client()
        wait_until(lambda: machine_state(client, "A") == "idle", what="A idle")
        monitor.send_signal(signal.SIGKILL)
        wait_until(lambda: machine_state(client, "A") == "stale", timeout=10, what="A stale")
        futures = [client.submit("shell", {"cmd": "sleep 0.1"}) for _ in range(6)]
        assert {f.result(30).machine for f in futures} == {"B"}
    finally:
        farm.close()


def test_farm_status_json_reports_the_farm(tmp_path, owners):
    farm = policy_farm(tmp_path)
    try:
        farm.start_worker("shell", slots=2, machine="A", attrs=["zone=x"])
        farm.start_monitor("A", owners[0].pid)
        client = farm.client(on_notice=lambda *a: None)
        wait_until(lambda: machine_state(client, "A") == "idle", what="A idle")
        pidfile = tmp_path / "pid"
        running = client.submit("shell", {"cmd": "echo $$ > %s; sleep 30" % pidfile})
        assert client.submit("shell", {"cmd": "echo broken >&2; exit 9"}).result(30).exit_code == 9
        waiting = [client.submit("gcc", {"cmd": "true"}) for _ in range(2)]
        wait_until(lambda: pidfile.exists(), what="task running")
        proc = subprocess.run([sys.executable, "-m", "computefarm.commands", "status",
                               "--taskmanager", farm.address, "--json"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        status = json.loads(proc.stdout)
        machine = next(m for m in status["machines"] if m["id"] == "A")
        assert machine["state"] == "idle" and machine["cores"] >= 1
        assert machine["memory_available"] > 0 and machine["owner_cpu"] < 20
        assert [(w["machine"], w["capabilities"], w["slots"], w["used"])
                for w in status["workers"]] == [("A", ["shell"], 2, 1)]
        assert status["queues"] == {"gcc": 2}
        assert [t["id"] for t in status["running"]] == [running.task_id]
        assert status["failures"][-1]["status"] == "failed"
        text = subprocess.run([sys.executable, "-m", "computefarm.commands", "status",
                               "--taskmanager", farm.address], capture_output=True, text=True,
                              timeout=30)
        assert text.returncode == 0 and "\nRUNNING   1\n" in text.stdout
        assert "by capability: gcc 2" in text.stdout
        assert not any(f.done() for f in waiting)
    finally:
        farm.close()


def test_the_embedded_farm_never_suspends_the_run_of_its_owner(owners, tmp_path):
    """majordomo's embedded farm has a monitor (farm-status shows the machine's
    load), but on your own machine, for your own run, the owner is you: other
    programs' load neither stops nor holds its tasks."""
    farm = LocalFarm([], slots=1, monitor=True)
    farm.start_taskmanager()
    try:
        farm.start_workers(["shell"])
        notices = []
        with Client(farm.address, on_notice=lambda *notice: notices.append(notice)) as client:
            for owner in owners:            # two busy cores: over the owner's 50%
                toggle(owner)
            wait_until(lambda: machine_state(client, machine_id()) == "owner-active",
                       what="the other programs seen as the owner")
            pidfile, go = tmp_path / "pid", tmp_path / "go"
            future = client.submit("shell", {"cmd": "echo $$ > %s; while [ ! -e %s ]; do "
                                                    "sleep 0.05; done; echo done" % (pidfile, go)})
            wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="started")
            started = time.monotonic()
            wait_until(lambda: report_age(client, machine_id()) < time.monotonic() - started,
                       what="a report while the task runs")
            assert machine_state(client, machine_id()) == "owner-active"
            assert client.status()["running"][0]["suspended"] is False
            assert proc_state(int(pidfile.read_text())) != "T"
            go.write_text("")
            result = future.result(30)
            assert result.ok and result.stdout == ["done"]
            assert not [n for n in notices if n[1] == Code.SUSPENDED]
    finally:
        farm.stop()
