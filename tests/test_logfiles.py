"""One owner per log file: processes sharing ``logging.file`` (and TaskManagers
sharing ``logging.records``) each write and rotate a file of their own."""

import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml
from support import Farm, wait_until

from computefarm import logfiles

WRITER = textwrap.dedent('''
    import argparse, logging, os, sys, time
    from computefarm import defaults
    defaults.LOG_FILE_SIZE = 8000          # rotate every 70 lines or so
    from computefarm.commands import common
    config, role, go, count = sys.argv[1:5]
    parser = argparse.ArgumentParser()
    common.add_common_options(parser)
    common.setup(parser.parse_args(["--config", config, "--log-level", "INFO"]), role)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.005)
    log = logging.getLogger("writer")
    for number in range(int(count)):
        log.info("%s line %04d %s", role, number, "x" * 40)
''')


def lines_of(path):
    """The lines of ``path`` and its rotated copies, oldest first."""
    lines = []
    for index in range(5, 0, -1):
        older = "%s.%d" % (path, index)
        if os.path.exists(older):
            lines += open(older).read().splitlines()
    return lines + open(path).read().splitlines()


def test_names_beside_a_file_held_by_another_process():
    assert list(logfiles.alternatives("/l/farm.log", "worker"))[:3] == [
        "/l/farm.worker.log", "/l/farm.worker-2.log", "/l/farm.worker-3.log"]
    assert list(logfiles.alternatives("/l/records.jsonl"))[:2] == [
        "/l/records-2.jsonl", "/l/records-3.jsonl"]
    assert next(logfiles.alternatives("/l.d/farmlog", "monitor")) == "/l.d/farmlog.monitor"
    assert len(list(logfiles.alternatives("/l/farm.log", "worker"))) == 99


def test_two_processes_sharing_logging_file_rotate_their_own(tmp_path):
    """Item 20: two processes logging 300 lines each at once into one
    ``logging.file`` rotated every 8 kB: each has its own file set, holding all
    its own lines in order and none of the other's."""
    config = tmp_path / "farm.yaml"
    log_file = tmp_path / "logs" / "farm.log"
    config.write_text(yaml.safe_dump({"logging": {"file": str(log_file)}}))
    go = tmp_path / "go"
    procs = []
    try:
        for role in ("taskmanager", "worker"):
            with open(tmp_path / ("%s.err" % role), "w") as err:
                proc = subprocess.Popen([sys.executable, "-c", WRITER, str(config), role,
                                         str(go), "300"], stdout=subprocess.PIPE, stderr=err,
                                        text=True, cwd=str(tmp_path))
            proc.err = tmp_path / ("%s.err" % role)
            procs.append(proc)
            assert proc.stdout.readline() == "ready\n", proc.err.read_text()
        go.touch()
        for proc in procs:
            assert proc.wait(60) == 0, proc.err.read_text()
        first, second = procs
        assert "is in use by pid %d: this process writes %s" % (
            first.pid, tmp_path / "logs" / "farm.worker.log") in second.err.read_text()
        for path, role in ((log_file, "taskmanager"), (log_file.with_name("farm.worker.log"),
                                                        "worker")):
            assert os.path.exists("%s.3" % path)                     # rotated, and often
            mine = [line for line in lines_of(path) if " writer: " in line]
            assert [line.split(" line ")[1][:4] for line in mine] == [
                "%04d" % number for number in range(300)], path
            assert all(": %s line " % role in line for line in mine), path
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_a_farm_sharing_one_farm_yaml_takes_a_file_each_and_kill_9_frees_it(tmp_path):
    """Item 20, with the real commands: a TaskManager, its log forwarder and two
    workers started from one farm.yaml log to farm.log, farm.logforwarder.log,
    farm.worker.log and farm.worker-2.log; a worker killed with SIGKILL leaves its
    name to the next one. A second TaskManager with the same records file has its
    forwarder write records-2.jsonl."""
    logs = tmp_path / "logs"
    logging_section = {"file": str(logs / "farm.log"), "cutelog": None,
                       "records": str(logs / "records.jsonl")}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    farm = Farm(tmp_path / "one", extra={"logging": logging_section})
    other = None
    try:
        manager = farm.start_taskmanager()
        first = farm.start_worker("shell")
        second = farm.start_worker("shell")
        wait_until(lambda: os.path.exists(logs / "farm.logforwarder.log"), what="forwarder log")
        assert "(pid %d)" % manager.pid in (logs / "farm.log").read_text()
        for proc, name in ((first, "farm.worker.log"), (second, "farm.worker-2.log")):
            assert "farm.log is in use by pid %d: this process writes %s" % (
                manager.pid, logs / name) in proc.log.read_text()
            assert "-%d-" % proc.pid in (logs / name).read_text()    # its own name, pid
        assert "-%d-" % second.pid not in (logs / "farm.worker.log").read_text()

        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        third = farm.start_worker("shell")
        assert "this process writes %s" % (logs / "farm.worker.log") in third.log.read_text()
        wait_until(lambda: "-%d-" % third.pid in (logs / "farm.worker.log").read_text(),
                   what="the third worker in farm.worker.log")

        other = Farm(tmp_path / "two", extra={"logging": logging_section})
        other.start_taskmanager()
        other.start_worker("shell", machine="two")
        client = other.client()
        assert client.submit("shell", {"cmd": "echo second-farm"}).result(30).ok
        wait_until(lambda: os.path.exists(logs / "records-2.jsonl") and
                   '"second-farm"' in (logs / "records-2.jsonl").read_text(),
                   what="the second farm's records in records-2.jsonl")
        assert re.search(r"records file \S+records.jsonl is in use by pid \d+: this process "
                         r"writes \S+records-2.jsonl", other.taskmanager.log.read_text())
        assert '"second-farm"' not in (logs / "records.jsonl").read_text()
    finally:
        if other is not None:
            other.close()
        farm.close()


@pytest.mark.parametrize("role", ["worker", None])
def test_a_claim_is_released_and_taken_again_in_process(tmp_path, role):
    path = str(tmp_path / "farm.log")
    held = logfiles.claim(path, role)
    assert held.path == path and held.holder is None
    # another open file description: flock treats it as another process would
    beside = logfiles.claim(path, role)
    assert beside.holder == os.getpid() and beside.path != path
    held.release()
    again = logfiles.claim(path, role)
    assert again.path == path
    again.release()
    beside.release()
