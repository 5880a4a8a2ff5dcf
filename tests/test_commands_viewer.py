"""farm-viewer starts cutelog on the loopback host the log forwarder sends to."""

import os

import pytest
import yaml

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


def test_a_network_address_is_refused(tmp_path, capsys):
    config = tmp_path / "farm.yaml"
    config.write_text(yaml.safe_dump({"logging": {"cutelog": "[2001:db8::1]:19996"}}))
    assert viewer.main(["--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("ERROR: farm-viewer: logging.cutelog is [2001")
