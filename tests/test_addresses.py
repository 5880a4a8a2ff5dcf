"""Addresses are parsed in one place; a bad one is a ConfigError naming where. IPv6
loopback works for the TaskManager and every peer."""

import json
import os
import socket
import subprocess

import pytest
from support import Farm, command, run_tool, wait_until

from computefarm import addresses, localkeys
from computefarm.client import Client, LocalFarm
from computefarm.exceptions import ConfigError


@pytest.mark.parametrize("text, expected", [
    ("tcp://127.0.0.1:5555", ("127.0.0.1", 5555)),
    ("tcp://[::1]:80", ("::1", 80)),
    ("tcp://build-1.example.org:1", ("build-1.example.org", 1)),
    ("tcp://*:5555", ("*", 5555)),
])
def test_split_accepts_tcp_addresses(text, expected):
    assert addresses.split(text) == expected


@pytest.mark.parametrize("text", ["http://x:1", "tcp://x", "tcp://x:0", "tcp://x:70000", 5555,
                                  "tcp://a b:1"])
def test_split_refuses_with_the_place_named(text):
    with pytest.raises(ConfigError, match="^taskmanager.address: expected tcp://HOST:PORT"):
        addresses.split(text, "taskmanager.address")


def test_port_zero_only_where_allowed_and_tcp_brackets_ipv6():
    assert addresses.split("tcp://127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)
    assert addresses.tcp("::1", 9) == "tcp://[::1]:9"
    assert addresses.split_host_port("127.0.0.1:19996") == ("127.0.0.1", 19996)
    assert addresses.is_loopback("::1") and not addresses.is_loopback("0.0.0.0")


def test_loopback_and_ipv6_hosts_however_written():
    assert addresses.is_loopback("0:0:0:0:0:0:0:1") and addresses.is_loopback("127.0.0.2")
    assert not addresses.is_loopback("::") and not addresses.is_loopback("example.org")
    assert addresses.is_ipv6("tcp://[::1]:0") and addresses.is_ipv6("tcp://[::]:5555")
    assert not addresses.is_ipv6("tcp://localhost:5555")
    assert not addresses.is_ipv6("tcp://127.0.0.1:5555") and not addresses.is_ipv6("junk")
    assert localkeys.applies("tcp://[::1]:5555") and localkeys.applies("tcp://127.0.0.1:1")
    assert not localkeys.applies("tcp://[::]:5555")


def require_ipv6_loopback():
    """Fail, never skip, where ::1 is missing: the tests below are what keeps
    ``tcp://[::1]`` working, and a skip would hide that they did not run."""
    probe = socket.socket(socket.AF_INET6)
    try:
        probe.bind(("::1", 0))
    except OSError as exc:
        pytest.fail("IPv6 loopback ::1 is not usable on this machine (%s): these tests "
                    "check tcp://[::1] addresses; enable it with sysctl "
                    "net.ipv6.conf.lo.disable_ipv6=0" % exc)
    finally:
        probe.close()


def test_a_farm_on_ipv6_loopback_serves_every_kind_of_peer(tmp_path):
    """Item 20: a TaskManager bound on tcp://[::1] with the user's local keys; a
    worker, a monitor, a client, farm-status, majordomo and the log forwarder all
    reach it there."""
    require_ipv6_loopback()
    farm = Farm(tmp_path)
    try:
        farm.start_taskmanager(bind="tcp://[::1]:0")
        assert farm.address.startswith("tcp://[::1]:"), farm.address
        farm.start_worker("shell", machine="m6")
        farm.start_monitor("m6", owner_scope=os.getpid())
        client = farm.client()
        result = client.submit("shell", {"cmd": "echo over-ipv6"}).result(30)
        assert result.ok and result.stdout == ["over-ipv6"], result
        wait_until(lambda: client.status()["logs"]["forwarders"] == 1, what="forwarder")
        wait_until(lambda: [m for m in client.status()["machines"]
                            if m["id"] == "m6" and m["state"] == "idle"], what="m6 reported")
        records = tmp_path / "records.jsonl"
        wait_until(lambda: records.exists() and '"msg":"over-ipv6"' in records.read_text(),
                   what="the task's output in the records file")
        status = subprocess.run(command("farm-status") + ["--config", str(farm.config),
                                "--taskmanager", farm.address, "--json"],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["workers"][0]["machine"] == "m6"
        project = tmp_path / "project"
        project.mkdir()
        (project / "dodo.py").write_text(
            'def task_hello():\n    return {"actions": ["echo hi > hello.txt"], '
            '"targets": ["hello.txt"]}\n')
        run = run_tool("majordomo", project, "run", "--taskmanager", farm.address,
                       timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert (project / "hello.txt").read_text() == "hi\n"
    finally:
        farm.close()


def test_a_local_farm_on_ipv6_loopback_runs_a_task():
    """majordomo's embedded and self-started farms are LocalFarms: port 0 on ::1
    becomes a free port of ::1."""
    require_ipv6_loopback()
    with LocalFarm(["shell"], slots=1, bind="tcp://[::1]:0") as farm:
        host, port = addresses.split(farm.address)
        assert host == "::1" and port > 0
        with Client(farm.address) as client:
            assert client.submit("shell", {"cmd": "echo local"}).result(30).stdout == ["local"]
            # a TaskManager stopped before its forwarder said hello waits 10 s for it
            wait_until(lambda: client.status()["logs"]["forwarders"] == 1, what="forwarder")
