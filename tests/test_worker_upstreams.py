"""A worker (and a monitor) serving several TaskManagers: slots lent by weight, by demand.

The real-farm tests run two TaskManagers on 127.0.0.1 and one worker of 4 slots
serving both; each task prints when it started and ended, so what the worker
ran at once is read from the tasks themselves, not from either TaskManager.
"""

import os
import shutil
import signal
import subprocess

import pytest
import yaml
from support import Farm, SecureFarm, command, wait_until, welcomes

from computefarm.client import Client
from computefarm.worker.upstreams import apportion

SLOTS = 4
TASK = 0.5
CMD = "date +%%s.%%N; sleep %s; date +%%s.%%N" % TASK


@pytest.mark.parametrize("slots, weights, wanted, holding, lent", [
    (4, [1, 1], [True, True], [0, 0], [2, 2]),
    (4, [1, 1], [True, False], [0, 0], [4, 0]),     # the other wants nothing: all of them
    (4, [3, 1], [True, True], [0, 0], [3, 1]),
    (4, [1, 1], [False, False], [0, 0], [2, 2]),   # nobody asks: each its share, to start
    (4, [1, 1], [True, False], [0, 1], [3, 1]),    # wants no more: at most what it has here
    (4, [1, 1], [True, False], [0, 3], [2, 2]),    # ... and never more than its share
    (8, [1, 1, 1], [True] * 3, [0] * 3, [3, 3, 2]),
    (1, [1, 1], [True, True], [1, 0], [0, 1]),     # one slot: the one without a task next
    (1, [1, 1], [True, True], [0, 1], [1, 0]),
])
def test_apportion_lends_by_weight_to_those_with_demand(slots, weights, wanted, holding, lent):
    assert apportion(slots, weights, wanted, holding) == lent


def intervals(results):
    """(start, end) wall times each task printed."""
    return [tuple(float(line) for line in r.stdout[:2]) for r in results]


def at_once(spans, moment):
    return sum(1 for start, end in spans if start <= moment < end)


def most_at_once(spans):
    return max(at_once(spans, start) for start, _ in spans)


def busy(spans, begin, end):
    return sum(max(0.0, min(e, end) - max(s, begin)) for s, e in spans)


@pytest.fixture
def two(tmp_path):
    for name in "ab":
        (tmp_path / name).mkdir()
    farms = [Farm(tmp_path / "a"), Farm(tmp_path / "b")]
    try:
        for farm in farms:
            farm.start_taskmanager()
        yield farms
    finally:
        for farm in farms:
            farm.close()


def start_shared_worker(farm, addresses, weights=()):
    args = ["--config", str(farm.config), "--slots", str(SLOTS), "--capability", "shell",
            "--log-level", "DEBUG"]
    for address in addresses:
        args += ["--taskmanager", address]
    for weight in weights:
        args += ["--weight", str(weight)]
    proc = farm.spawn("farm-worker", args, "worker")
    wait_until(lambda: welcomes(proc) >= len(addresses) or proc.poll() is not None,
               what="the worker welcomed by every TaskManager")
    assert proc.poll() is None, proc.log.read_text()
    return proc


def test_two_taskmanagers_share_a_worker_by_weight_and_one_alone_gets_it_all(two):
    a, b = two
    start_shared_worker(a, [a.address, b.address])
    ca, cb = Client(a.address), Client(b.address)
    a.clients.append(ca)
    b.clients.append(cb)
    alone = [f.result(60) for f in [ca.submit("shell", {"cmd": CMD}) for _ in range(8)]]
    assert all(r.ok for r in alone)
    assert most_at_once(intervals(alone)) == SLOTS          # B idle: A gets every slot
    futures = {"a": [ca.submit("shell", {"cmd": CMD}) for _ in range(24)],
               "b": [cb.submit("shell", {"cmd": CMD}) for _ in range(24)]}
    spans = {name: intervals([f.result(60) for f in fs]) for name, fs in futures.items()}
    everything = spans["a"] + spans["b"]
    assert most_at_once(everything) <= SLOTS                # a slot used by one at a time
    begin = max(min(s for s, _ in spans[n]) for n in spans) + 1.0   # both under way
    end = min(max(e for _, e in spans[n]) for n in spans) - 1.0     # ... until one is done
    assert end - begin > 2.0
    share = busy(spans["a"], begin, end) / busy(everything, begin, end)
    assert abs(share - 0.5) <= 0.05, share                 # within 10% of half
    status = ca.status()
    worker = status["workers"][0]
    assert worker["serves"] == [a.address, b.address]


def test_weights_and_a_taskmanager_killed_does_not_stop_the_other(two):
    a, b = two
    start_shared_worker(a, [a.address, b.address], weights=(3, 1))
    monitor = a.spawn("farm-monitor", ["--config", str(a.config), "--taskmanager", a.address,
                                       "--taskmanager", b.address, "--machine", "shared",
                                       "--interval", "0.2", "--owner-scope",
                                       str(os.getpid())], "monitor")
    ca, cb = Client(a.address), Client(b.address)
    a.clients.append(ca)
    b.clients.append(cb)
    for client in (ca, cb):                                # one monitor reports to both
        wait_until(lambda: any(m["id"] == "shared" and m["cpu_percent"] is not None
                               for m in client.status()["machines"]), what="a report")
    fa = [ca.submit("shell", {"cmd": CMD}) for _ in range(24)]
    # A's demand is known to the worker before B's tasks come (else B may be
    # lent slots first, and what runs is not taken back)
    wait_until(lambda: ca.status()["running"], what="A's tasks running")
    fb = [cb.submit("shell", {"cmd": CMD}) for _ in range(24)]
    first = intervals([f.result(60) for f in fb[:4]])
    assert most_at_once(first) == 1                          # 3:1 of 4 slots while A wants
    wait_until(lambda: sum(f.done() for f in fa) >= 8, timeout=30, what="A's tasks running")
    a.taskmanager.send_signal(signal.SIGKILL)               # A is gone, mid-run
    a.taskmanager.wait(10)
    results = [f.result(60) for f in fb]
    assert all(r.ok for r in results)
    spans = intervals(results)
    assert most_at_once(spans) == SLOTS                     # B then gets every slot
    assert monitor.poll() is None


def test_farm_yaml_lists_the_taskmanagers_a_machine_serves(two, tmp_path):
    a, b = two
    config = tmp_path / "shared.yaml"
    config.write_text(yaml.safe_dump({
        "taskmanager": {"heartbeat_interval": 0.2, "heartbeat_liveness": 3},
        "logging": {"records": str(tmp_path / "records.jsonl"), "cutelog": None},
        "machines": {"shared": {
            "workers": [{"capabilities": ["shell"], "slots": SLOTS}],
            "taskmanagers": [{"address": a.address}, {"address": b.address, "weight": 3}]}}}))
    worker = a.spawn("farm-worker", ["--config", str(config), "--machine", "shared"], "worker")
    wait_until(lambda: welcomes(worker) >= 2 or worker.poll() is not None,
               what="the worker welcomed by both")
    assert worker.poll() is None, worker.log.read_text()
    a.spawn("farm-monitor", ["--config", str(config), "--machine", "shared", "--interval",
                             "0.2", "--owner-scope", str(os.getpid())], "monitor")
    for farm in (a, b):
        client = farm.client()
        wait_until(lambda: any(m["id"] == "shared" and m["cpu_percent"] is not None
                               for m in client.status()["machines"]), what="a report")
        assert client.status()["workers"][0]["serves"] == [a.address, b.address]
        assert client.submit("shell", {"cmd": "true"}).result(30).ok
    got = subprocess.run(command("farm-worker") + ["--config", str(config), "--machine",
                                                   "shared", "--weight", "2"],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 2 and got.stderr.strip().endswith(
        "--weight goes with --taskmanager; %s gives the weights of machine shared's "
        "TaskManagers" % config), got.stderr


def test_a_machine_serves_two_farms_with_keys_of_their_own(tmp_path):
    """Two TaskManagers with different key pairs; the worker's one key is authorized
    by both, and farm.yaml names each TaskManager's public key file."""
    a = SecureFarm(tmp_path / "a", peers=(("w1", "worker"), ("c1", "client")))
    b = SecureFarm(tmp_path / "b", peers=(("c1", "client"),))
    try:
        shutil.copy(a.keydir / "authorized" / "w1.key", b.keydir / "authorized" / "w1.key")
        for farm in (a, b):
            farm.start_taskmanager()
        config = tmp_path / "shared.yaml"
        config.write_text(yaml.safe_dump({
            "taskmanager": {"heartbeat_interval": 0.2, "heartbeat_liveness": 3},
            "logging": {"records": str(tmp_path / "records.jsonl"), "cutelog": None},
            "keys": {"server": str(a.keydir / "taskmanager.key"),
                     "secret": str(a.keydir / "peers" / "w1.key_secret")},
            "machines": {"shared": {
                "workers": [{"capabilities": ["shell"], "slots": 2}],
                "taskmanagers": [{"address": a.address},
                                 {"address": b.address,
                                  "server": str(b.keydir / "taskmanager.key")}]}}}))
        worker = a.spawn("farm-worker", ["--config", str(config), "--machine", "shared"],
                         "worker")
        wait_until(lambda: welcomes(worker) >= 2 or worker.poll() is not None,
                   what="the worker welcomed by both")
        assert worker.poll() is None, worker.log.read_text()
        for farm in (a, b):
            assert farm.secure_client("c1").submit("shell", {"cmd": "true"}).result(30).ok
    finally:
        b.close()
        a.close()
