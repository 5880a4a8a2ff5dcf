"""The records file on a full disk: a real one, a 1 MiB tmpfs mounted in a
private mount namespace (``unshare -m``) that only the processes under test see.
Nothing is mounted on the machine itself; the namespace and its tmpfs go away
with the last process in it. The test reads and fills the disk through
``/proc/PID/root``, the tested process's own view of the filesystem."""

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap

import psutil
from support import Farm, wait_until

DISK_SIZE = "1m"


class PrivateDisk:
    """Runs a command with a fresh tmpfs on ``directory`` that only it and its
    children see (a ``host`` for ``Farm.spawn``: ``unshare`` and ``sh`` exec, so the
    pid is the command's)."""

    def __init__(self, directory):
        assert os.geteuid() == 0 and shutil.which("unshare"), \
            "a private tmpfs needs root and unshare (util-linux)"
        self.directory = str(directory)
        os.makedirs(self.directory, exist_ok=True)

    def argv(self, argv):
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs -o size=%s,mode=0700 tmpfs "$0" && exec "$@"' % DISK_SIZE,
                self.directory] + list(argv)

    def check_isolated(self):
        pass

    def seen_by(self, pid):
        """The tmpfs as process ``pid`` sees it, after checking it is mounted there."""
        with open("/proc/%d/mounts" % pid) as stream:
            assert any(line.split()[1] == self.directory and line.split()[2] == "tmpfs"
                       for line in stream), "no tmpfs on %s for pid %d" % (self.directory, pid)
        return "/proc/%d/root%s" % (pid, self.directory)


def fill(directory):
    """Fill the disk holding ``directory``; the file that did it."""
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as stream:
        try:
            while True:
                stream.write(b"\0" * 65536)
        except OSError:
            pass
    return path


def read_records(path):
    """Every line of the records file, each of which must be whole JSON."""
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def test_a_full_disk_pauses_the_records_file_and_it_resumes_with_a_warning(tmp_path):
    """Item 20, in-process: records are lost (and counted) while the disk is full,
    what part of a write got in is cut back (every line stays whole JSON), and the
    first write once there is room says how many were lost."""
    disk = PrivateDisk(tmp_path / "disk")
    script = textwrap.dedent('''
        import json, os, sys
        from computefarm.logs.records import RotatingFile
        now = [0.0]
        disk = sys.argv[1]
        records = RotatingFile(os.path.join(disk, "records.jsonl"), clock=lambda: now[0])
        line = lambda i: json.dumps({"name": "t", "msg": "%05d" % i + "x" * 700})
        for i in range(100):
            assert records.write_records([line(i)]) and records.flush()
        with open(os.path.join(disk, "filler"), "wb", buffering=0) as stream:
            try:
                while True:
                    stream.write(b"\\0" * 4096)
            except OSError:
                pass
        sent = 100
        while records.write_records([line(sent) for sent in range(sent, sent + 7)]) \\
                and records.flush():
            sent += 7
        assert records.lost == 7, records.lost
        assert not records.write_records([line(9999)])     # paused: not even tried
        os.unlink(os.path.join(disk, "filler"))
        assert not records.write_records([line(9998)])     # still paused
        now[0] += 5.0
        assert records.write_records([line(5000)]) and records.flush()
        records.close()
        with open(os.path.join(disk, "records.jsonl")) as stream:
            print(json.dumps({"sent": sent, "lines": stream.read().splitlines()}))
    ''')
    got = subprocess.run(disk.argv([sys.executable, "-c", script, disk.directory]),
                         capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert got.returncode == 0, got.stdout + got.stderr
    out = json.loads(got.stdout)
    lines = [json.loads(line) for line in out["lines"]]      # every line whole
    assert [r["msg"][:5] for r in lines[:-2]] == ["%05d" % i for i in range(out["sent"])]
    notice, last = lines[-2:]
    assert notice["name"] == "farm.logs" and notice["levelname"] == "WARNING"
    assert notice["lost"] == 9 and "No space left on device" in notice["msg"], notice
    assert last["msg"].startswith("05000")
    assert "cannot write" in got.stderr and "9 record(s) were lost" in got.stderr, got.stderr


def test_a_full_disk_pauses_the_forwarder_and_the_farm_goes_on(tmp_path):
    """Item 20, for real: the TaskManager and its forwarder see a 1 MiB disk for
    their records. Filled up, the forwarder stays alive and the TaskManager serves;
    freed, records come back within DISK_RETRY (5 s), after a WARNING record saying
    how many were lost, and no line is left half written."""
    disk = PrivateDisk(tmp_path / "disk")
    farm = Farm(tmp_path, extra={"logging": {
        "records": os.path.join(disk.directory, "records.jsonl"), "cutelog": None}})
    try:
        manager = farm.start_taskmanager(host=disk)
        seen = disk.seen_by(manager.pid)
        records = os.path.join(seen, "records.jsonl")
        assert not os.path.exists(tmp_path / "disk" / "records.jsonl")   # not on this disk
        farm.start_worker("shell")
        client = farm.client()
        assert client.submit("shell", {"cmd": "echo before"}).result(30).ok
        wait_until(lambda: os.path.exists(records) and any(
            r["msg"] == "before" for r in read_records(records)), what="'before' recorded")
        forwarder = psutil.Process(manager.pid).children()[0]

        filler = fill(seen)
        result = client.submit("shell", {"cmd": "for i in $(seq 200); do echo during-$i; "
                                                "done"}).result(30)
        assert result.ok and len(result.stdout) == 200      # the TaskManager serves
        wait_until(lambda: "No space left on device" in farm.taskmanager.log.read_text(),
                   what="the forwarder's warning")
        assert forwarder.is_running() and forwarder.status() != psutil.STATUS_ZOMBIE

        os.unlink(filler)
        count = itertools.count()

        def output_recorded_again():
            number = next(count)
            assert client.submit("shell", {"cmd": "echo after-%d" % number}).result(30).ok
            return any(r["msg"].startswith("after-") for r in read_records(records))
        wait_until(output_recorded_again, timeout=20, interval=0.2,
                   what="records written again")
        assert forwarder.is_running()
        lines = read_records(records)      # here: the namespace goes with the TaskManager
        notices = [r for r in lines if r["name"] == "farm.logs"]
        assert len(notices) == 1 and notices[0]["levelname"] == "WARNING", notices
        assert "No space left on device" in notices[0]["msg"]
        # the last page of the file may still take a few lines once the disk is full
        after = lines.index(notices[0])
        during = [r for r in lines[:after] if r["msg"].startswith("during-")]
        assert len(during) < 200 and len(during) + notices[0]["lost"] >= 200, len(during)
        assert all(r["msg"].startswith("after-") for r in lines[after + 1:])
        # said in its log too, right after the notice record was written
        wait_until(lambda: "were lost while it could not" in farm.taskmanager.log.read_text(),
                   what="the forwarder's log line")
    finally:
        farm.close()
