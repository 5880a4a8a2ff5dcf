"""farm-factory: pilots as the demand asks, on this machine and on a real SLURM.

The SLURM tests start a single-node cluster of their own (tests/cluster.py:
munged, slurmctld, slurmd from Debian's packages) and stop it afterwards.
"""

import subprocess
import time

import cluster
import pytest
import yaml
from support import running_secure_farm, wait_until

from computefarm.commands.statusview import render
from computefarm.config import FactoryConfig
from computefarm.factory.backends import PENDING, RUNNING
from computefarm.factory.policy import plan

PEERS = (("c1", "client"), ("factory", "client"), ("pilots", "worker"))


def settings(**values):
    config = FactoryConfig(backend="local")
    for key, value in values.items():
        setattr(config, key, value)
    return config


def test_the_plan_follows_the_demand_between_min_and_max():
    rows = [{"capability": "shell", "requires": {}, "queued": 200, "slots": 0, "free": 0},
            {"capability": "gcc", "requires": {}, "queued": 50, "slots": 0, "free": 0},
            {"capability": "shell", "requires": {"site": "lab"}, "queued": 9, "slots": 0,
             "free": 0}]
    assert plan(rows, {}, settings(max=8)) == (8, [])             # at once, up to max
    assert plan(rows, {"a": RUNNING}, settings(max=8)) == (7, [])
    assert plan(rows, {}, settings(max=100, slots=4)) == (50, [])  # 200 / 4
    assert plan(rows, {}, settings(max=100, attributes={"site": "lab"})) == (100, [])
    few = [{"capability": "shell", "requires": {}, "queued": 3, "slots": 2, "free": 1}]
    assert plan(few, {"p1": PENDING}, settings(max=8)) == (1, [])   # 3 - 1 free - 1 coming
    assert plan([], {}, settings(min=2)) == (2, [])
    pilots = {"p1": PENDING, "p2": PENDING, "p3": RUNNING}
    assert plan([], pilots, settings(min=1)) == (0, ["p1", "p2"])  # queued in the engine
    assert plan([], pilots, settings(min=2)) == (0, ["p2"])
    assert plan([], {"p1": RUNNING}, settings()) == (0, [])        # running ones leave idle


def factory_config(farm, backend, **factory):
    """The factory's farm.yaml (its client key) and the pilots' (their worker key)."""
    pilots = farm.peer_config("pilots")
    section = {"backend": backend, "interval": 0.5, "idle_exit": 2.0,
               "pilot_config": str(pilots), "workdir": str(farm.dir / "factory")}
    section.update(factory)
    path = farm.dir / "factory.yaml"
    path.write_text(yaml.safe_dump({
        "taskmanager": {"address": farm.address},
        "keys": {"server": str(farm.keydir / "taskmanager.key"),
                 "secret": str(farm.keydir / "peers" / "factory.key_secret")},
        "factory": section}))
    return path


def start_factory(farm, config):
    return farm.spawn("farm-factory", ["--config", str(config), "--log-level", "DEBUG"],
                      "factory")


@pytest.fixture
def farm(tmp_path):
    with running_secure_farm(tmp_path, PEERS) as farm:
        yield farm


def test_a_burst_gets_local_pilots_at_once_and_they_leave_when_idle(farm):
    client = farm.secure_client("c1")
    futures = [client.submit("shell", {"cmd": "sleep 0.2; echo %d" % i}) for i in range(30)]
    factory = start_factory(farm, factory_config(farm, "local", max=3))
    wait_until(lambda: len(client.status()["workers"]) == 3, what="3 pilots")
    assert [f.result(60).stdout for f in futures] == [[str(i)] for i in range(30)]
    drained = time.monotonic()
    wait_until(lambda: client.status()["workers"] == [], timeout=30, what="pilots gone")
    assert time.monotonic() - drained < 2.0 + 30
    [report] = client.status()["factories"]
    assert report["started"] == 3 and report["error"] is None and report["backend"] == "local"
    assert farm.stop(factory) == 0


def test_a_failing_engine_is_shown_and_retried_never_fatal(farm, tmp_path):
    broken = tmp_path / "broken.conf"
    broken.write_text("ClusterName=nowhere\n")           # no SlurmctldHost: every command fails
    config = factory_config(farm, "slurm", slurm={"conf": str(broken)})
    factory = start_factory(farm, config)
    client = farm.secure_client("c1")
    client.submit("shell", {"cmd": "true"})
    report = wait_until(lambda: [f for f in client.status()["factories"] if f["error"]],
                        what="the factory's error in farm-status")[0]
    assert "squeue" in report["error"] and "configuration file" in report["error"]
    shown = "\n".join(render(client.status(), farm.address, width=300))
    assert "FACTORIES" in shown and "Unable to process configuration file" in shown
    assert "shell " in shown and "1 waiting, 0 slot(s) could take them" in shown
    log = factory.log.read_text()
    assert log.count("ERROR") == 1 and "trying again in" in log
    assert factory.poll() is None and farm.taskmanager.poll() is None
    assert farm.stop(factory) == 0


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = cluster.available()
    assert reason is None, reason
    cluster_ = cluster.SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster_.start()
        yield cluster_
    finally:
        cluster_.stop()


def slurm_factory(farm, slurm, **factory):
    options = {"max": 8, "name": "cf-test-%d" % time.monotonic_ns(),
               "slurm": {"conf": slurm.conf}}
    options.update(factory)
    return factory_config(farm, "slurm", **options), options["name"]


def test_slurm_a_burst_of_200_tasks_from_no_pilots(farm, slurm):
    client = farm.secure_client("c1")
    config, name = slurm_factory(farm, slurm, idle_exit=3.0)
    futures = [client.submit("shell", {"cmd": "sleep 0.05; echo %d" % i}) for i in range(200)]
    started = time.monotonic()
    factory = start_factory(farm, config)
    wait_until(lambda: len(slurm.jobs(name)) == 8, timeout=30, what="8 pilots submitted")
    submitted = time.monotonic() - started
    results = [f.result(180) for f in futures]
    assert [r.stdout for r in results] == [[str(i)] for i in range(200)]
    machines = {r.machine for r in results}
    assert machines and all(m.startswith("slurm-") for m in machines)
    drained = time.monotonic()
    wait_until(lambda: not slurm.jobs(name), timeout=3.0 + 30, what="every pilot gone")
    print("pilots submitted %.1f s after the factory started; %d pilots ran tasks; "
          "all gone %.1f s after the queue drained" % (submitted, len(machines),
                                                         time.monotonic() - drained))
    assert wait_until(lambda: client.status()["workers"] == [], what="no pilot registered")
    assert farm.stop(factory) == 0


def test_slurm_a_pilot_cancelled_mid_task_loses_nothing(farm, slurm, tmp_path):
    client = farm.secure_client("c1")
    config, name = slurm_factory(farm, slurm, max=2, idle_exit=5.0)
    marks = tmp_path / "marks"
    marks.mkdir()
    task = client.submit("shell", {"cmd": "echo $SLURM_JOB_ID >> %s/runs; sleep 4; echo done"
                                   % marks})
    factory = start_factory(farm, config)
    first = wait_until(lambda: (marks / "runs").exists() and
                       (marks / "runs").read_text().split(), timeout=60,
                       what="the task running in a pilot")[0]
    subprocess.run(["scancel", first], check=True, env=slurm.env)
    result = task.result(120)
    assert result.ok and result.stdout == ["done"]
    runs = (marks / "runs").read_text().split()
    assert runs[0] == first and len(runs) == 2 and runs[1] != first
    assert result.machine == "slurm-%s" % runs[1]
    assert farm.stop(factory) == 0
