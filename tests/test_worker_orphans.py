"""A worker killed with SIGKILL leaves no task running: the next worker of the
machine, or its monitor, kills what the dead worker's tasks left, and nothing else."""

import json
import logging
import os
import re
import signal
import subprocess
import time

import psutil
import pytest
from support import pid_alive, wait_until

from computefarm.exceptions import ConfigError
from computefarm.worker.processes import Tree
from computefarm.worker.taskrecords import TaskRecords

# A task whose tree outlives any worker: the shell (the leader), a child in its
# group, and a daemon: in a session of its own, its parent gone, so neither the
# group nor the leader's children find it. Each attempt writes its pids apart.
TREE = ("echo $$ >> {dir}/pids.$COMPUTEFARM_ATTEMPT; "
        "sleep 300 & echo $! >> {dir}/pids.$COMPUTEFARM_ATTEMPT; "
        "(setsid sleep 300 & echo $! >> {dir}/pids.$COMPUTEFARM_ATTEMPT); wait")


@pytest.fixture
def records(tmp_path, monkeypatch):
    """This test's own records folder, for the farm processes it starts too."""
    path = tmp_path / "records"
    monkeypatch.setenv("COMPUTEFARM_TASK_RECORDS", str(path))
    return path


@pytest.fixture
def stray(tmp_path):
    """Processes a test started or is waiting to see killed, and those its TREE tasks
    wrote down (a failing test may not have looked): killed by pid at the end."""
    procs, began = [], time.time()
    yield procs
    for pidfile in tmp_path.glob("pids.*"):
        for pid in pidfile.read_text().split():
            try:
                proc = psutil.Process(int(pid))
                if proc.create_time() >= began - 1:      # not a later process with its pid
                    procs.append(proc)
            except (psutil.Error, ValueError):
                pass
    for proc in procs:
        try:
            if isinstance(proc, subprocess.Popen):
                proc.kill()
                proc.wait(5)
            else:
                proc.kill()                 # psutil: never a reuse of the pid
        except (psutil.Error, OSError):
            pass


def tree_of(pidfile, stray, count=3):
    """The running processes a TREE task wrote to ``pidfile``, once all are there."""
    def written():
        try:
            pids = [int(line) for line in pidfile.read_text().split()]
        except (FileNotFoundError, ValueError):
            return None
        return pids if len(pids) == count else None
    procs = [psutil.Process(pid) for pid in wait_until(written, what="tree in %s" % pidfile)]
    stray.extend(procs)
    assert all(pid_alive(proc.pid) for proc in procs)
    return procs


def gone(procs):
    return lambda: not any(pid_alive(proc.pid) for proc in procs)


def start_killed_worker_with_a_tree(farm, tmp_path, records, stray):
    """A worker of machine m1 running a TREE task, then killed with SIGKILL."""
    worker = farm.start_worker("shell", machine="m1")
    future = farm.client().submit("shell", {"cmd": TREE.format(dir=tmp_path)})
    tree = tree_of(tmp_path / "pids.1", stray)
    wait_until(lambda: [name for name in os.listdir(records) if "~%d-" % worker.pid in name],
               timeout=5, what="the task's record (written once it ran 50 ms)")
    farm.stop(worker, signal.SIGKILL)
    assert not gone(tree)()               # nothing else stops an orphaned tree
    return worker, future, tree


def test_the_next_worker_of_the_machine_kills_the_tree_a_killed_worker_left(
        farm, tmp_path, records, stray):
    dead, future, tree = start_killed_worker_with_a_tree(farm, tmp_path, records, stray)
    worker = farm.start_worker("shell", machine="m1")
    wait_until(gone(tree), timeout=10, what="the orphaned tree killed")
    assert not [name for name in os.listdir(records) if "~%d-" % dead.pid in name]
    # the task's farm-wide id: its key's scope, then the client's own id
    assert re.search(r"killed 3 process\(es\) of task [0-9a-f]{12}/%s \(attempt 1\) left "
                     r"running by worker %d" % (re.escape(future.task_id), dead.pid),
                     worker.log.read_text())
    rerun = tree_of(tmp_path / "pids.2", stray)     # the new worker's own run stays
    assert not gone(rerun)()


def test_the_monitor_kills_the_tree_a_killed_worker_left(farm, tmp_path, records, stray):
    dead, future, tree = start_killed_worker_with_a_tree(farm, tmp_path, records, stray)
    monitor = farm.start_monitor("m1", owner_scope=os.getpid())
    wait_until(gone(tree), timeout=10, what="the orphaned tree killed")
    wait_until(lambda: not os.listdir(records), what="the record removed")
    # the record goes before the line that says so is written: wait for the line
    log = wait_until(lambda: "WARNING" in monitor.log.read_text() and
                     monitor.log.read_text(), what="the monitor's WARNING")
    assert re.search(
        r"killed 3 process\(es\) of task [0-9a-f]{12}/%s \(attempt 1\) left running by "
        r"worker %d of machine m1" % (re.escape(future.task_id), dead.pid), log)


def sleeper(stray, **options):
    proc = subprocess.Popen(["sleep", "300"], **options)
    stray.append(proc)
    return proc


def rewrite(path, **fields):
    record = json.loads(path.read_text())
    record.update(fields)
    path.write_text(json.dumps(record))


def test_a_record_whose_worker_lives_is_left_alone_until_it_dies(tmp_path, stray):
    folder = str(tmp_path / "records")
    worker = sleeper(stray)
    leader = sleeper(stray, start_new_session=True)
    TaskRecords(folder, machine="m1", identity="worker-x", pid=worker.pid).add(
        "t1", 1, Tree(leader.pid))
    reaper = TaskRecords(folder, name="reaper")
    assert reaper.reap() == 0
    assert pid_alive(leader.pid) and len(os.listdir(folder)) == 1
    worker.kill()
    worker.wait(5)
    assert reaper.reap() == 1
    wait_until(lambda: not pid_alive(leader.pid), what="the leader killed")
    assert os.listdir(folder) == []


def test_a_leader_pid_reused_by_another_process_is_not_killed(tmp_path, stray):
    folder = tmp_path / "records"
    worker = sleeper(stray)
    stranger = sleeper(stray, start_new_session=True)
    TaskRecords(str(folder), machine="m1", identity="worker-x", pid=worker.pid).add(
        "t1", 1, Tree(stranger.pid))
    [name] = os.listdir(folder)
    record = json.loads((folder / name).read_text())
    rewrite(folder / name, leader_start=record["leader_start"] - 1)   # the task's leader
    worker.kill()                                                    # started earlier
    worker.wait(5)
    assert TaskRecords(str(folder), name="reaper").reap() == 0
    assert pid_alive(stranger.pid) and os.listdir(folder) == []


def test_a_group_whose_leader_is_gone_is_killed_only_if_it_carries_the_task_marks(
        tmp_path, stray):
    """A pid is not reused while it names a group, but once a group emptied its
    pid may go to another leader, which may die leaving its group: a stranger's."""
    folder = tmp_path / "records"
    worker = sleeper(stray)
    records = TaskRecords(str(folder), machine="m1", identity="worker-x", pid=worker.pid)
    groups = {}
    for task, env in (("marked", {"COMPUTEFARM_WORKER": "worker-x",
                                  "COMPUTEFARM_TASK_ID": "marked"}),
                      ("stranger", {"COMPUTEFARM_WORKER": "worker-y",
                                    "COMPUTEFARM_TASK_ID": "stranger"})):
        leader = subprocess.Popen(["sh", "-c", "sleep 300 & echo $!"], start_new_session=True,
                                  stdout=subprocess.PIPE, env=dict(os.environ, **env))
        stray.append(leader)
        child = psutil.Process(int(leader.stdout.readline()))
        leader.stdout.close()
        stray.append(child)
        records.add(task, 1, Tree(leader.pid))
        leader.wait(5)                                # the leader is gone, its group is not
        groups[task] = child
    worker.kill()
    worker.wait(5)
    assert TaskRecords(str(folder), name="reaper").reap() == 1
    wait_until(lambda: not pid_alive(groups["marked"].pid), what="the marked group killed")
    assert pid_alive(groups["stranger"].pid) and os.listdir(folder) == []


def test_garbled_records_are_removed_with_one_warning_and_others_hosts_kept(
        tmp_path, stray, caplog):
    folder = tmp_path / "records"
    worker = sleeper(stray)
    records = TaskRecords(str(folder), machine="m1", identity="worker-x", pid=worker.pid)
    records.add("t1", 1, Tree(sleeper(stray, start_new_session=True).pid))
    [name] = os.listdir(folder)
    (folder / name).write_text('{"worker": ')
    (folder / "stray-file").write_text("?")
    elsewhere = "otherhost~%s" % name.split("~", 1)[1]
    (folder / elsewhere).write_text("{}")
    worker.kill()
    worker.wait(5)
    reaper = TaskRecords(str(folder), name="reaper")
    with caplog.at_level(logging.WARNING, logger="computefarm.worker.taskrecords"):
        assert reaper.reap() == 0
        assert reaper.reap() == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any(str(folder / name) in w and "unreadable" in w for w in warnings)
    assert any(str(folder / "stray-file") in w for w in warnings)
    assert os.listdir(folder) == [elsewhere]        # another host's: its pids are not ours


def test_the_records_folder_is_private(tmp_path):
    folder = tmp_path / "records"
    TaskRecords(str(folder))
    assert folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o755)
    with pytest.raises(ConfigError, match="chmod 700"):
        TaskRecords(str(folder))


def test_python_slots_die_with_their_worker(farm, tmp_path, records, stray):
    import cloudpickle
    worker = farm.start_worker("python", slots=2, machine="m1")
    slots = psutil.Process(worker.pid).children()
    stray.extend(slots)
    assert len(slots) == 2
    pidfile = tmp_path / "slot"

    def sleep_in_slot(path):
        import os
        import time
        open(path, "w").write(str(os.getpid()))
        time.sleep(300)

    farm.client().submit("python", {"payload": cloudpickle.dumps(
        (sleep_in_slot, (str(pidfile),), {}))})
    wait_until(lambda: pidfile.exists() and pidfile.read_text(), what="a slot busy")
    assert int(pidfile.read_text()) in [slot.pid for slot in slots]
    farm.stop(worker, signal.SIGKILL)
    wait_until(gone(slots), timeout=10, what="both slots gone with their worker")
