"""farm-viewer starts cutelog on the loopback host the log forwarder sends to."""

import os
import socket
import subprocess

import pytest
import yaml
from support import command, wait_until

from computefarm.commands import viewer


@pytest.mark.parametrize("cutelog, listen", [("127.0.0.1:19996", "127.0.0.1"),
                                             ("localhost:19996", "127.0.0.1"),
                                             ("[::1]:19997", "::1")])
def test_cutelog_listens_where_the_forwarder_connects(tmp_path, monkeypatch, cutelog, listen):
    config = tmp_path / "farm.yaml"
    config.write_text(yaml.safe_dump({"logging": {"cutelog": cutelog}}))
    started = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    viewer.main(["--config", str(config)])
    argv = started[0]
    assert argv[argv.index("--listen_host") + 1] == listen
    assert argv[argv.index("--listen_port") + 1] == cutelog.rsplit(":", 1)[1]
    assert argv[argv.index("--single_tab_mode_default") + 1] == "true"   # a tab, not one a run


def test_a_network_address_is_refused(tmp_path, capsys):
    config = tmp_path / "farm.yaml"
    config.write_text(yaml.safe_dump({"logging": {"cutelog": "[2001:db8::1]:19996"}}))
    assert viewer.main(["--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("ERROR: farm-viewer: logging.cutelog is [2001")


def test_farm_viewer_starts_a_real_cutelog_without_warnings(tmp_path):
    """The real thing, headless: it listens where farm.yaml says, and starts
    without runpy's RuntimeWarning (cutelog run as "-m cutelog" printed one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "farm.yaml"
    config.write_text(yaml.safe_dump({"logging": {"cutelog": "127.0.0.1:%d" % port}}))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(runtime),
               HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    errors = tmp_path / "stderr"
    with open(errors, "wb") as stream:
        proc = subprocess.Popen(command("farm-viewer") + ["--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=stream)
    try:
        def listening():
            assert proc.poll() is None, errors.read_text()
            with socket.socket() as client:
                return client.connect_ex(("127.0.0.1", port)) == 0
        wait_until(listening, timeout=30, what="cutelog listening")
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Warning" not in errors.read_text(), errors.read_text()
