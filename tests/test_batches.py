"""Batches (farm-run): command lists the TaskManager keeps on disk, run without
their client, through kill -9 of the TaskManager, a full disk and bad input.
Real TaskManager, worker and farm-run processes."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from support import Farm, SecureFarm, Terminal, command, wait_until

from computefarm import defaults
from computefarm.client import Client
from computefarm.client.batches import BatchError
from computefarm.commands.run import ACTIONS, read_commands
from computefarm.exceptions import UsageError


def farm_run(farm, *args, timeout=60):
    """farm-run against ``farm``: the CompletedProcess (text)."""
    options = ["--config", str(farm.config), "--taskmanager", farm.address]
    argv = list(args[:1]) + options + list(args[1:]) if args and args[0] in ACTIONS \
        else options + list(args)
    return subprocess.run(command("farm-run") + argv, capture_output=True, text=True,
                          timeout=timeout, cwd=str(farm.dir))


def batch_status(farm, batch_id):
    with Client(farm.address, connect_timeout=10) as client:
        return client.batch(batch_id).status()


def results_in_database(path, batch_id):
    with sqlite3.connect(str(path)) as db:
        return db.execute("SELECT n, status, attempt FROM results WHERE batch = ? ORDER BY n",
                          (batch_id,)).fetchall()


def runs_of(folder, count):
    """How many times each of ``count`` tasks ran (lines it appended to its file)."""
    return [len((folder / str(i)).read_text().split()) if (folder / str(i)).exists() else 0
            for i in range(count)]


def test_a_batch_from_a_file_runs_without_its_client(farm, tmp_path):
    """farm-run returns with the batch id while the tasks still run; each command
    runs -n times with its placeholders filled in (a token unique per try);
    status, wait, results and the gathered output come from other farm-run
    processes."""
    farm.start_worker("shell", slots=2)
    out = tmp_path / "out"
    out.mkdir()
    commands = tmp_path / "sweep.txt"
    commands.write_text(
        "# a sweep: two commands\n"
        "\n"
        "sleep 0.6; echo alpha {task}.{replica} > %s/a-{replica}-{token}; echo alpha {replica}\n"
        "echo beta {replica} {{literal}}; \\\n"
        "  echo oops >&2\n" % out)
    done = farm_run(farm, "-f", str(commands), "-n", "3", "--label", "sweep")
    assert done.returncode == 0, done.stderr
    batch_id = done.stdout.strip()
    assert batch_id.startswith("b") and "\n" not in batch_id
    status = batch_status(farm, batch_id)
    assert status["state"] == "active" and status["tasks"] == 6 and status["label"] == "sweep"
    waited = farm_run(farm, "wait", batch_id)
    assert waited.returncode == 0, waited.stderr
    assert "6 ok, 0 failed" in waited.stdout
    files = sorted(os.listdir(out))
    assert len(files) == 3 and len({name.split("-", 2)[2] for name in files}) == 3
    assert sorted((out / name).read_text() for name in files) == [
        "alpha 0.%d\n" % r for r in range(3)]
    results = farm_run(farm, "results", batch_id)
    rows = [line.split() for line in results.stdout.splitlines()[1:]]
    assert [row[:3] for row in rows] == [["%d.%d" % (t, r), "ok", "0"]
                                         for t in range(2) for r in range(3)]
    written = farm_run(farm, "output", batch_id, "-o", str(tmp_path / "all.out"))
    assert written.returncode == 0, written.stderr
    lines = (tmp_path / "all.out").read_text().splitlines()
    assert sorted(lines) == sorted(["[0.%d] alpha %d" % (r, r) for r in range(3)] +
                                   ["[1.%d] beta %d {literal}" % (r, r) for r in range(3)] +
                                   ["[1.%d!] oops" % r for r in range(3)])
    listed = farm_run(farm, "list")
    assert batch_id in listed.stdout and "finished" in listed.stdout


def test_a_failing_task_makes_wait_exit_1_and_says_which(farm):
    farm.start_worker("shell", slots=2)
    done = farm_run(farm, "--wait", "-n", "2", "--", "sh", "-c", "exit {replica}")
    assert done.returncode == 1, done.stderr
    assert "1 ok, 1 failed" in done.stdout
    batch_id = done.stdout.split()[0]
    rows = farm_run(farm, "results", batch_id).stdout.splitlines()[1:]
    assert rows[1].split()[:3] == ["0.1", "failed", "1"] and "exit code 1" in rows[1]


@pytest.mark.parametrize("content, problem", [
    (b"echo fine\necho {oops\n", ":2: expected '}' before end of string"),
    (b"echo fine\n\n# note\necho {seed}\n", ":4: unknown placeholder {seed}"),
    (b"echo {replica:q}\n", ":1: a placeholder cannot be filled in"),
    (b"echo fine\necho \xff\n", ":2: not UTF-8 text"),
    (b"echo one \\\n", ":1: the last line ends with a backslash"),
    (b"# nothing\n\n", ": no commands in it"),
])
def test_a_bad_command_file_is_refused_before_anything_is_queued(farm, tmp_path, content,
                                                                 problem):
    path = tmp_path / "commands.txt"
    path.write_bytes(content)
    done = farm_run(farm, "-f", str(path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ERROR: farm-run: %s%s" % (path, problem)] or \
        done.stderr.strip().startswith("ERROR: farm-run: %s%s" % (path, problem))
    assert len(done.stderr.strip().splitlines()) == 1
    with Client(farm.address, connect_timeout=10) as client:
        assert client.batches() == []


def test_read_commands_joins_continued_lines_and_names_their_first_line(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("  # comment\nrun a \\\n  --flag\n\nrun b\r\n")
    assert read_commands(str(path)) == ["run a   --flag", "run b"]
    path.write_text("run a \\\n  {nope}\n")
    with pytest.raises(UsageError, match=r"c\.txt:1: unknown placeholder \{nope\}"):
        read_commands(str(path))


def test_another_users_batch_cannot_be_seen_or_cancelled(tmp_path):
    farm = SecureFarm(tmp_path, peers=(("w1", "worker"), ("alice", "client"),
                                       ("bob", "client")))
    try:
        farm.start_taskmanager()
        farm.start_worker("shell", slots=1, config=farm.peer_config("w1"))
        alice = farm.secure_client("alice")
        batch = alice.submit_batch(["sleep 5"], replicas=2)
        bob = farm.secure_client("bob")
        with pytest.raises(BatchError, match="no batch %s here" % batch.id):
            bob.batch(batch.id)
        assert bob.batches() == []
        with pytest.raises(BatchError, match="no batch %s here" % batch.id):
            bob._batch_query("cancel", batch.id)
        assert [b["id"] for b in alice.batches()] == [batch.id]
        assert alice.batches()[0]["user"] == "alice"
        assert batch.cancel()["state"] in ("cancelling", "cancelled")
    finally:
        farm.close()


def test_cancel_stops_running_tasks_and_ends_queued_ones(farm, tmp_path):
    farm.start_worker("shell", slots=2)
    started = tmp_path / "started"
    started.mkdir()
    client = farm.client()
    batch = client.submit_batch(["touch %s/{index}; sleep 60" % started], replicas=10)
    wait_until(lambda: len(os.listdir(started)) == 2, what="two tasks running")
    with pytest.raises(BatchError, match="is active: cancel it first"):
        batch.forget()
    began = time.monotonic()
    assert batch.cancel()["state"] == "cancelling"       # until its running ones stop
    status = batch.wait(timeout=20, interval=0.1)
    assert time.monotonic() - began < 15
    assert status["state"] == "cancelled" and status["cancelled"] == 10
    assert status["running"] == 0 and status["ok"] == 0
    assert len(os.listdir(started)) == 2             # no third task ever started
    statuses = [item["status"] for item in batch.results()]
    assert statuses == ["cancelled"] * len(statuses) and len(statuses) >= 2
    assert batch.forget()["state"] == "forgotten"
    assert client.batches() == []
    with pytest.raises(BatchError, match="no batch %s here" % batch.id):
        batch.status()


def test_a_detached_batch_survives_two_kill9_of_the_taskmanager(farm, tmp_path):
    """400 tasks, the client gone, the TaskManager killed with SIGKILL twice mid-run
    and started again on its port: every task has exactly one result, each ran
    once, and the results list them all."""
    runs = tmp_path / "runs"
    runs.mkdir()
    farm.start_worker("shell", slots=2)
    farm.start_worker("shell", slots=2)
    count = 400
    with Client(farm.address, connect_timeout=10) as client:
        batch_id = client.submit_batch(["echo {index} >> %s/{index}; sleep 0.02" % runs],
                                       replicas=count, label="kill9").id
    port = farm.address
    for kill in (1, 2):
        wait_until(lambda: sum(runs_of(runs, count)) >= kill * count // 3, timeout=60,
                   what="a third more of the tasks run")
        assert farm.stop(farm.taskmanager, signal.SIGKILL) == -signal.SIGKILL
        farm.start_taskmanager(bind=port)
    with Client(farm.address, connect_timeout=10) as client:
        batch = client.batch(batch_id)
        status = batch.wait(timeout=120, interval=0.2)
        results = list(batch.results())
    assert status["state"] == "finished" and status["ok"] == count, status
    assert [(r["task"], r["replica"], r["status"]) for r in results] == [
        (0, n, "ok") for n in range(count)]
    stored = results_in_database(farm.dir / "taskmanager.sqlite", batch_id)
    assert [row[0] for row in stored] == list(range(count))
    assert runs_of(runs, count) == [1] * count


def test_a_second_taskmanager_on_the_same_database_is_one_error_line(farm):
    second = subprocess.run(command("farm-taskmanager") + [
        "--config", str(farm.config), "--bind", "tcp://127.0.0.1:0"],
        capture_output=True, text=True, timeout=30)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines()[-1] == (
        "ERROR: farm-taskmanager: database %s is in use by another TaskManager (pid %d); "
        "give this one another taskmanager.database"
        % (farm.dir / "taskmanager.sqlite", farm.taskmanager.pid))


def test_a_corrupt_database_is_one_error_line_at_start(tmp_path):
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not a database, not at all" * 200)
    done = subprocess.run(command("farm-taskmanager") + [
        "--bind", "tcp://127.0.0.1:0", "--database", str(path)],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: farm-taskmanager: database %s is corrupt (" % path)
    assert last.endswith("move it away to start with an empty one, or put a backup in "
                         "its place")


def start_worker_with(farm, env, *args, **kwargs):
    """A worker whose tasks see ``env`` (its machine's speed, for these tests)."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        return farm.start_worker(*args, **kwargs)
    finally:
        for key, value in saved.items():
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value


@pytest.mark.parametrize("speculate", [True, False])
def test_stragglers_on_a_slow_machine_get_a_copy_elsewhere(farm, speculate):
    """Two machines, one 20x slower: with --speculate its tasks are copied onto the
    fast machine once they run twice the median, the first result wins and the
    batch ends long before the slow copies would; without, nothing is copied."""
    start_worker_with(farm, {"TASK_SECONDS": "0.3"}, "shell", slots=2, machine="fast")
    start_worker_with(farm, {"TASK_SECONDS": "6"}, "shell", slots=2, machine="slow")
    client = farm.client()
    began = time.monotonic()
    batch = client.submit_batch(["sleep $TASK_SECONDS; echo {token}"], replicas=12,
                                speculate=speculate)
    status = batch.wait(timeout=60, interval=0.1)
    took = time.monotonic() - began
    results = list(batch.results())
    assert status["ok"] == 12 and len(results) == 12
    assert sorted(r["n"] for r in results) == list(range(12))
    if speculate:
        assert status["copies"] >= 1 and status["copies_won"] >= 1, status
        won = [r for r in results if r["copies"] == 2 and r["winner"] == 2]
        assert len(won) == status["copies_won"] and all(r["worker"] for r in won)
        assert took < 5.0, took              # the slow copies would end at 6 s or later
    else:
        assert status["copies"] == 0 and all(r["copies"] == 1 for r in results)
        assert took >= 6.0


class SmallDisk:
    """A 16 MiB tmpfs at ``folder``, seen only by the processes started in it: a mount
    namespace kept by a holder process, so a TaskManager started again finds it."""

    def __init__(self, folder):
        folder.mkdir()
        self.folder = folder
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs -o size=16m cf-small "$1" && echo mounted && exec sleep 600',
             "sh", str(folder)], stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert self.holder.stdout.readline().strip() == "mounted"

    def check_isolated(self):
        """Its traffic stays on this machine's loopback: only the mounts differ."""

    def argv(self, argv):
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"] + list(argv)

    def run(self, script):
        return subprocess.run(self.argv(["sh", "-c", script]), capture_output=True,
                              text=True, timeout=30)

    def close(self):
        self.holder.kill()
        self.holder.wait(10)


def test_a_full_disk_holds_results_back_and_a_crash_then_loses_none(tmp_path):
    """The database's disk fills mid-batch: the TaskManager says so, keeps running
    tasks and does not acknowledge their results; killed with SIGKILL while the
    disk is full, then started again once there is room: every task has its one
    result."""
    disk = SmallDisk(tmp_path / "small")
    (tmp_path / "farm").mkdir()
    farm = None
    try:
        farm = Farm(tmp_path / "farm", database=str(disk.folder / "tm.sqlite"))
        farm.start_taskmanager(host=disk)
        farm.start_worker("shell", slots=2)
        runs = tmp_path / "runs.txt"
        count = 300
        with Client(farm.address, connect_timeout=10) as client:
            batch_id = client.submit_batch(["sleep 0.02; echo {index} >> %s" % runs],
                                           replicas=count).id

        def ran():
            return len(runs.read_text().split()) if runs.exists() else 0
        wait_until(lambda: ran() >= 50, timeout=60, what="50 tasks run")
        assert disk.run("dd if=/dev/zero of=%s/filler bs=64k" % disk.folder).returncode != 0
        wait_until(lambda: "cannot write the database" in farm.taskmanager.log.read_text(),
                   timeout=30, what="the TaskManager saying its disk is full")
        full_at = ran()
        wait_until(lambda: ran() >= full_at + 30, timeout=60,
                   what="tasks still running with the disk full")
        status = batch_status(farm, batch_id)
        assert status["state"] == "active"
        port = farm.address
        assert farm.stop(farm.taskmanager, signal.SIGKILL) == -signal.SIGKILL
        assert disk.run("rm %s/filler" % disk.folder).returncode == 0
        farm.start_taskmanager(bind=port, host=disk)
        with Client(farm.address, connect_timeout=10) as client:
            batch = client.batch(batch_id)
            status = batch.wait(timeout=120, interval=0.2)
            results = list(batch.results())
        assert status["state"] == "finished" and status["ok"] == count, status
        assert [r["n"] for r in results] == list(range(count))
        # each ran once: what finished while the disk was full was not acknowledged,
        # so its worker sent it again to the next TaskManager rather than it running again
        assert sorted(int(n) for n in runs.read_text().split()) == list(range(count))
    finally:
        if farm is not None:
            farm.close()
        disk.close()


def test_a_cancelled_batch_with_copies_running_ends_cancelled(farm):
    """Cancel while stragglers and their copies both run: every copy stops and the
    batch ends `cancelled`, whichever copy's end it hears last (a dropped one's,
    at times)."""
    start_worker_with(farm, {}, "shell", slots=2, machine="a")
    start_worker_with(farm, {}, "shell", slots=2, machine="b")
    client = farm.client()
    batch = client.submit_batch(["if [ {replica} -ge 4 ]; then sleep 60; else sleep 0.2; fi"],
                                replicas=6, speculate=True)
    deadline = time.monotonic() + 30
    while batch.status()["copies"] < 2:
        assert time.monotonic() < deadline, batch.status()
        time.sleep(0.1)
    assert batch.status()["running"] == 4             # two tasks, each with its copy
    batch.cancel()
    status = batch.wait(timeout=20, interval=0.1)
    assert status["state"] == "cancelled" and status["running"] == 0
    assert status["ok"] == 4 and status["cancelled"] == 2
    assert client.status()["running"] == []


def test_wait_on_a_terminal_shows_a_progress_line_then_the_summary(farm):
    """farm-run --wait on a terminal: one line redrawn in place with done/total,
    running and failed, cleared before the summary (nothing garbled)."""
    farm.start_worker("shell", slots=2)
    terminal = Terminal(command("farm-run") + [
        "--config", str(farm.config), "--taskmanager", farm.address, "--wait", "-n", "8",
        "--", "sleep", "0.5"], cwd=str(farm.dir), columns=120, lines=20)
    try:
        assert terminal.wait(60) == 0, "\n".join(terminal.lines())
    finally:
        terminal.close()
    raw = bytes(terminal.output).decode()
    drawn = [re.match(r"(b[0-9a-f]+): (\d+)/8 done, (\d+) running, (\d+) failed$", part)
             for part in raw.split("\r\x1b[K")]
    done = [int(m.group(2)) for m in drawn if m]
    assert len(done) >= 2 and done == sorted(done) and done[0] < 8, raw
    screen = [line for line in terminal.lines() if line]
    batch_id = screen[0]
    assert re.fullmatch(r"b[0-9a-f]{10}", batch_id), screen
    assert screen[1].startswith("batch %s of " % batch_id) and screen[1].endswith(": finished")
    assert screen[2:] == [
        "  8 task(s) (1 command(s) x 8): 8 ok, 0 failed, 0 cancelled, 0 running, 0 queued"]


def test_a_window_of_long_commands_is_smaller(farm):
    """The TaskManager holds at most BATCH_WINDOW tasks of a batch in memory, and
    fewer when their command lines are long (BATCH_WINDOW_BYTES of them); the rest
    wait on disk. No worker: every task it holds is queued (STATE's queues)."""
    client = farm.client()
    client.submit_batch(["true"], replicas=3000)
    wait_until(lambda: client.status()["queues"].get("shell") == defaults.BATCH_WINDOW,
               what="a full window of short commands")
    long = ": " + "x" * 60000
    client.submit_batch([long], replicas=3000, capability="other")
    held = defaults.BATCH_WINDOW_BYTES // len(long)
    wait_until(lambda: client.status()["queues"].get("other") == held,
               what="a window of %d long commands" % held)
    status = [b for b in client.batches() if b["capability"] == "other"][0]
    assert status["queued"] == 3000 and status["state"] == "active"


def test_the_database_can_be_backed_up_while_the_taskmanager_runs(farm, tmp_path):
    """README's backup line, against a running TaskManager: the copy holds the batch."""
    client = farm.client()
    batch = client.submit_batch(["true {replica}"], replicas=5)      # no worker: queued
    copy = tmp_path / "copy.sqlite"
    done = subprocess.run([sys.executable, "-c", "import sqlite3; sqlite3.connect(%r).backup("
                           "sqlite3.connect(%r))" % (str(farm.dir / "taskmanager.sqlite"),
                                                     str(copy))],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(str(copy)) as db:
        assert db.execute("SELECT id, state, commands, replicas FROM batches").fetchall() == [
            (batch.id, "active", 1, 5)]
        assert db.execute("SELECT text FROM commands").fetchall() == [("true {replica}",)]
    assert batch.status()["queued"] == 5                  # and it goes on serving
