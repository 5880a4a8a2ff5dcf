"""One message from a peer the port accepts must not stop or freeze the farm.

The TaskManager, a worker and an attacker each run on a host of their own
(network namespaces, tests/hosts.py); the attacker holds a key of each role
and sends frames as it likes (tests/rawpeer.py). After every attack a
legitimate client on another host runs a task and reads the farm's status
(tests/netclient.py). The numbers are the items of the hardening issue.
"""

import json
import os

import hosts
import msgpack
import pytest
from support import SecureFarm

from computefarm.wire import protocol
from computefarm.wire.protocol import Msg

TESTS = os.path.dirname(os.path.abspath(__file__))
PEERS = (("w1", "worker"), ("w2", "worker"), ("c1", "client"), ("c2", "client"),
         ("spare1", "monitor"))


@pytest.fixture(scope="module")
def lan():
    reason = hosts.available()
    assert reason is None, reason
    network = hosts.Network()
    try:
        for name in ("tm", "worker", "attacker"):
            network.add(name)
        yield network
    finally:
        network.close()


@pytest.fixture
def farm(lan, tmp_path):
    """A farm of its own for each attack: a crash in one must not hide another."""
    farm = SecureFarm(tmp_path, peers=PEERS)
    try:
        farm.start_taskmanager(bind="tcp://%s:0" % lan.hosts["tm"].address,
                               host=lan.hosts["tm"])
        farm.start_worker("shell", config=farm.peer_config("w1"), host=lan.hosts["worker"])
        yield farm
    finally:
        farm.close()


def attack(farm, lan, key, frames, no_read=False, linger=1.0, timeout=120):
    """Send ``frames`` (a list of (count, frame)) from the attacker's host as ``key``."""
    program = farm.dir / "frames.msgpack"
    program.write_bytes(msgpack.packb([[count, frame] for count, frame in frames]))
    argv = hosts.python(os.path.join(TESTS, "rawpeer.py"), farm.address, str(program))
    if no_read:
        argv.append("--no-read")
    argv += ["--linger", str(linger)]
    done = lan.hosts["attacker"].run(argv, capture_output=True, text=True, timeout=timeout,
                                     env=dict(os.environ, **farm.curve_env(key)))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def still_serving(farm, lan, tasks=3):
    """A legitimate client on the worker's host runs tasks; the farm's status."""
    assert farm.taskmanager.poll() is None, farm.taskmanager.log.read_text()[-3000:]
    argv = hosts.python(os.path.join(TESTS, "netclient.py"), farm.address,
                        "--tasks", str(tasks), "--timeout", "30")
    done = lan.hosts["worker"].run(argv, capture_output=True, text=True, timeout=60,
                                   env=dict(os.environ, **farm.curve_env("c1")))
    assert done.returncode == 0, (done.stderr[-2000:],
                                  farm.taskmanager.log.read_text()[-3000:])
    answer = json.loads(done.stdout)
    assert answer["statuses"] == ["ok"] * tasks
    assert answer["stdout"] == [[str(i)] for i in range(tasks)]
    assert farm.taskmanager.poll() is None
    return answer["status"]


def hello(role, name, **extra):
    return protocol.encode(Msg.HELLO, protocol.hello(role, name, "attacker", "spare1", 1,
                                                     **extra))


REPORT = {"machine": "spare1", "host": "attacker", "interval": 1.0, "cores": 2,
          "cpu_percent": 5.0, "memory_available": 1 << 30, "owner_cpu": 0.0}


def test_1_report_with_a_string_load_is_refused(farm, lan):
    bad = protocol.encode(Msg.REPORT, dict(REPORT, load_avg=["x"]))
    attack(farm, lan, "spare1", [(1, hello("monitor", "m")), (1, bad)])
    assert still_serving(farm, lan)["refused_messages"] == 1


def test_2_submit_with_mixed_key_types_is_refused(farm, lan):
    bad = protocol.encode(Msg.SUBMIT, {"tasks": [
        {"id": "t1", "capability": "shell", "body": protocol.pack_body({"cmd": "true"}),
         "requires": {b"os": "linux", "arch": "x86_64"}}]})
    attack(farm, lan, "c2", [(1, hello("client", "c")), (1, bad)])
    assert still_serving(farm, lan)["refused_messages"] == 1


def test_3_result_with_an_empty_error_is_taken(farm, lan):
    result = protocol.encode(Msg.RESULT, {"results": [
        protocol.result_item("nobody:1", 1, "failed", error="\n", exit_code=1)]})
    attack(farm, lan, "w2", [(1, hello("worker", "w", slots=1, capabilities={})),
                             (1, result)])
    assert still_serving(farm, lan)["refused_messages"] == 0


def test_4_hello_with_bytes_capability_names_is_refused(farm, lan):
    bad = hello("worker", "w", slots=1, capabilities={b"shell": {}})
    attack(farm, lan, "w2", [(1, bad)])
    assert still_serving(farm, lan)["refused_messages"] == 1


def test_5_a_peer_that_never_reads_cannot_freeze_the_taskmanager(farm, lan):
    """300,000 bad messages from a monitor's key, whose ERROR replies are never read
    (more than the send queue, the reader's queue and the kernel's buffers hold),
    the connection kept open until the TaskManager has taken them all in."""
    sent = attack(farm, lan, "spare1", [(1, hello("monitor", "m")), (300000, b"junk")],
                  no_read=True, linger=8.0)
    assert sent["sent"] == 300001
    status = still_serving(farm, lan)
    # what it took in before the peer left (the rest went with its connection):
    # more than the send queue of the first release held before it froze
    assert 100000 < status["refused_messages"] <= 300000
    assert status["loop"]["longest_ms"] < 1000
