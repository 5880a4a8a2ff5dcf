"""farm-factory's ssh backend against a real sshd on a host of its own.

The remote host is a network namespace (tests/hosts.py) running OpenSSH's sshd,
with a home of its own (an empty tmpfs over /root): ComputeFarm is not there
until the factory installs it, from a folder of wheels built here (the remote
reaches no package index). The TaskManager, the factory and the client run on
another host.
"""

import json
import os
import subprocess
import sys

import hosts
import pytest
import yaml
from support import SecureFarm, pid_alive, wait_until

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
PEERS = (("c1", "client"), ("factory", "client"), ("pilots", "worker"))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """ComputeFarm and what it needs, as wheels (pip's cache makes reruns quick)."""
    folder = tmp_path_factory.mktemp("wheels")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(folder), ROOT],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture
def lan():
    with hosts.lan("tm", "remote") as network:
        yield network


def start_sshd(remote, folder):
    """sshd on ``remote`` (port 2222), a key pair to log in with, and an ssh config
    naming it ``remote``."""
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    (folder / "sshd_config").write_text("\n".join([
        "Port 2222", "ListenAddress %s" % remote.address,
        "HostKey %s" % (folder / "host_key"),
        "AuthorizedKeysFile %s" % (folder / "authorized_keys"),
        "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        "PidFile %s" % (folder / "sshd.pid"), ""]))
    (folder / "ssh_config").write_text("\n".join([
        "Host remote", "  HostName %s" % remote.address, "  Port 2222", "  User root",
        "  IdentityFile %s" % (folder / "user_key"), "  IdentitiesOnly yes",
        "  StrictHostKeyChecking no", "  UserKnownHostsFile /dev/null", "  LogLevel ERROR",
        ""]))
    os.makedirs("/run/sshd", exist_ok=True)       # sshd's privilege separation folder
    log = open(folder / "sshd.log", "w")
    with log:
        return remote.popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(folder / "sshd_config")],
                            stdout=log, stderr=log)


@pytest.mark.timeout(900)        # the wheels are built, then installed on the remote
def test_the_factory_starts_a_pilot_over_ssh_and_stopping_it_stops_the_pilot(lan, tmp_path,
                                                                              wheels):
    tm, remote = lan.hosts["tm"], lan.hosts["remote"]
    remote.hide("/root")                  # its own empty home: nothing installed there
    farm = SecureFarm(tmp_path, peers=PEERS)
    sshd = None
    try:
        farm.start_taskmanager(bind="tcp://%s:0" % tm.address, host=tm)
        ssh = tmp_path / "ssh"
        ssh.mkdir()
        sshd = start_sshd(remote, ssh)
        wait_until(lambda: tm.run(["ssh", "-F", str(ssh / "ssh_config"), "-o",
                                   "ConnectTimeout=2", "remote", "true"]).returncode == 0,
                   timeout=20, what="sshd answering")
        config = tmp_path / "factory.yaml"
        config.write_text(yaml.safe_dump({
            "taskmanager": {"address": farm.address},
            "keys": {"server": str(farm.keydir / "taskmanager.key"),
                     "secret": str(farm.keydir / "peers" / "factory.key_secret")},
            "factory": {"backend": "ssh", "max": 1, "interval": 0.5, "idle_exit": 300,
                        "pilot_config": str(farm.peer_config("pilots")),
                        "workdir": str(tmp_path / "factory"),
                        "ssh": {"hosts": ["remote"], "ssh_config": str(ssh / "ssh_config"),
                                "remote_python": "/usr/bin/python3",
                                "wheels": str(wheels)}}}))
        marks = tmp_path / "marks"
        marks.mkdir()
        client = tm.popen(hosts.python(os.path.join(TESTS, "netclient.py"), farm.address,
                                       "--tasks", "3", "--mark", str(marks), "--timeout", "300"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, **farm.curve_env("c1")))
        factory = farm.spawn("farm-factory", ["--config", str(config), "--log-level", "DEBUG"],
                             "factory", host=tm)
        out, err = client.communicate(timeout=400)
        assert client.returncode == 0, err[-3000:] + factory.log.read_text()[-3000:]
        answer = json.loads(out)
        assert answer["statuses"] == ["ok"] * 3
        assert [w["machine"] for w in answer["status"]["workers"]] == ["ssh-remote"]
        assert [w["host"] for w in answer["status"]["workers"]] != [tm.address]
        # the remote's home had nothing: the factory installed ComputeFarm there
        listing = tm.run(["ssh", "-F", str(ssh / "ssh_config"), "remote",
                          "ls .local/share/computefarm/pilot-venv/bin/python && "
                          "stat -c %a .config/computefarm/pilot-computefarm-pilot/"
                          "pilot.key_secret"], capture_output=True, text=True)
        assert listing.returncode == 0 and listing.stdout.split()[1] == "600", listing
        # the pilot runs from that venv (one pid space: the test sees its process)
        [name] = [w["name"] for w in answer["status"]["workers"]]
        pid = int(name.split("-")[-2])
        with open("/proc/%d/cmdline" % pid, "rb") as stream:
            assert b"pilot-venv/bin/python" in stream.read()
        assert farm.stop(factory) == 0
        # the pilot stopped with it, handing back nothing (it was idle)
        assert not pid_alive(pid)
        assert "left: worker shutting down" in farm.taskmanager.log.read_text()
    finally:
        if sshd is not None:
            sshd.terminate()
            sshd.wait(10)
        farm.close()
