"""Joining without an administrator: farm-keys invite, farm-join, farm-service.

The end-to-end test runs the TaskManager, a client and the new machine on hosts
of their own (network namespaces, tests/hosts.py); the new machine does not see
the farm's key directory (a private mount namespace), so nothing can reach it
but the one line and the port.
"""

import io
import json
import os
import re
import signal
import subprocess
import time

import hosts
import pytest
import zmq
from support import SecureFarm, command, pid_alive, wait_until

from computefarm.commands import keys
from computefarm.invitations import Invitations, make_token, read_token
from computefarm.wire import protocol
from computefarm.wire.protocol import Msg

TESTS = os.path.dirname(os.path.abspath(__file__))


def invite(farm, *options):
    """farm-keys invite's token, for the farm's own address."""
    out = io.StringIO()
    assert keys.main(["--dir", str(farm.keydir), "invite", "--address", farm.address]
                     + list(options), out=out) == 0
    return out.getvalue().strip()


def join(farm, token, name, *options, host=None, wait=True):
    """farm-join on machine ``name`` (its files under tmp_path/name)."""
    home = farm.dir / name
    argv = [token, "--dir", str(home / "keys"), "--config", str(home / "farm.yaml"),
            "--name", name, "--timeout", "10"] + list(options)
    proc = farm.spawn("farm-join", argv, "join-" + name, host)
    if wait:
        proc.wait(30)
    return proc


def invitations(farm):
    return Invitations(farm.keydir / "invitations").all()


def started_children(log):
    """``{child name: [pids]}`` the supervisor said it started."""
    children = {}
    for name, pid in re.findall(r"started (\S+) \(pid (\d+)\)", log.read_text()):
        children.setdefault(name, []).append(int(pid))
    return children


@pytest.fixture
def lan():
    with hosts.lan("tm", "laptop", "newbox") as network:
        yield network


@pytest.fixture
def farm(tmp_path):
    farm = SecureFarm(tmp_path, peers=(("c1", "client"),))
    try:
        yield farm
    finally:
        farm.close()


def test_a_new_machine_joins_with_one_line_and_runs_a_task_within_10_s(lan, farm, tmp_path):
    tm, laptop, newbox = lan.hosts["tm"], lan.hosts["laptop"], lan.hosts["newbox"]
    farm.start_taskmanager(bind="tcp://%s:0" % tm.address, host=tm)
    token = invite(farm, "--capability", "shell", "--slots", "2")
    marks = tmp_path / "marks"
    marks.mkdir()
    client = laptop.popen(hosts.python(os.path.join(TESTS, "netclient.py"), farm.address,
                                       "--tasks", "4", "--mark", str(marks)),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, **farm.curve_env("c1")))
    try:
        newbox.hide(farm.keydir)        # it shares nothing with the TaskManager's machine
        started = time.monotonic()
        joined = join(farm, token, "newbox", host=newbox, wait=False)
        wait_until(lambda: os.listdir(marks), timeout=20, what="a first task on newbox")
        elapsed = time.monotonic() - started
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err[-2000:]
    answer = json.loads(out)
    assert answer["statuses"] == ["ok"] * 4
    assert [w["machine"] for w in answer["status"]["workers"]] == ["newbox"]
    assert elapsed < 10.0, "first task ran %.1f s after farm-join started" % elapsed
    print("farm-join to first task: %.2f s" % elapsed)
    # its secret key is only on newbox; the farm trusts its public key as a machine
    secret = (tmp_path / "newbox" / "keys" / "newbox.key_secret").read_text()
    assert "secret-key" in secret
    assert oct(os.stat(tmp_path / "newbox" / "keys" / "newbox.key_secret").st_mode)[-3:] == "600"
    trusted = (farm.keydir / "authorized" / "newbox.key").read_text()
    assert 'role = "machine"' in trusted and 'machine = "newbox"' in trusted
    assert "secret-key" not in trusted
    [record] = invitations(farm)
    assert record["used"] == 1
    assert record["joined"][0]["name"] == "newbox"
    assert record["joined"][0]["address"] == newbox.address
    # stopping farm-join stops the machine's worker and monitor
    children = started_children(joined.log)
    assert set(children) == {"worker-0", "monitor"}
    assert farm.stop(joined) == 0
    for pids in children.values():
        assert not any(pid_alive(pid) for pid in pids)


def test_a_token_works_once_then_refuses_with_one_error_line(farm):
    farm.start_taskmanager()
    token = invite(farm)
    first = join(farm, token, "box1", "--no-start")
    assert first.returncode == 0, first.log.read_text()
    second = join(farm, token, "box2", "--no-start")
    assert second.returncode == 4
    errors = [line for line in second.log.read_text().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "refused this machine" in errors[0], errors
    assert not (farm.dir / "box2" / "farm.yaml").exists()
    assert sorted(os.listdir(farm.keydir / "authorized")) == ["box1.key", "c1.key"]
    log = farm.taskmanager.log.read_text()
    assert "box1 joined from 127.0.0.1 as machine" in log
    assert "refused a connection from 127.0.0.1" in log
    _, _, secret = read_token(token)
    assert secret not in log
    for name in os.listdir(farm.keydir / "invitations"):
        assert secret not in (farm.keydir / "invitations" / name).read_text()


def test_expired_revoked_forged_and_damaged_tokens_are_refused(farm):
    farm.start_taskmanager()
    keep_open = invite(farm, "--uses", "5")       # so strangers reach the enrolment itself
    expired = invite(farm, "--expires", "1s")
    revoked = invite(farm)
    revoked_id = next(r["id"] for r in invitations(farm) if r["uses"] == 1
                      and r["expires"] - r["created"] > 100)
    assert keys.main(["--dir", str(farm.keydir), "uninvite", revoked_id],
                     out=io.StringIO()) == 0
    address, server, _ = read_token(keep_open)
    forged = make_token(address, server, "not-the-secret-of-any-invitation")
    expires = next(r["expires"] for r in invitations(farm) if r["expires"] - r["created"] < 5)
    wait_until(lambda: time.time() > expires, timeout=5, what="the 1 s invitation expired")
    for token, why in ((expired, "invitation is expired"), (revoked, "invitation is revoked"),
                       (forged, "invitation is no such invitation")):
        proc = join(farm, token, "bad", "--no-start")
        text = proc.log.read_text()
        assert proc.returncode == 4, text
        assert "ERROR: farm-join: the TaskManager at %s refused the invitation: the %s" % (
            farm.address, why) in text
        assert text.count("ERROR") == 1
    damaged = join(farm, keep_open[:40], "bad", "--no-start")
    assert damaged.returncode == 2
    assert "invitation is damaged" in damaged.log.read_text()
    assert sorted(os.listdir(farm.keydir / "authorized")) == ["c1.key"]
    log = farm.taskmanager.log.read_text()
    assert log.count("refused an enrolment from 127.0.0.1") == 3
    # the one good invitation still works: nothing above used it
    assert join(farm, keep_open, "good", "--no-start").returncode == 0


def test_guessing_is_rate_limited_by_address(farm):
    farm.start_taskmanager()
    token = invite(farm)
    address, server, _ = read_token(token)
    for attempt in range(5):
        proc = join(farm, make_token(address, server, "guess-%d" % attempt), "g", "--no-start")
        assert proc.returncode == 4
    # now even the right secret is turned away at the handshake, and not used up
    proc = join(farm, token, "late", "--no-start")
    assert proc.returncode == 4
    assert "or this address failed too often" in proc.log.read_text()
    assert invitations(farm)[0]["used"] == 0


def test_an_unknown_key_may_do_nothing_but_enrol(farm):
    farm.start_taskmanager()
    invite(farm)                                    # strangers are let in to enrol
    public, secret = zmq.curve_keypair()
    for message in (protocol.encode(Msg.HELLO, {"role": "worker", "id": "w", "host": "h",
                                                "machine": "m"}),
                    protocol.encode(Msg.STATUS, {}),
                    protocol.encode(Msg.SUBMIT, {"tasks": [{
                        "id": "x:1", "capability": "shell",
                        "body": protocol.pack_body({"cmd": "true"})}]})):
        peer = farm.raw_peer((public, secret, farm.server))
        peer.send(message)
        assert peer.poll(5000), "no answer"
        mtype, body = protocol.recv_dealer(peer)
        assert mtype == Msg.ERROR and body["code"] == "key-refused", body
        peer.close()
    assert farm.taskmanager.poll() is None


def test_fuzzed_enrolments_from_a_stranger_never_hurt_the_taskmanager(farm):
    import random

    from wirefuzz import Fuzzer
    farm.start_taskmanager()
    token = invite(farm)
    fuzzer = Fuzzer(random.Random(12), bad=0.2)
    public, secret = zmq.curve_keypair()
    peer = farm.raw_peer((public, secret, farm.server))
    for _ in range(300):
        peer.send(fuzzer.message("stranger")[1])
    answers = 0
    while peer.poll(1000):
        protocol.recv_dealer(peer)
        answers += 1
    peer.close()
    assert answers > 0
    status = farm.secure_client("c1").status()
    assert status["internal_errors"] == 0
    assert farm.taskmanager.poll() is None
    assert sorted(os.listdir(farm.keydir / "authorized")) == ["c1.key"]
    assert invitations(farm)[0]["used"] == 0
    assert read_token(token)[2] not in farm.taskmanager.log.read_text()


def test_the_supervisor_restarts_a_dead_worker_and_stops_on_a_revoked_key(farm):
    farm.start_taskmanager()
    token = invite(farm, "--capability", "shell")
    service = join(farm, token, "box", wait=False)
    wait_until(lambda: len(started_children(service.log)) == 2, what="worker and monitor")
    worker = started_children(service.log)["worker-0"][0]
    client = farm.secure_client("c1")
    assert client.submit("shell", {"cmd": "echo one"}).result(30).stdout == ["one"]
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: len(started_children(service.log)["worker-0"]) == 2, timeout=20,
               what="the worker started again")
    assert client.submit("shell", {"cmd": "echo two"}).result(30).stdout == ["two"]
    keys.main(["--dir", str(farm.keydir), "revoke", "box"], out=io.StringIO())
    assert service.wait(30) == 4
    text = service.log.read_text()
    assert "ERROR: farm-join: worker-0 exited with code 4" in text or \
        "ERROR: farm-join: monitor exited with code 4" in text
    for pids in started_children(service.log).values():
        assert not any(pid_alive(pid) for pid in pids)


def test_farm_service_survives_on_cron_and_uninstall_leaves_nothing(farm, tmp_path):
    """The crontab @reboot line (this machine has no systemd user session); the
    systemd unit it would write is checked by systemd-analyze."""
    farm.start_taskmanager()
    token = invite(farm, "--capability", "shell")
    assert join(farm, token, "box", "--no-start").returncode == 0
    config = tmp_path / "box" / "farm.yaml"
    env = dict(os.environ, COMPUTEFARM_DATA=str(tmp_path / "data"))
    before = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    pid = None
    try:
        done = subprocess.run(command("farm-service") + ["--config", str(config), "install"],
                              capture_output=True, text=True, env=env, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "@reboot line" in done.stdout
        line = [entry for entry in subprocess.run(["crontab", "-l"], capture_output=True,
                                                  text=True).stdout.splitlines()
                if "# computefarm-machine" in entry]
        assert len(line) == 1 and str(config) in line[0] and line[0].startswith("@reboot ")
        pid_file = tmp_path / "data" / "service.pid"
        wait_until(pid_file.exists, what="the service's pid file")
        pid = int(pid_file.read_text().split()[0])
        client = farm.secure_client("c1")
        assert client.submit("shell", {"cmd": "echo up"}).result(30).stdout == ["up"]
        status = subprocess.run(command("farm-service") + ["status"], capture_output=True,
                                text=True, env=env, timeout=30)
        assert status.returncode == 0 and "running (pid %d)" % pid in status.stdout
        done = subprocess.run(command("farm-service") + ["uninstall"], capture_output=True,
                              text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert not pid_alive(pid)
        assert "# computefarm-machine" not in subprocess.run(
            ["crontab", "-l"], capture_output=True, text=True).stdout
        assert not pid_file.exists()
        assert sorted(os.listdir(tmp_path / "data")) == []      # nothing left behind
        status = subprocess.run(command("farm-service") + ["status"], capture_output=True,
                                text=True, env=env, timeout=30)
        assert status.returncode == 1 and "not installed, not running" in status.stdout
    finally:
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
        if before.returncode == 0:
            subprocess.run(["crontab", "-"], input=before.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True)


def test_the_systemd_unit_is_valid(tmp_path):
    from computefarm.joining.units import UNIT, Systemd
    unit = tmp_path / UNIT
    unit.write_text(Systemd().unit(str(tmp_path / "farm.yaml")))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if UNIT in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
