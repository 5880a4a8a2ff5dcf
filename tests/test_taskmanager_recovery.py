"""Lost workers, a restarted TaskManager, bad input, timeouts, signals."""

import signal
import socket
import subprocess
import sys
import time

import pytest
import zmq
from support import Farm, pid_alive, wait_until

from computefarm import localkeys
from computefarm.exceptions import FarmUnreachable
from computefarm.wire import protocol
from computefarm.wire.protocol import Msg


def _started(path):
    return lambda: path.exists() and path.read_text().strip()


def test_killed_worker_task_completes_elsewhere_on_attempt_two(farm, tmp_path):
    first = farm.start_worker("shell", machine="first")
    client = farm.client()
    marker = tmp_path / "attempt1"
    cmd = ('if [ "$COMPUTEFARM_ATTEMPT" = 1 ]; then echo $$ > %s; exec sleep 60; fi; '
           'echo done' % marker)
    future = client.submit("shell", {"cmd": cmd})
    wait_until(_started(marker), what="attempt 1 running")
    farm.start_worker("shell", machine="second")
    first.send_signal(signal.SIGKILL)
    result = future.result(30)
    assert result.ok and result.attempt == 2 and result.machine == "second"
    assert result.stdout == ["done"]


def test_lost_on_every_attempt_fails_naming_host_and_worker(farm, tmp_path):
    client = farm.client()
    marker = tmp_path / "started"
    future = client.submit("shell", {"cmd": "echo $$ > %s; exec sleep 60" % marker},
                           max_attempts=1)
    worker = farm.start_worker("shell")
    wait_until(_started(marker), what="task running")
    worker.send_signal(signal.SIGKILL)
    result = future.result(30)
    assert result.status == "lost"
    assert "stopped answering" in result.error and "attempt 1 of 1" in result.error
    assert "on host %s" % socket.gethostname() in result.error and "worker-" in result.error


def runs_of(folder, count):
    """How many times each of ``count`` tasks ran (each appends a line to its file)."""
    return [len((folder / str(i)).read_text().splitlines()) if (folder / str(i)).exists()
            else 0 for i in range(count)]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_taskmanager_restart_loses_nothing_and_runs_nothing_twice(farm, tmp_path, stop):
    """Killed (or stopped: a handover) and started again a second later: every
    task runs once, its result reaches its client once."""
    runs = tmp_path / "runs"
    runs.mkdir()
    farm.start_worker("shell", slots=2)
    farm.start_worker("shell", slots=2)
    client = farm.client()
    futures = [client.submit("shell", {"cmd": "echo $$ >> %s/%d; sleep 0.4; echo %d"
                                              % (runs, i, i)}) for i in range(16)]
    wait_until(lambda: sum(f.done() for f in futures) >= 2, what="some tasks done")
    port = farm.address
    assert farm.stop(farm.taskmanager, stop) in (0, -signal.SIGKILL)
    time.sleep(1.0)                     # the outage itself: nothing to wait for
    farm.start_taskmanager(bind=port)
    results = [f.result(60) for f in futures]
    assert [r.stdout for r in results] == [[str(i)] for i in range(16)]
    assert all(r.ok for r in results)
    assert runs_of(runs, 16) == [1] * 16
    assert client.stats["results"] == 16 and client.stats["duplicate_results"] == 0


def test_garbage_never_kills_the_taskmanager(farm):
    farm.start_worker("shell")
    host, port = farm.address[len("tcp://"):].rsplit(":", 1)
    for blob in (b"\x00" * 64, b"GET / HTTP/1.0\r\n\r\n", bytes(range(256)) * 40):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(blob)
    context = zmq.Context.instance()
    peer = context.socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    # an authenticated peer (this user's local keys) sending garbage
    peer.curve_publickey, peer.curve_secretkey, peer.curve_serverkey = \
        localkeys.peer_curve(farm.address)
    peer.connect(farm.address)
    bad = [
        [b"no header"],
        [b"XX\x01\x06" + b"\x80"],
        [b"CF\x09\x06\x80"],                                   # wrong version
        [b"CF\x01\x63\x80"],                                   # unknown type
        [b"CF\x01\x06\xc1"],                                   # msgpack never-used byte
        [b"CF\x01\x06\x93\x01\x02\x03"],                       # a list, not a map
        [protocol.encode(Msg.SUBMIT, {"tasks": [{"id": 1}]})],  # wrong field types
        [protocol.encode(Msg.SUBMIT, {"tasks": "x"})],
        [protocol.encode(Msg.HELLO, {"role": "king", "id": "x", "host": "h", "machine": "m"})],
        [protocol.encode(Msg.RESULT, {"results": []}), b"extra frame"],
        [b""], [b"CF\x01\x06" + b"\x00" * (2 * 1024 * 1024)],   # oversized
    ]
    for frames in bad:
        peer.send_multipart(frames)
    client = farm.client()
    assert client.submit("shell", {"cmd": "echo alive"}).result(20).stdout == ["alive"]
    assert farm.taskmanager.poll() is None
    log = farm.taskmanager.log.read_text()
    assert "unknown message type 99" in log and "protocol version 9" in log
    assert client.status()["refused_messages"] >= len(bad) - 2   # oversized: disconnected
    assert "Traceback" not in log
    peer.close()


def test_timeout_kills_the_whole_tree(farm, tmp_path):
    farm.start_worker("shell")
    client = farm.client()
    pids = tmp_path / "pids"
    cmd = ("sleep 60 & echo $! >> {p}; (setsid sleep 60 & echo $! >> {p}; wait) & "
           "echo $$ >> {p}; wait").format(p=pids)
    result = client.submit("shell", {"cmd": cmd}, timeout=1.0).result(30)
    assert result.status == "timeout", result
    numbers = [int(x) for x in pids.read_text().split()]
    assert len(numbers) == 3
    assert not [pid for pid in numbers if pid_alive(pid)]


def test_sigterm_worker_hands_back_and_leaves_nothing(farm, tmp_path):
    first = farm.start_worker("shell", machine="first")
    client = farm.client()
    marker = tmp_path / "pid"
    cmd = 'if [ "$COMPUTEFARM_ATTEMPT" = 1 ]; then echo $$ > %s; exec sleep 60; fi; echo ok' % marker
    future = client.submit("shell", {"cmd": cmd})
    wait_until(_started(marker), what="task running")
    assert farm.stop(first) == 0
    assert not pid_alive(int(marker.read_text()))
    farm.start_worker("shell", machine="second")
    result = future.result(30)
    assert result.ok and result.machine == "second" and result.stdout == ["ok"]


def test_a_stopped_taskmanager_that_does_not_return_fails_the_tasks_after_its_wait(
        tmp_path):
    """SIGTERM is a handover: the running task goes on, the client waits
    ``handover_wait``, then its outstanding tasks fail saying so; a later submit
    works once a TaskManager is back."""
    farm = Farm(tmp_path, handover_wait=1.5)
    try:
        farm.start_taskmanager()
        worker = farm.start_worker("shell")
        client = farm.client(on_notice=lambda *a: None)
        marker = tmp_path / "pid"
        future = client.submit("shell", {"cmd": "echo $$ > %s; exec sleep 60" % marker})
        wait_until(_started(marker), what="task running")
        address = farm.address
        assert farm.stop(farm.taskmanager) == 0
        with pytest.raises(FarmUnreachable, match="was not back within 1.5s"):
            future.result(30)
        assert pid_alive(int(marker.read_text())) and worker.poll() is None
        farm.start_taskmanager(bind=address)
        # the task it gave up on is cancelled there (the worker's one slot is free)
        assert client.submit("shell", {"cmd": "echo back"}).result(60).stdout == ["back"]
        assert not pid_alive(int(marker.read_text()))
    finally:
        farm.close()


def test_vanished_client_has_its_tasks_cancelled(farm, tmp_path):
    farm.start_worker("shell")
    marker = tmp_path / "pid"
    script = ("import sys, time; from computefarm.client import Client; "
              "c = Client(sys.argv[1]); "
              "c.submit('shell', {'cmd': 'echo $$ > %s; exec sleep 60'}); "
              "time.sleep(60)" % marker)
    proc = subprocess.Popen([sys.executable, "-c", script, farm.address])
    farm.processes.append(proc)
    wait_until(_started(marker), what="task running")
    proc.send_signal(signal.SIGKILL)
    wait_until(lambda: not pid_alive(int(marker.read_text())), what="orphaned task cancelled")


def test_result_finished_while_taskmanager_away_is_delivered(farm, tmp_path):
    farm.start_worker("shell")
    client = farm.client()
    started, finished = tmp_path / "started", tmp_path / "finished"
    future = client.submit("shell", {"cmd": "echo 1 > %s; sleep 0.5; echo out; echo 1 > %s"
                                            % (started, finished)})
    wait_until(_started(started), what="task running")
    address = farm.address
    farm.taskmanager.send_signal(signal.SIGKILL)
    farm.taskmanager.wait(10)
    wait_until(_started(finished), what="task finished while the TaskManager is down")
    assert not future.done()
    farm.start_taskmanager(bind=address)
    result = future.result(30)
    assert result.ok and result.stdout == ["out"] and result.attempt == 1
    assert client.stats["duplicate_results"] == 0


def test_a_restart_under_20000_large_tasks_resubmits_them_all(farm):
    """Item 13: 20,000 queued tasks of 4 KB command lines (80 MB, more than one
    message may hold) are resubmitted after a restart in messages under the
    limit, and all of them are queued again."""
    client = farm.client(on_notice=lambda *a: None)
    line = "echo " + "x" * 4096
    futures = [client.submit("nowhere", {"cmd": line}) for _ in range(20000)]
    wait_until(lambda: client.status()["queues"].get("nowhere") == 20000, timeout=60,
               what="20,000 tasks queued")
    address = farm.address
    farm.stop(farm.taskmanager, signal.SIGKILL)
    farm.start_taskmanager(bind=address)
    wait_until(lambda: client.stats["resubmitted"] >= 20000, timeout=60,
               what="the tasks resubmitted")
    # held for the recovery grace, then queued again: all of them
    wait_until(lambda: client.status()["queues"].get("nowhere") == 20000, timeout=60,
               what="20,000 tasks queued again")
    assert not any(future.done() for future in futures)
    assert "dropped a message" not in farm.taskmanager.log.read_text()
