"""The built-in specialised workers: gcc, python, and the plugin registry."""

import subprocess
import sys

import pytest

from computefarm.exceptions import PluginError
from computefarm.worker.plugin import WorkerPlugin, load_plugin


def test_gcc_compiles_links_and_reports_diagnostics(farm, tmp_path):
    farm.start_worker("gcc", slots=2)
    client = farm.client()
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\nint twice(int);\nint main(void) { printf("%d\\n", twice(21)); '
        'return 0; }\n')
    (tmp_path / "twice.c").write_text("int twice(int x) { return 2 * x; }\n")
    (tmp_path / "broken.c").write_text("int f(void) {\n  return nope;\n}\n")
    cwd = str(tmp_path)
    objects = [client.submit("gcc", {"action": "compile", "source": name + ".c",
                                     "output": name + ".o", "flags": ["-O2", "-Wall"],
                                     "cwd": cwd}, requires={"version": ">=4"})
               for name in ("main", "twice")]
    assert all(f.result(60).ok for f in objects)
    linked = client.submit("gcc", {"action": "link", "objects": ["main.o", "twice.o"],
                                   "output": "prog", "cwd": cwd}).result(60)
    assert linked.ok and linked.detail["output"] == "prog"
    assert subprocess.run([str(tmp_path / "prog")], capture_output=True,
                          text=True).stdout == "42\n"
    broken = client.submit("gcc", {"action": "compile", "source": "broken.c",
                                   "output": "broken.o", "cwd": cwd}).result(60)
    assert broken.status == "failed" and broken.exit_code == 1
    errors = [r for r in broken.records if r["level"] == "ERROR"]
    assert errors and errors[0]["file"] == "broken.c" and errors[0]["line"] == 2
    assert "nope" in errors[0]["message"] and errors[0]["stream"] == "stderr"


def test_gcc_reports_version_and_target_attributes():
    plugin = load_plugin("gcc")(1)
    attrs = plugin.attributes()
    target = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True).stdout
    assert attrs["target"] == target.strip()
    assert attrs["version"][0].isdigit() and attrs["platform"].startswith("linux-")


def test_python_task_cwd_env_and_output(farm, tmp_path):
    farm.start_worker("python")
    client = farm.client()
    import cloudpickle

    def job():
        import os
        print("working in", os.getcwd())
        return os.environ["COMPUTEFARM_ATTEMPT"], os.environ.get("EXTRA")

    payload = cloudpickle.dumps((job, (), {}))
    result = client.submit("python", {"payload": payload, "cwd": str(tmp_path),
                                      "env": {"EXTRA": "yes"}}).result(30)
    assert result.ok and cloudpickle.loads(result.value) == ("1", "yes")
    assert result.stdout == ["working in %s" % tmp_path]


def test_a_python_task_whose_folder_is_missing_or_removed_fails_alone(farm, tmp_path):
    """A folder this machine lacks is the task's one-line error, not its slot's
    end; nor is the folder the last task ran in being removed since (a staged
    task's scratch folder)."""
    worker = farm.start_worker("python", slots=1)
    client = farm.client()
    import os

    import cloudpickle
    import psutil
    payload = cloudpickle.dumps((os.getpid, (), {}))
    slot = cloudpickle.loads(client.submit("python", {"payload": payload}).result(30).value)
    payload = cloudpickle.dumps((os.getcwd, (), {}))
    missing = client.submit("python", {"payload": payload, "cwd": str(tmp_path / "absent")})
    result = missing.result(30)
    assert result.status == "failed" and result.error == \
        "cannot run in %s on this machine: No such file or directory" % (tmp_path / "absent")
    gone = tmp_path / "gone"
    gone.mkdir()
    first = client.submit("python", {"payload": payload, "cwd": str(gone)}).result(30)
    assert cloudpickle.loads(first.value) == str(gone)
    gone.rmdir()
    again = client.submit("python", {"payload": payload, "cwd": str(tmp_path)}).result(30)
    assert again.ok and cloudpickle.loads(again.value) == str(tmp_path)
    assert [p.pid for p in psutil.Process(worker.pid).children()] == [slot]   # the same one


def test_python_task_that_kills_its_process_fails_and_slot_recovers(farm):
    farm.start_worker("python")
    client = farm.client()
    import os

    import cloudpickle
    died = client.submit("python", {"payload": cloudpickle.dumps((os._exit, (3,), {}))})
    result = died.result(30)
    assert result.status == "failed" and "exited with code 3" in result.error
    again = client.submit("python", {"payload": cloudpickle.dumps((sum, ([1, 2],), {}))})
    assert cloudpickle.loads(again.result(30).value) == 3


def test_python_timeout_kills_the_slot_tree(farm, tmp_path):
    farm.start_worker("python")
    client = farm.client()
    import cloudpickle
    pidfile = tmp_path / "child"

    def spawn_and_hang(path):
        import subprocess
        import time
        child = subprocess.Popen(["sleep", "60"])
        open(path, "w").write(str(child.pid))
        time.sleep(60)

    result = client.submit("python", {"payload": cloudpickle.dumps(
        (spawn_and_hang, (str(pidfile),), {}))}, timeout=1.0).result(30)
    assert result.status == "timeout"
    from support import pid_alive
    assert not pid_alive(int(pidfile.read_text()))


def test_unknown_and_invalid_plugins_are_plugin_errors():
    with pytest.raises(PluginError, match="no worker plugin for capability 'cobol'"):
        load_plugin("cobol")
    assert issubclass(load_plugin("shell"), WorkerPlugin)


def test_builtin_plugins_install_inside_the_package_and_no_top_level_workers():
    out = subprocess.run([sys.executable, "-c", "import computefarm.worker.plugins.gcc, "
                          "importlib.util; print(importlib.util.find_spec('workers'))"],
                         capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "None"


def test_path_map_rewrites_cwd_and_command(farm, tmp_path):
    project, mount = tmp_path / "project", tmp_path / "mnt"
    for path in (project, mount):       # as the client sees it / as this machine mounts it
        path.mkdir()
        (path / "data.txt").write_text("in %s\n" % path.name)
    args_worker = farm.spawn("farm-worker", [
        "--config", str(farm.config), "--taskmanager", farm.address, "--capability", "shell",
        "--path-map", "%s=%s" % (project, mount), "--log-level", "DEBUG"], "worker")
    farm.wait_registered(args_worker)
    client = farm.client()
    result = client.submit("shell", {"cmd": "cat data.txt; cat %s/data.txt" % project,
                                     "cwd": str(project)}).result(30)
    assert result.ok and result.stdout == ["in mnt", "in mnt"]


def test_output_in_many_pieces_and_diagnostics_stay_within_the_wire_limits(farm, tmp_path):
    """A result carries at most MAX_TAILS pieces and MAX_RECORDS records per piece:
    a task that alternates its streams 300 times, and a compile with 400 warnings,
    still deliver their results, with every line."""
    farm.start_worker("shell", "gcc")
    client = farm.client()
    shell = client.submit("shell", {"cmd": "for i in $(seq 300); do echo out$i; "
                                           "echo err$i >&2; done"}).result(60)
    assert shell.ok
    assert shell.stdout == ["out%d" % i for i in range(1, 301)]
    assert shell.stderr == ["err%d" % i for i in range(1, 301)]
    (tmp_path / "noisy.c").write_text("".join("int f%d(void) { int unused%d; return 0; }\n"
                                              % (i, i) for i in range(400)))
    noisy = client.submit("gcc", {"action": "compile", "source": "noisy.c",
                                  "output": "noisy.o", "flags": ["-Wall"],
                                  "cwd": str(tmp_path)}).result(60)
    assert noisy.ok
    warnings = [r for r in noisy.records if r["level"] == "WARNING"]
    assert 256 <= len(warnings) <= 400 and warnings[-1]["line"] == 400


def test_a_30_mb_line_is_cut_with_a_marker_and_the_worker_keeps_its_heartbeat(farm):
    """Item 17: splitting is linear, and a line past OUTPUT_LINE_MAX is cut."""
    farm.start_worker("shell")
    client = farm.client()
    result = client.submit("shell", {"cmd": "head -c 30000000 /dev/zero | tr '\\0' x; "
                                            "echo; echo done"}).result(60)
    assert result.ok and result.attempt == 1, (result.status, result.error)
    first, last = result.stdout
    assert last == "done"
    assert first.startswith("x" * 1000) and len(first) < 70000
    assert first.endswith("[line cut: 29934464 more bytes]")
    assert client.status()["expired"].get("worker", 0) == 0


def test_large_python_results_arrive_even_beyond_the_message_limit(farm):
    """Item 17: a 40 MB result arrives, and one beyond the message limit too: both
    as blobs through the store (``value_blob``), fetched by the client; the
    worker goes on with the next task, whose small result comes inside."""
    import cloudpickle
    farm.start_worker("python")
    client = farm.client()

    def blob(size):
        return b"r" * size

    for size in (40000000, 70000000):
        big = client.submit("python", {"payload": cloudpickle.dumps((blob, (size,), {}))})
        result = big.result(120)
        assert result.ok and len(cloudpickle.loads(result.value)) == size
        assert result.value_blob["size"] > size
    after = client.submit("python", {"payload": cloudpickle.dumps((blob, (10,), {}))})
    result = after.result(60)
    assert result.ok and result.value_blob is None and cloudpickle.loads(result.value) == b"r" * 10


def test_what_a_python_task_prints_after_it_returned_is_not_the_next_tasks(farm, tmp_path):
    """A thread a task leaves running prints while its slot is idle: those bytes
    are dropped, not handed to the next task on that slot (another user's, maybe)."""
    import cloudpickle
    from support import wait_until
    worker = farm.start_worker("python")             # one slot: both tasks run on it
    printed = tmp_path / "printed"

    def leaves_a_thread(path):
        import threading
        import time

        def later():
            time.sleep(0.2)
            print("printed by the first task's thread", flush=True)
            open(path, "w").close()
        threading.Thread(target=later, daemon=True).start()
        return "first"

    def second():
        print("the second task's own line")
        return "second"

    first = farm.client().submit("python", {"payload": cloudpickle.dumps(
        (leaves_a_thread, (str(printed),), {}))}).result(30)
    assert first.ok and first.stdout == []
    wait_until(printed.exists, what="the first task's thread printed")
    lines = []
    result = farm.client().submit("python", {"payload": cloudpickle.dumps((second, (), {}))},
                                  on_output=lambda stream, line: lines.append(line)).result(30)
    assert result.ok and result.stdout == ["the second task's own line"]
    assert lines == ["the second task's own line"]
    wait_until(lambda: "printed after its last task returned" in worker.log.read_text(),
               what="the worker's warning")


def test_a_python_tasks_last_line_without_a_newline_is_its_own(farm):
    """The slot outlives the task: a last line printed without a newline is this
    task's last line, not the start of the next task's first one."""
    import cloudpickle
    farm.start_worker("python")                      # one slot: both tasks run on it
    client = farm.client()

    def unterminated():
        import sys
        sys.stdout.write("the first task's line, no newline")
        sys.stderr.write("and on stderr")
        return 1

    def terminated():
        print("the second task's line")
        return 2

    first = client.submit("python", {"payload": cloudpickle.dumps((unterminated, (), {}))})
    first = first.result(30)
    assert first.ok and first.stdout == ["the first task's line, no newline"]
    assert first.stderr == ["and on stderr"]
    second = client.submit("python", {"payload": cloudpickle.dumps((terminated, (), {}))})
    second = second.result(30)
    assert second.ok and second.stdout == ["the second task's line"] and second.stderr == []


def test_a_python_slot_that_stops_reading_is_replaced_and_the_task_runs(farm):
    """A slot alive when checked but no longer reading its requests (dying as the
    task is handed over): the task runs on a new slot, not failing on a broken pipe."""
    import cloudpickle
    import psutil
    from support import wait_until

    def stop_reading_requests():
        import os
        import sys
        keep_r, keep_w = os.pipe()         # the slot waits on this one, forever
        os.dup2(keep_r, int(sys.argv[1]))  # its request pipe's read end, closed
        return os.getpid()

    worker = farm.start_worker("python")   # one slot
    client = farm.client()
    result = client.submit("python", {"payload": cloudpickle.dumps(
        (stop_reading_requests, (), {}))}).result(30)
    assert result.ok, result.error
    stuck = psutil.Process(cloudpickle.loads(result.value))
    assert stuck.is_running() and stuck.ppid() == worker.pid
    result = client.submit("python", {"payload": cloudpickle.dumps((sum, ([1, 2],), {}))}
                           ).result(30)
    assert result.ok and cloudpickle.loads(result.value) == 3, result.error
    wait_until(lambda: "no longer reads its requests" in worker.log.read_text(),
               what="the warning")
    wait_until(lambda: not stuck.is_running() or stuck.status() == psutil.STATUS_ZOMBIE,
               what="the stuck slot killed")


def test_a_python_slot_killed_while_idle_is_replaced_not_handed_a_task(farm):
    """The OOM killer, or a person, kills an idle slot: the next task runs on a new one."""
    import os
    import signal

    import cloudpickle
    import psutil
    from support import wait_until
    worker = farm.start_worker("python")
    client = farm.client()
    payload = cloudpickle.dumps((sum, ([1, 2],), {}))
    assert client.submit("python", {"payload": payload}).result(30).ok
    slot = psutil.Process(worker.pid).children()[0]
    os.kill(slot.pid, signal.SIGKILL)

    def killed():
        try:
            return slot.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    wait_until(killed, what="the slot killed")
    result = client.submit("python", {"payload": payload}).result(30)
    assert result.ok and cloudpickle.loads(result.value) == 3, result.error
    wait_until(lambda: "ended while idle" in worker.log.read_text(), what="the warning")
