"""A worker's host cut off from the TaskManager and healed (hardening item 12):
nothing lost, every result taken once.

The TaskManager, two workers and a client each run on a host of their own
(network namespaces on a bridge, tests/hosts.py); the partition is iptables
dropping every packet of one worker's host, both ways, for a while.
"""

import json
import os
import subprocess
import threading

import hosts
import pytest
from support import SecureFarm, wait_until

TESTS = os.path.dirname(os.path.abspath(__file__))
PEERS = (("w1", "worker"), ("w2", "worker"), ("c1", "client"))
TASKS = 24


@pytest.fixture
def lan():
    reason = hosts.available()
    assert reason is None, reason
    network = hosts.Network()
    try:
        for name in ("tm", "w1", "w2", "laptop"):
            network.add(name)
        yield network
    finally:
        network.close()


@pytest.mark.parametrize("seconds", [1.0, 5.0])
def test_a_partitioned_worker_loses_nothing_and_results_are_taken_once(lan, tmp_path,
                                                                       seconds):
    """Both partitions outlast the peer timeout here (3 heartbeats of 0.2 s): the
    cut-off worker's tasks are rerun on the other one, and when its host comes
    back its late results are not taken a second time."""
    farm = SecureFarm(tmp_path, peers=PEERS)
    client = None
    try:
        farm.start_taskmanager(bind="tcp://%s:0" % lan.hosts["tm"].address,
                               host=lan.hosts["tm"])
        cut = farm.start_worker("shell", slots=4, config=farm.peer_config("w1"),
                                host=lan.hosts["w1"])
        farm.start_worker("shell", slots=4, config=farm.peer_config("w2"),
                          host=lan.hosts["w2"])
        marks = tmp_path / "marks"
        marks.mkdir()
        argv = hosts.python(os.path.join(TESTS, "netclient.py"), farm.address, "--tasks",
                            str(TASKS), "--sleep", "0.5", "--timeout", "60",
                            "--mark", str(marks))
        client = lan.hosts["laptop"].popen(argv, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True,
                                           env=dict(os.environ, **farm.curve_env("c1")))
        wait_until(lambda: len(os.listdir(marks)) >= 8, timeout=30, what="tasks running")
        lan.hosts["w1"].partition()
        healed = threading.Event()
        timer = threading.Timer(seconds, lambda: (lan.hosts["w1"].heal(), healed.set()))
        timer.start()
        out, err = client.communicate(timeout=120)
        timer.join()
        assert healed.is_set()
        assert client.returncode == 0, err[-3000:]
        answer = json.loads(out)
        assert answer["statuses"] == ["ok"] * TASKS
        assert answer["stdout"] == [[str(i)] for i in range(TASKS)]
        assert answer["stats"]["duplicate_results"] == 0
        assert answer["status"]["internal_errors"] == 0
        farm.wait_registered(cut, after=1)          # back, and welcomed again
    finally:
        if lan.hosts["w1"].partitioned:
            lan.hosts["w1"].heal()
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        farm.close()
