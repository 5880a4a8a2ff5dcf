"""farm.yaml: validation with one-line errors naming file and key; search order."""

import pathlib
import subprocess
import sys

import pytest
import yaml

from computefarm.config import (
    FACTORY_BACKENDS,
    SCHEMA,
    FactoryConfig,
    FarmConfig,
    UserPolicy,
    find_config,
    load_config,
    parse_config,
)
from computefarm.exceptions import ConfigError

REFERENCE = pathlib.Path(__file__).parent.parent / "farm.yaml"


def test_reference_farm_yaml_loads():
    config = load_config(str(REFERENCE))
    assert config.taskmanager.address == "tcp://127.0.0.1:5555"
    assert config.machines["build1"].workers[0].slots == 8
    assert config.offered_capabilities() == {"shell", "gcc", "python"}


def _sections(data):
    """{schema section: the mapping found there} for every section of a farm.yaml."""
    found = {"": data}
    for name in ("taskmanager", "load", "logging", "keys", "staging", "factory"):
        found[name] = data[name]
    found["load.policy"] = data["load"]["policy"]
    machines = list(data["machines"].values())
    found["machines.NAME"] = {k: v for m in machines for k, v in m.items()}
    found["machines.NAME.workers[]"] = {k: v for m in machines for w in m.get("workers", ())
                                        for k, v in w.items()}
    found["machines.NAME.policy"] = {k: v for m in machines
                                     for k, v in (m.get("policy") or {}).items()}
    found["users.NAME"] = {k: v for u in data["users"].values() for k, v in u.items()}
    found["machines.NAME.taskmanagers[]"] = {k: v for m in machines
                                             for u in m.get("taskmanagers", ())
                                             for k, v in u.items()}
    return found


def test_reference_farm_yaml_lists_every_key_with_its_default():
    data = yaml.safe_load(REFERENCE.read_text())
    found = _sections(data)
    assert set(found) == set(SCHEMA)
    for section, keys in SCHEMA.items():
        assert set(found[section]) == set(keys) or section == "machines.NAME.policy", section
    defaults = FarmConfig()
    for section, record in (("taskmanager", defaults.taskmanager), ("logging", defaults.logging),
                            ("keys", defaults.keys), ("load.policy", defaults.load.policy),
                            ("staging", defaults.staging),
                            ("users.NAME", UserPolicy()), ("factory", FactoryConfig())):
        for key in SCHEMA[section]:
            if section == "factory" and key in FACTORY_BACKENDS:
                assert found[section][key] is None
                continue
            assert found[section][key] == getattr(record, key), "%s.%s" % (section, key)
    for key in ("placement", "monitor_interval"):
        assert found["load"][key] == getattr(defaults.load, key), "load." + key


@pytest.mark.parametrize("data, message", [
    ({"taskmanager": {"adress": "tcp://x:1"}}, "taskmanager.adress: unknown key"),
    ({"taskmanager": {"address": "http://x"}}, "taskmanager.address: expected tcp://HOST:PORT"),
    ({"taskmanager": {"heartbeat_interval": "fast"}}, "taskmanager.heartbeat_interval: expected a number"),
    ({"taskmanager": {"max_attempts": 0}}, "taskmanager.max_attempts: expected a whole number >= 1"),
    ({"machines": {"m": {"workers": [{"slots": 2}]}}}, "machines.m.workers[0].capabilities"),
    ({"machines": {"m": {"workers": [{"capabilities": ["shell"], "slots": -1}]}}},
     "machines.m.workers[0].slots"),
    ({"logging": {"level": "LOUD"}}, "logging.level"),
    ({"colour": "blue"}, "colour: unknown key"),
    ({"users": {"bob": {"weight": 0}}}, "users.bob.weight: expected a number > 0, got 0"),
    ({"users": {"bob": {"weight": -2}}}, "users.bob.weight: expected a number > 0"),
    ({"users": {"bob": {"max_slots": 0}}}, "users.bob.max_slots: expected a whole number >= 1"),
    ({"users": {"bob": {"priority": "yes"}}}, "users.bob.priority: expected true or false"),
    ({"users": {"bob": {"wieght": 2}}}, "users.bob.wieght: unknown key"),
    ({"users": ["bob"]}, "users: expected a mapping"),
    ({"machines": {"m": {"taskmanagers": [{"weight": 2}]}}},
     "machines.m.taskmanagers[0].address: missing"),
    ({"machines": {"m": {"taskmanagers": [{"address": "tcp://a:1", "weight": 0}]}}},
     "machines.m.taskmanagers[0].weight: expected a number > 0"),
    ({"machines": {"m": {"taskmanagers": [{"address": "tcp://a:1"}, {"address": "tcp://a:1"}]}}},
     "machines.m.taskmanagers: the same address twice"),
    ({"machines": {"m": {"taskmanagers": "tcp://a:1"}}},
     "machines.m.taskmanagers: expected a list"),
    (["a list"], "(top level): expected a mapping"),
])
def test_bad_values_name_file_and_key(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config(data, "farm.yaml")
    text = str(info.value)
    assert text.startswith("farm.yaml: ") and message in text and "\n" not in text


def test_search_order(tmp_path, monkeypatch):
    home, cwd, env = tmp_path / "home", tmp_path / "cwd", tmp_path / "env.yaml"
    (home / ".config" / "computefarm").mkdir(parents=True)
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    user = home / ".config" / "computefarm" / "farm.yaml"
    user.write_text("{}")
    assert find_config(None, str(cwd), {}) == str(user)
    env.write_text("{}")
    assert find_config(None, str(cwd), {"COMPUTEFARM_CONFIG": str(env)}) == str(env)
    (cwd / "farm.yaml").write_text("{}")
    assert find_config(None, str(cwd), {"COMPUTEFARM_CONFIG": str(env)}) == str(cwd / "farm.yaml")
    assert find_config(str(env), str(cwd), {}) == str(env)
    with pytest.raises(ConfigError, match="no such configuration file"):
        find_config(str(tmp_path / "missing.yaml"))


def test_commands_print_one_error_line_and_exit_2(tmp_path):
    bad = tmp_path / "farm.yaml"
    bad.write_text("taskmanager:\n  address: [1, 2]\n")
    for command in (["taskmanager"], ["worker", "--capability", "shell"]):
        proc = subprocess.run([sys.executable, "-m", "computefarm.commands"] + command + [
                               "--config", str(bad)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ERROR: farm-")
        assert "taskmanager.address" in lines[0] and str(bad) in lines[0]
    broken = tmp_path / "broken.yaml"
    broken.write_text("taskmanager: [\n")
    proc = subprocess.run([sys.executable, "-m", "computefarm.commands", "taskmanager", "--config",
                           str(broken)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr


def test_unknown_capability_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "computefarm.commands", "worker", "--taskmanager",
                           "tcp://127.0.0.1:9", "--capability", "fortran"],
                          capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("ERROR: farm-worker: no worker plugin for capability "
                                   "'fortran' (known: gcc, python, shell)")


def test_logging_file_receives_the_log(tmp_path):
    from support import Farm, wait_until
    log = tmp_path / "logs" / "farm.log"
    farm = Farm(tmp_path)
    farm.config.write_text(farm.config.read_text() + "logging: {level: INFO, file: %s}\n" % log)
    try:
        farm.start_taskmanager()
        wait_until(lambda: log.exists() and "listening on %s" % farm.address in log.read_text(),
                   what="log file written")
    finally:
        farm.close()
    bad = tmp_path / "bad.yaml"
    bad.write_text("logging: {file: /proc/forbidden/farm.log}\n")
    proc = subprocess.run([sys.executable, "-m", "computefarm.commands", "taskmanager", "--config",
                           str(bad)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "logging.file: cannot write" in proc.stderr
