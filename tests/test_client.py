"""Routing, slots, constraints, notices and the client library against real processes."""

import re

import pytest
from support import pid_alive, wait_until

from computefarm.client import Client, FarmExecutor
from computefarm.exceptions import ConfigError


def test_routing_by_capability_and_constraint(farm):
    a = farm.start_worker("shell", machine="ma", attrs=["zone=a"])
    b = farm.start_worker("shell", "python", machine="mb", attrs=["zone=b"])
    client = farm.client()
    to_b = [client.submit("shell", {"cmd": "true"}, requires={"zone": "b"}) for _ in range(4)]
    to_a = [client.submit("shell", {"cmd": "true"}, requires={"zone": "a"}) for _ in range(4)]
    py = client.submit("python", {"payload": _payload(sum, [1, 2])})
    assert {f.result(20).machine for f in to_b} == {"mb"}
    assert {f.result(20).machine for f in to_a} == {"ma"}
    assert py.result(20).machine == "mb"
    assert a.poll() is None and b.poll() is None


def test_version_comparison_constraint(farm):
    farm.start_worker("shell", machine="old", attrs=["tool=9.2"])
    farm.start_worker("shell", machine="new", attrs=["tool=12.1"])
    client = farm.client()
    futures = [client.submit("shell", {"cmd": "true"}, requires={"tool": ">=10"})
               for _ in range(5)]
    assert {f.result(20).machine for f in futures} == {"new"}


def test_slots_are_respected(farm, tmp_path):
    farm.start_worker("shell", slots=2)
    client = farm.client()
    log = tmp_path / "spans"
    cmd = "echo start $(date +%%s.%%N) >> %s; sleep 0.4; echo end $(date +%%s.%%N) >> %s" % (
        log, log)
    results = [f.result(30) for f in [client.submit("shell", {"cmd": cmd}) for _ in range(3)]]
    assert all(r.ok for r in results)
    events = sorted((float(t), kind) for kind, t in
                    (line.split() for line in log.read_text().splitlines()))
    running = peak = 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_output_streams_and_task_environment(farm):
    farm.start_worker("shell")
    client = farm.client()
    seen = []
    result = client.submit("shell", {"cmd": 'echo "id=$COMPUTEFARM_TASK_ID try=$COMPUTEFARM_ATTEMPT";'
                                             ' echo oops >&2; exit 4'},
                           on_output=lambda stream, line: seen.append((stream, line))).result(20)
    assert result.status == "failed" and result.exit_code == 4
    # the farm-wide id: the submitting key's scope, then the client's own id
    assert re.fullmatch(r"id=[0-9a-f]{12}/%s try=1" % re.escape(result.id), result.stdout[0])
    assert result.stderr == ["oops"]
    assert ("stderr", "oops") in seen


def test_missing_capability_waits_and_client_is_told(farm):
    notices = []
    client = farm.client(on_notice=lambda level, code, text, ids: notices.append(text))
    future = client.submit("gcc", {"action": "compile", "source": "x.c", "output": "x.o"})
    wait_until(lambda: notices, timeout=5, what="notice")
    assert "no worker offers capability 'gcc' yet" in notices[0]
    assert not future.done()
    client.submit("shell", {"cmd": "true"}, requires={"zone": "mars"})
    farm.start_worker("shell", attrs=["zone=earth"])
    client.submit("shell", {"cmd": "true"}, requires={"zone": "mars"})
    wait_until(lambda: any("matches zone=mars" in n for n in notices), timeout=5,
               what="constraint notice")


def test_bad_request_is_an_error_result_not_a_crash(farm):
    worker = farm.start_worker("shell")
    client = farm.client()
    result = client.submit("shell", {"nothing": 1}).result(20)
    assert result.status == "error" and "needs 'cmd'" in result.error
    assert client.submit("shell", {"cmd": "true"}).result(20).ok
    assert worker.poll() is None


def test_farm_executor_runs_callables_and_reraises(farm):
    farm.start_worker("python", slots=2)
    with FarmExecutor(farm.address) as executor:
        assert list(executor.map(lambda x: x * x, range(20))) == [x * x for x in range(20)]
        failing = executor.submit(int, "not a number")
        try:
            failing.result(20)
        except ValueError as exc:
            assert "not a number" in str(exc)
        else:
            raise AssertionError("ValueError expected")


def test_cancel_stops_a_running_task(farm, tmp_path):
    farm.start_worker("shell")
    client = farm.client()
    marker = tmp_path / "pid"
    future = client.submit("shell", {"cmd": "echo $$ > %s; exec sleep 60" % marker})
    wait_until(lambda: marker.exists() and marker.read_text().strip(), what="task started")
    pid = int(marker.read_text())
    assert future.cancel()
    from support import pid_alive
    wait_until(lambda: not pid_alive(pid), timeout=10, what="cancelled task gone")
    # the slot is free again
    assert client.submit("shell", {"cmd": "true"}).result(20).ok


def test_priority_orders_the_queue(farm, tmp_path):
    waiting = set()
    client = farm.client(on_notice=lambda level, code, text, ids: waiting.update(ids))
    order = tmp_path / "order"
    futures = []
    for p in (1, 5, 3):   # distinct constraints: one notice each, so each is seen queued
        futures.append(client.submit("shell", {"cmd": "echo %d >> %s" % (p, order)},
                                     priority=p, requires={"rank": ">=%d" % p}))
        wait_until(lambda: futures[-1].task_id in waiting, what="task queued")
    farm.start_worker("shell", attrs=["rank=10"])
    for f in futures:
        assert f.result(20).ok
    assert order.read_text().split() == ["5", "3", "1"]


def _payload(fn, *args):
    import cloudpickle
    return cloudpickle.dumps((fn, args, {}))


def test_farm_executor_cancel_stops_the_task_on_the_farm(farm, tmp_path):
    """A FarmExecutor future is the one the client resolves: cancel() stops its
    task on the worker (the slot running it is killed and replaced), and
    shutdown(cancel_futures=True) does so for what is left."""
    farm.start_worker("python", slots=2)
    slow = lambda path: (open(path, "w").write(str(__import__("os").getpid())),  # noqa: E731
                         __import__("time").sleep(60))
    executor = FarmExecutor(farm.address)
    try:
        first, second = tmp_path / "first", tmp_path / "second"
        futures = [executor.submit(slow, str(first)), executor.submit(slow, str(second))]
        wait_until(lambda: first.exists() and first.read_text() and second.exists()
                   and second.read_text(), what="both tasks running")
        assert futures[0].cancel() and futures[0].cancelled()
        wait_until(lambda: not pid_alive(int(first.read_text())), what="first slot stopped")
        assert pid_alive(int(second.read_text()))
    finally:
        executor.shutdown(cancel_futures=True)
    wait_until(lambda: not pid_alive(int(second.read_text())), what="second slot stopped")
    assert futures[1].cancelled()


def test_a_malformed_address_is_refused_at_once():
    with pytest.raises(ConfigError, match="expected tcp://HOST:PORT, got '127.0.0.1:5555'"):
        Client("127.0.0.1:5555")


TASKS = 600


def test_a_task_s_lines_reach_its_client_before_its_result(farm):
    """The TaskManager sends a client's OUTPUT before its RESULTs of one loop turn:
    a client forgets a task once its result is in, so later lines were lost."""
    farm.start_worker("shell", slots=2)
    client = farm.client()
    events = []
    futures = []
    for index in range(TASKS):
        future = client.submit("shell", {"cmd": "echo line-%d" % index},
                               on_output=lambda stream, line: events.append(line))
        future.add_done_callback(lambda f, index=index: events.append("done-%d" % index))
        futures.append(future)
    assert all(f.result(60).ok for f in futures)
    for index in range(TASKS):
        assert events.index("line-%d" % index) < events.index("done-%d" % index), index


OWNER = """
import sys, time
from computefarm.client import LocalFarm
farm = LocalFarm(["python"], slots=1, log_dir=sys.argv[1], monitor=True, log_level="INFO")
farm.start()
print(" ".join(str(p.pid) for p in farm.processes), flush=True)
time.sleep(120)
"""


NEXT_OWNER = """
from computefarm.client import LocalFarm
with LocalFarm(["python"], slots=1):
    pass
"""


def test_a_local_farm_whose_owner_is_killed_stops(tmp_path):
    """kill -9 of the program that started a LocalFarm (majordomo, a script) cannot
    stop its processes: each notices its parent is gone and stops as on SIGTERM.
    Its temporary folder is removed by the next LocalFarm started (not another's
    whose owner lives)."""
    import os
    import signal
    import subprocess
    import sys
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = dict(os.environ, TMPDIR=str(temporary))
    owner = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                             stdout=subprocess.PIPE, text=True, env=env)
    pids = []
    try:
        pids = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(pids) == 3 and all(pid_alive(pid) for pid in pids)   # TM, worker, monitor
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(10)
        wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout=30,
                   what="the farm's processes stopping")
        for name in ("taskmanager-0", "worker-1", "monitor-2"):
            log = (tmp_path / (name + ".log")).read_text()
            assert "(pid %d) is gone" % owner.pid in log, (name, log)
            assert "Traceback" not in log, (name, log)
        [left] = [p.name for p in temporary.iterdir()]
        assert left.startswith("computefarm-%d-" % owner.pid)
        alive = temporary / ("computefarm-%d-x" % os.getpid())        # its owner lives
        alive.mkdir()
        started = subprocess.run([sys.executable, "-c", NEXT_OWNER], env=env, timeout=60,
                                 capture_output=True, text=True)
        assert started.returncode == 0, started.stderr
        assert [p.name for p in temporary.iterdir()] == [alive.name]
    finally:
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
