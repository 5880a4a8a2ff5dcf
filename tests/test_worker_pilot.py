"""Pilots: workers that leave on their own (--idle-exit, --max-tasks, --lifetime),
draining first and handing back what they did not finish, so nothing is lost."""

import os
import signal
import time

from support import wait_until

from computefarm.worker.pilot import PilotLimits


def test_limits_driven_by_the_clock():
    idle = PilotLimits(idle_exit=5)
    assert idle.step(0.0, busy=True) is None
    assert idle.step(3.0, busy=False) is None          # idle from 3 s
    assert idle.step(7.9, busy=False) is None
    assert idle.step(8.0, busy=False) == "idle for 5 s (--idle-exit)"
    counted = PilotLimits(max_tasks=2)
    counted.took()
    assert counted.draining is None
    counted.took()
    assert counted.draining == "ran its 2 task(s) (--max-tasks)"
    assert counted.step(1.0, busy=True) is None        # its tasks finish first
    assert counted.step(2.0, busy=False) == "ran its 2 task(s) (--max-tasks)"
    walltime = PilotLimits(lifetime=100)                # drains 10 s before the end
    assert walltime.step(0.0, busy=True) is None and walltime.draining is None
    assert walltime.step(90.5, busy=True) is None and "ends in 10 s" in walltime.draining
    assert walltime.step(100.0, busy=True) == "its lifetime of 100 s is over (--lifetime)"
    assert PilotLimits(lifetime=86400).drain_before == 300.0


def pilot(farm, *options, slots=1):
    return farm.spawn("farm-worker", ["--config", str(farm.config), "--taskmanager",
                                      farm.address, "--slots", str(slots), "--capability",
                                      "shell", "--log-level", "DEBUG"] + list(options),
                      "pilot")


def test_an_idle_pilot_leaves_and_says_why(farm):
    worker = pilot(farm, "--idle-exit", "1")
    farm.wait_registered(worker)
    client = farm.client()
    assert client.submit("shell", {"cmd": "echo hi"}).result(30).stdout == ["hi"]
    started = time.monotonic()
    assert worker.wait(15) == 0
    assert time.monotonic() - started >= 0.9
    wait_until(lambda: "left: idle for 1 s (--idle-exit)" in farm.taskmanager.log.read_text(),
               what="the TaskManager told why")
    assert client.status()["workers"] == []


def test_max_tasks_runs_that_many_and_hands_back_the_rest(farm):
    worker = pilot(farm, "--max-tasks", "3", slots=2)
    farm.wait_registered(worker)
    client = farm.client()
    [pilot_name] = [w["name"] for w in client.status()["workers"]]
    futures = [client.submit("shell", {"cmd": "sleep 0.3; echo %d" % i}) for i in range(10)]
    assert worker.wait(30) == 0
    other = farm.start_worker("shell", slots=2)
    results = [f.result(60) for f in futures]
    assert [r.stdout for r in results] == [[str(i)] for i in range(10)]
    assert sum(r.worker == pilot_name for r in results) == 3
    assert "left: ran its 3 task(s) (--max-tasks)" in farm.taskmanager.log.read_text()
    farm.stop(other)


def test_a_pilot_drains_before_its_lifetime_and_hands_back_what_runs(farm):
    worker = pilot(farm, "--lifetime", "4", "--drain-before", "2", slots=2)
    farm.wait_registered(worker)
    client = farm.client()
    began = time.monotonic()
    long = client.submit("shell", {"cmd": "sleep 30; echo long"})
    wait_until(lambda: client.status()["running"], what="the long task running")
    status = wait_until(lambda: [w for w in client.status()["workers"] if w["draining"]],
                        timeout=10, what="the pilot draining")
    assert "lifetime ends in" in status[0]["draining"] and status[0]["slots"] == 0
    queued = client.submit("shell", {"cmd": "echo later"})
    assert worker.wait(15) == 0
    assert 3.5 <= time.monotonic() - began < 10
    other = farm.start_worker("shell", slots=2)
    [other_name] = [w["name"] for w in client.status()["workers"]]
    assert queued.result(30).stdout == ["later"] and queued.result().worker == other_name
    wait_until(lambda: any(r["host"] and r["attempt"] >= 1 for r in client.status()["running"]),
               what="the long task handed back and running again")
    assert farm.taskmanager.log.read_text().count("lifetime of 4 s is over") == 1
    client.cancel(long)
    assert long.result(30).status == "cancelled"
    farm.stop(other)


def test_a_task_stopped_with_its_worker_is_handed_back_not_failed(farm, tmp_path):
    """As a scheduler ending a job does: SIGTERM to the worker and its task at once."""
    worker = farm.start_worker("shell")
    client = farm.client()
    pidfile = tmp_path / "task.pid"
    task = client.submit("shell", {"cmd": "echo $$ >> %s; sleep 30; echo done" % pidfile})
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="task running")
    os.killpg(int(pidfile.read_text().split()[0]), signal.SIGTERM)   # all its processes
    time.sleep(0.2)          # the worker's own signal comes a little later, well within
    worker.send_signal(signal.SIGTERM)   # defaults.SIGNALLED_GRACE
    assert worker.wait(15) == 0
    farm.start_worker("shell")
    wait_until(lambda: len(pidfile.read_text().split()) == 2, what="the task again")
    client.cancel(task)
    result = task.result(30)
    assert result.status == "cancelled" and result.attempt == 2     # its second try
