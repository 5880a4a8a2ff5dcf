"""CURVE on the one port: keys, roles, revocation, secure defaults, fuzzing."""

import io
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import psutil
import pytest
import yaml
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Farm, SecureFarm, wait_until

from computefarm.client import Client
from computefarm.commands import keys
from computefarm.exceptions import AccessRefused, ConfigError
from computefarm.wire import protocol
from computefarm.wire.certificates import load_secret
from computefarm.wire.protocol import Msg


@pytest.fixture
def secure(tmp_path):
    farm = SecureFarm(tmp_path)
    farm.start_taskmanager()
    try:
        yield farm
    finally:
        farm.close()


def receive(peer, timeout=5.0):
    if not peer.poll(int(timeout * 1000)):
        raise AssertionError("no answer from the TaskManager")
    return protocol.recv_dealer(peer)


def hello(role, name="x"):
    return protocol.encode(Msg.HELLO, {"role": role, "id": name, "host": "h", "machine": "m"})


def test_authorized_client_and_worker_work_end_to_end(secure):
    secure.start_worker("shell", config=secure.peer_config("w1"))
    client = secure.secure_client("c1")
    assert client.submit("shell", {"cmd": "echo secret"}).result(30).stdout == ["secret"]


def test_strangers_are_refused(secure):
    """Refused at once with what happened (item 21), not left to time out."""
    unknown = zmq.curve_keypair()
    for curve, error in (((unknown[0], unknown[1], secure.server), "refused this key"),
                         (False, "it requires keys and this process has none"),
                         (secure.curve("c1")[:2] + (zmq.curve_keypair()[0],),
                          "is it a TaskManager, and keys.server its public key")):
        with pytest.raises(AccessRefused, match=error):
            Client(secure.address, curve=curve, connect_timeout=10.0).close()
    log = secure.taskmanager.log.read_text()
    assert "refused a connection from 127.0.0.1: unknown or revoked key" in log
    assert secure.taskmanager.poll() is None


def test_revoked_key_is_refused_without_restart(secure):
    """Item 11: a revoked client's outstanding futures fail with a clear error."""
    secure.start_worker("shell", config=secure.peer_config("w1"))
    doomed = secure.secure_client("doomed")
    assert doomed.submit("shell", {"cmd": "true"}).result(30).ok
    waiting = doomed.submit("shell", {"cmd": "sleep 30"})
    keys.main(["--dir", str(secure.keydir), "revoke", "doomed"], out=io.StringIO())
    with pytest.raises(AccessRefused, match="no longer\\) authorized"):
        waiting.result(15)
    with pytest.raises(AccessRefused):
        doomed.submit("shell", {"cmd": "true"})
    with pytest.raises(AccessRefused):
        Client(secure.address, curve=secure.curve("doomed"), connect_timeout=10.0).close()
    assert secure.secure_client("c1").submit("shell", {"cmd": "true"}).result(30).ok


def test_roles_are_checked_for_every_message(secure):
    secure.start_worker("shell", config=secure.peer_config("w1"))
    as_worker = secure.raw_peer(secure.curve("w1"))
    as_worker.send(hello("worker", "w-raw"))
    assert receive(as_worker)[0] == Msg.WELCOME
    as_worker.send(protocol.encode(Msg.SUBMIT, {"tasks": [
        {"id": "w:1", "capability": "shell", "body": protocol.pack_body({"cmd": "true"})}]}))
    mtype, body = receive(as_worker)
    assert mtype == Msg.ERROR and "a worker key (w1) may not send SUBMIT" in body["text"]
    as_client = secure.raw_peer(secure.curve("c2"))
    as_client.send(hello("worker", "c-raw"))
    mtype, body = receive(as_client)
    assert mtype == Msg.ERROR and "may not say hello as a worker" in body["text"]
    owner = secure.secure_client("c1")
    pidfile = secure.dir / "pid"
    long = owner.submit("shell", {"cmd": "echo $$ > %s; sleep 1; echo done" % pidfile})
    wait_until(lambda: pidfile.exists(), what="task running")
    notices = []
    other = secure.secure_client("c2", on_notice=lambda level, code, text, ids: notices.append(text))
    other._request_cancel(long.task_id)     # another key's task: it cannot even name it
    assert other.status()["running"] == []  # (answered after the cancel was taken in)
    assert long.result(30).stdout == ["done"] and notices == []
    as_worker.close()
    as_client.close()


def test_binding_beyond_loopback_needs_keys_or_insecure(tmp_path):
    base = [sys.executable, "-m", "computefarm.commands", "taskmanager", "--config",
            str(Farm(tmp_path).config)]
    refused = subprocess.run(base + ["--bind", "tcp://0.0.0.0:5555"], capture_output=True,
                             text=True, timeout=30)
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("ERROR: farm-taskmanager: refusing to bind "
                                             "tcp://0.0.0.0:5555 without CURVE keys")
    assert "farm-keys init" in refused.stderr
    farm = Farm(tmp_path)
    try:   # 127.0.0.2 is not 127.0.0.1 (so it needs keys) yet never leaves this machine
        proc = farm.start_taskmanager(bind="tcp://127.0.0.2:0", extra_args=["--insecure"])
        assert "INSECURE: tcp://127.0.0.2:0 is open without authentication" in \
            proc.log.read_text()
    finally:
        farm.close()


def test_secret_keys_are_written_private_and_refused_when_readable(tmp_path):
    keys.main(["--dir", str(tmp_path / "k"), "init"], out=io.StringIO())
    secret = tmp_path / "k" / "taskmanager.key_secret"
    assert os.stat(secret).st_mode & 0o777 == 0o600
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_secret(secret)


def test_queue_limit_answers_with_an_error_not_a_crash(tmp_path):
    farm = Farm(tmp_path, max_queued_per_client=3)
    try:
        farm.start_taskmanager()
        client = farm.client(on_notice=lambda *a: None)
        futures = [client.submit("shell", {"cmd": "true"}) for _ in range(5)]
        refused = [f.result(10) for f in futures[3:]]
        assert all(r.status == "error" and "max_queued_per_client" in r.error for r in refused)
        assert not any(f.done() for f in futures[:3])
        farm.start_worker("shell")
        assert all(f.result(30).ok for f in futures[:3])
    finally:
        farm.close()


@pytest.fixture(scope="module")
def fuzz_farm(tmp_path_factory):
    farm = SecureFarm(tmp_path_factory.mktemp("fuzz"))
    farm.start_taskmanager()
    farm.start_worker("shell", config=farm.peer_config("w1"))
    peers = [farm.raw_peer(farm.curve("c2")), farm.raw_peer(None),
             farm.raw_peer(zmq.curve_keypair() + (farm.server,))]
    peers[0].send(hello("client", "fuzzer"))
    yield farm, peers
    for peer in peers:
        peer.close()
    farm.close()


VALID = [protocol.encode(Msg.SUBMIT, {"tasks": [{"id": "f:1", "capability": "shell",
                                                  "body": protocol.pack_body({"cmd": "true"})}]}),
         protocol.encode(Msg.CANCEL, {"ids": ["f:1"]}), protocol.encode(Msg.STATUS, {}),
         protocol.encode(Msg.RESULT, {"results": []}), hello("worker")]


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(blobs=st.lists(st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(VALID), st.integers(0, 400), st.integers(0, 255)).map(
        lambda t: t[0][:t[1] % len(t[0])] + bytes([t[2]]) + t[0][t[1] % len(t[0]) + 1:])),
    min_size=1, max_size=8), multipart=st.booleans())
def test_fuzzing_the_port_never_hurts_the_farm(fuzz_farm, blobs, multipart):
    farm, peers = fuzz_farm
    for peer in peers:       # peers that never get in queue up: never wait on them
        try:
            if multipart:
                peer.send_multipart(blobs, zmq.NOBLOCK)
            else:
                for blob in blobs:
                    peer.send(blob, zmq.NOBLOCK)
        except zmq.Again:
            pass
    assert farm.taskmanager.poll() is None


def test_after_fuzzing_the_farm_still_serves_and_memory_is_bounded(fuzz_farm):
    farm, _ = fuzz_farm
    manager = psutil.Process(farm.taskmanager.pid)
    assert manager.memory_info().rss < 200 * 1024 * 1024
    client = farm.secure_client("c1")
    assert client.submit("shell", {"cmd": "echo still here"}).result(30).stdout == ["still here"]


@pytest.mark.parametrize("keys_of", ["none", "unknown", "revoked"])
def test_a_refused_worker_exits_with_one_error_line(secure, tmp_path, keys_of):
    """Item 18: no keys, an unknown key, or a key revoked while it runs: the worker
    says so in one ERROR line and exits with code 4 within seconds."""
    config = secure.peer_config("w1")
    if keys_of == "none":
        config.write_text(yaml.safe_dump({"logging": {"cutelog": None}}))
    elif keys_of == "unknown":
        keys.main(["--dir", str(tmp_path / "other"), "init"], out=io.StringIO())
        keys.main(["--dir", str(tmp_path / "other"), "add", "w9", "--role", "worker"],
                  out=io.StringIO())
        config.write_text(yaml.safe_dump({"keys": {
            "server": str(secure.keydir / "taskmanager.key"),
            "secret": str(tmp_path / "other" / "peers" / "w9.key_secret")}}))
    worker = secure.start_worker("shell", config=config, wait=keys_of == "revoked")
    if keys_of == "revoked":
        keys.main(["--dir", str(secure.keydir), "revoke", "w1"], out=io.StringIO())
    assert worker.wait(15) == 4
    errors = [line for line in worker.log.read_text().splitlines() if line.startswith("ERROR:")]
    expected = "this process has none of its own" if keys_of == "none" else "refused"
    assert len(errors) == 1 and expected in errors[0], worker.log.read_text()[-2000:]


NOBODY_TRIES = """
import sys
from computefarm.client import Client
from computefarm.exceptions import FarmError
for curve in (None, False):       # its own local keys, then none at all
    try:
        client = Client(sys.argv[1], curve=curve, connect_timeout=10.0)
        client.submit("shell", {"cmd": "touch " + sys.argv[2]}).result(10)
        print("GOT IN")
    except FarmError as exc:
        print(type(exc).__name__)
"""


def test_another_local_user_cannot_use_a_farm_without_keys(farm, tmp_path):
    """Item 8: a farm with no keys section takes only its user's local keys:
    user nobody, on the same machine, runs nothing. (nobody cannot run this
    venv's interpreter, which lives under /root: it runs the system's Python 3.11
    with a copy of the packages it needs.)"""
    farm.start_worker("shell")
    keys_dir = os.environ["COMPUTEFARM_LOCAL_KEYS"]
    assert os.stat(keys_dir).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(keys_dir, "local.key_secret")).st_mode & 0o777 == 0o600
    marker = tmp_path / "ran-as-nobody"
    site = sysconfig.get_paths()["purelib"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    theirs = tempfile.mkdtemp(prefix="cf-nobody-")     # what nobody may read: a copy of
    os.chmod(theirs, 0o755)                             # the packages it needs
    for name in ("zmq", "pyzmq.libs", "msgpack", "cloudpickle"):
        if os.path.exists(os.path.join(site, name)):
            shutil.copytree(os.path.join(site, name), os.path.join(theirs, name))
    shutil.copytree(os.path.join(repo, "computefarm"), os.path.join(theirs, "computefarm"))
    try:
        done = subprocess.run(
            ["/usr/bin/python3.11", "-c", NOBODY_TRIES, farm.address, str(marker)],
            user=65534, group=65534, extra_groups=[], cwd="/tmp", capture_output=True,
            text=True, timeout=60, env={"PYTHONPATH": theirs, "HOME": "/tmp",
                                        "COMPUTEFARM_LOCAL_KEYS": theirs + "-keys"})
    finally:
        shutil.rmtree(theirs)
        shutil.rmtree(theirs + "-keys", ignore_errors=True)
    assert done.stdout.split() == ["AccessRefused", "AccessRefused"], done.stderr[-2000:]
    assert not marker.exists()


def test_queued_bytes_limit_refuses_with_its_own_reason(tmp_path):
    """Item 6: memory capped in bytes, not only in tasks: 1 kB commands, 4 kB allowed
    (each task counts its body and 512 bytes): two are queued, the rest refused."""
    farm = Farm(tmp_path, max_queued_bytes_per_client=4096)
    try:
        farm.start_taskmanager()
        client = farm.client(on_notice=lambda *a: None)
        futures = [client.submit("shell", {"cmd": "true #" + "x" * 1000}) for _ in range(5)]
        refused = [f.result(10) for f in futures[2:]]
        assert all(r.status == "error" and "max_queued_bytes_per_client" in r.error
                   for r in refused)
        assert not any(f.done() for f in futures[:2])
        farm.start_worker("shell")
        assert all(f.result(30).ok for f in futures[:2])
    finally:
        farm.close()
