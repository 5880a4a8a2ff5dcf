"""majordomo run: doit's semantics kept exactly, executed on the farm."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from support import command, pid_alive, read_doit_db, run_tool, tree, wait_until

from computefarm import __version__

SEMANTICS = textwrap.dedent('''
    import os

    DOIT_CONFIG = {"verbosity": 2}

    def make_data(targets):
        with open(targets[0], "w") as out:
            out.write("\\n".join(str(i * i) for i in range(10)) + "\\n")
        return {"count": 10}

    def task_data():
        return {"actions": [make_data], "targets": ["data.txt"], "file_dep": ["input.txt"],
                "meta": {"capability": "python"}, "clean": True}

    def task_total():
        return {"actions": ["awk '{s += $1} END {print s}' data.txt > total.txt"],
                "file_dep": ["data.txt"], "targets": ["total.txt"], "clean": True}

    def task_changed():
        return {"actions": ["echo %(changed)s > changed.txt"], "file_dep": ["input.txt"],
                "targets": ["changed.txt"], "clean": True}

    def use_count(count, targets):
        open(targets[0], "w").write("count=%d\\n" % count)

    def task_count():
        return {"actions": [use_count], "getargs": {"count": ("data", "count")},
                "targets": ["count.txt"], "file_dep": ["data.txt"], "clean": True}

    def task_param():
        return {"actions": ["echo %(who)s > param.txt"], "targets": ["param.txt"],
                "params": [{"name": "who", "short": "w", "default": "world"}],
                "uptodate": [True], "clean": True}

    def task_env():
        return {"actions": ["echo started >> log.txt"], "teardown": ["echo teardown >> log.txt"]}

    def task_uses_env():
        return {"actions": ["echo uses env >> uses.txt"], "setup": ["env"],
                "targets": ["uses.txt"], "clean": True}

    def task_calc():
        return {"actions": ["cat calc.txt 2>/dev/null; echo calc"], "calc_dep": ["find_deps"],
                "verbosity": 2}

    def task_find_deps():
        return {"actions": [lambda: {"file_dep": ["input.txt"]}]}
''')


def make_project(path, text=SEMANTICS):
    path.mkdir()
    (path / "dodo.py").write_text(text)
    (path / "input.txt").write_text("one\n")
    return path


def test_same_outputs_and_database_as_doit_and_second_run_does_nothing(tmp_path):
    plain = make_project(tmp_path / "plain")
    farm = make_project(tmp_path / "farm")
    expected = run_tool("doit", plain, "run")
    got = run_tool("majordomo", farm, "run")
    assert expected.returncode == 0, expected.stderr
    assert got.returncode == 0, got.stderr
    assert tree(farm) == tree(plain)
    assert read_doit_db(farm) == read_doit_db(plain)
    assert (farm / "log.txt").read_text() == "started\nteardown\n"     # teardown ran once
    assert got.stdout.count(".  ") == expected.stdout.count(".  ")
    assert "embedded farm" in got.stderr and "task(s) done" in got.stderr
    again = run_tool("majordomo", farm, "run")
    plain_again = run_tool("doit", plain, "run")
    assert again.returncode == 0 and executed(again) == executed(plain_again)
    assert "data" not in executed(again) and "total" not in executed(again)
    assert tree(farm) == tree(plain)
    assert read_doit_db(farm) == read_doit_db(plain)


def executed(proc):
    return sorted(line[3:] for line in proc.stdout.splitlines() if line.startswith(".  "))


def test_positional_selection_params_always_and_clean(tmp_path):
    farm = make_project(tmp_path / "farm")
    got = run_tool("majordomo", farm, "run", "param", "-w", "farm")
    assert got.returncode == 0 and (farm / "param.txt").read_text() == "farm\n"
    assert not (farm / "data.txt").exists()
    assert run_tool("majordomo", farm, "run", "total").returncode == 0
    assert (farm / "total.txt").read_text() == "285\n"
    forced = run_tool("majordomo", farm, "run", "-a", "total")
    assert ".  total" in forced.stdout
    assert run_tool("majordomo", farm, "clean").returncode == 0
    assert not (farm / "total.txt").exists() and not (farm / "data.txt").exists()
    listed = run_tool("majordomo", farm, "list")
    assert listed.returncode == 0 and "total" in listed.stdout


FAILING = textwrap.dedent('''
    def task_bad():
        return {"actions": ["echo about to fail; echo on stderr >&2; exit 3"],
                "targets": ["bad.txt"]}

    def task_after_bad():
        return {"actions": ["touch after.txt"], "task_dep": ["bad"], "targets": ["after.txt"]}

    def task_independent():
        return {"actions": ["sleep 0.5; touch independent.txt"],
                "targets": ["independent.txt"]}

    def boom():
        raise ValueError("python went wrong")

    def task_pyfail():
        return {"actions": [boom], "task_dep": ["independent"]}
''')


def test_failing_task_exit_code_output_and_continue(tmp_path):
    plain = make_project(tmp_path / "plain", FAILING)
    farm = make_project(tmp_path / "farm", FAILING)
    expected = run_tool("doit", plain, "run", "bad", "after_bad")
    got = run_tool("majordomo", farm, "run", "bad", "after_bad")
    assert got.returncode == expected.returncode == 1
    assert "about to fail" in got.stdout and "Command failed: 'echo about to fail" in got.stdout
    assert not (farm / "after.txt").exists()
    expected = run_tool("doit", plain, "run", "-c")
    got = run_tool("majordomo", farm, "run", "-c")
    assert got.returncode == expected.returncode == 2
    assert (farm / "independent.txt").exists() and not (farm / "after.txt").exists()
    assert "python went wrong" in got.stdout + got.stderr
    assert 'dodo.py", line ' in got.stdout + got.stderr     # not <dynamic-code>
    assert read_doit_db(farm) == read_doit_db(plain)


def test_missing_capability_is_reported_before_anything_runs(tmp_path):
    farm = make_project(tmp_path / "farm", textwrap.dedent('''
        def task_first():
            return {"actions": ["touch first.txt"], "targets": ["first.txt"]}
        def task_fortran():
            return {"actions": ["gfortran x.f90"], "meta": {"capability": "fortran"}}
    '''))
    got = run_tool("majordomo", farm, "run")
    assert got.returncode == 3
    assert got.stderr.strip().splitlines()[-1] == (
        "ERROR: capability 'fortran' is needed by task(s) fortran, but no worker plugin "
        "provides it; nothing was run")
    assert not (farm / "first.txt").exists()
    (farm / "farm.yaml").write_text("taskmanager: {address: 'tcp://127.0.0.1:9'}\n"
                                    "machines: {m1: {workers: [{capabilities: [shell]}]}}\n")
    got = run_tool("majordomo", farm, "run")
    assert got.returncode == 3 and "no machine in" in got.stderr and "farm.yaml" in got.stderr
    assert not (farm / "first.txt").exists()


def test_a_capability_no_worker_of_the_taskmanager_offers_is_an_error(tmp_path, farm):
    """With --taskmanager (no machine list in farm.yaml), majordomo asks the
    TaskManager who offers what, instead of letting the task wait for ever."""
    farm.start_worker("python")
    project = make_project(tmp_path / "project", textwrap.dedent('''
        def task_first():
            return {"actions": ["touch first.txt"], "targets": ["first.txt"]}
    '''))
    started = time.monotonic()
    got = run_tool("majordomo", project, "run", "--taskmanager", farm.address)
    assert time.monotonic() - started < 10
    assert got.returncode == 3
    assert got.stderr.strip().splitlines()[-1] == (
        "ERROR: capability 'shell' is needed by task(s) first, but no worker of the "
        "TaskManager at %s offers it; nothing was run" % farm.address)
    assert not (project / "first.txt").exists()
    farm.start_worker("shell")
    assert run_tool("majordomo", project, "run", "--taskmanager", farm.address).returncode == 0
    assert (project / "first.txt").exists()


def test_a_nice_run_waits_for_the_slots_other_runs_want(tmp_path, farm):
    """majordomo run --nice: its task starts only once another run (the same user's
    client, which would otherwise take turns with it) has nothing queued."""
    farm.start_worker("shell", slots=1)
    client = farm.client()
    futures = [client.submit("shell", {"cmd": "sleep 1"}) for _ in range(3)]
    wait_until(lambda: client.status()["running"], what="the client's first task")
    project = make_project(tmp_path / "project", textwrap.dedent('''
        def task_nice():
            return {"actions": ["%s -c 'import time; print(time.time())' > started.txt"],
                    "targets": ["started.txt"]}
    ''' % sys.executable))
    got = run_tool("majordomo", project, "run", "--nice", "--taskmanager", farm.address)
    assert got.returncode == 0, got.stderr
    started = float((project / "started.txt").read_text())
    last = max(f.result(30).started for f in futures)
    assert started >= last, (started, last)


def test_command_line_mistakes_are_one_line_and_doit_options_are_used_or_said(tmp_path):
    project = make_project(tmp_path / "project", textwrap.dedent('''
        def task_first():
            return {"actions": ["touch first.txt"], "targets": ["first.txt"]}
    '''))
    started = time.monotonic()
    got = run_tool("majordomo", project, "run", "--taskmanager", "127.0.0.1:5555")
    assert time.monotonic() - started < 5 and got.returncode == 3
    assert got.stderr.strip() == ("ERROR: --taskmanager: expected tcp://HOST:PORT, got "
                                  "'127.0.0.1:5555'")
    got = run_tool("majordomo", project, "run", "--slots", "0")
    assert got.returncode == 3 and got.stderr.strip() == (
        "ERROR: --slots must be at least 1 (without it: -n, else the CPU count)")
    assert not (project / "first.txt").exists()
    got = run_tool("majordomo", project, "run", "-n", "3", "-P", "thread")
    assert got.returncode == 0, got.stderr
    assert ", 3 slot(s)" in got.stderr                    # -n sizes the embedded worker
    assert "-P thread is not used" in got.stderr
    version = run_tool("majordomo", project, "--version")
    assert version.stdout.splitlines()[0] == "majordomo (ComputeFarm) %s" % __version__
    for name in ("farm-status", "farm-keys", "farm-worker", "farm-taskmanager",
                 "farm-monitor", "farm-viewer"):
        shown = subprocess.run(command(name) + ["--version"], capture_output=True, text=True)
        assert shown.stdout.strip() == "%s (ComputeFarm) %s" % (name, __version__)


def test_a_target_never_created_is_as_in_doit_and_said(tmp_path):
    """doit does not check a task's targets after it ran: it succeeds, and runs
    again next time. majordomo does the same, says so, and does not wait for a
    target of a task that ran on this machine."""
    text = textwrap.dedent('''
        def task_forgets():
            return {"actions": ["echo ran >> runs.txt"], "targets": ["never.txt"]}
    ''')
    plain, project = make_project(tmp_path / "plain", text), make_project(tmp_path / "farm", text)
    for _ in range(2):
        assert run_tool("doit", plain, "run").returncode == 0
        started = time.monotonic()
        got = run_tool("majordomo", project, "run")
        assert got.returncode == 0, got.stderr
        assert time.monotonic() - started < 5 + 3        # no wait: it ran here
        assert "task 'forgets' succeeded but did not create its target 'never.txt'" \
            in got.stderr
    assert (project / "runs.txt").read_text() == (plain / "runs.txt").read_text() == "ran\nran\n"


def test_bad_meta_names_the_task(tmp_path):
    farm = make_project(tmp_path / "farm", textwrap.dedent('''
        def task_slow():
            return {"actions": ["true"], "meta": {"timeout": "soon"}}
    '''))
    got = run_tool("majordomo", farm, "run")
    assert got.returncode == 3
    assert got.stderr.strip() == ("ERROR: task 'slow': meta.timeout must be a number of "
                                  "seconds > 0, got 'soon'")
    (farm / "dodo.py").write_text("def task_t():\n    return {'actions': ['true'], "
                                  "'meta': {'capabilty': 'gcc', 'owner': 'me'}}\n")
    got = run_tool("majordomo", farm, "run")
    assert got.returncode == 3 and got.stderr.strip() == (
        "ERROR: task 't': unknown meta key 'capabilty' (did you mean 'capability'?)")


def test_unreachable_remote_taskmanager_fails_fast_naming_it(tmp_path):
    """majordomo on a host of its own (a network namespace without a default
    route) names a TaskManager on an address of its network that nobody has."""
    import hosts
    assert hosts.available() is None, hosts.available()
    farm = make_project(tmp_path / "farm", "def task_a():\n    return {'actions': ['true']}\n")
    network = hosts.Network()
    try:
        host = network.add("laptop")
        nobody = hosts.SUBNET % 250
        started = time.monotonic()
        got = host.run([sys.executable, "-m", "computefarm.majordomo", "run", "--taskmanager",
                        "tcp://%s:9" % nobody], cwd=str(farm), capture_output=True,
                       text=True, timeout=60)
    finally:
        network.close()
    assert time.monotonic() - started < 20
    assert got.returncode == 3, got.stderr
    assert "no TaskManager answers at tcp://%s:9" % nobody in got.stderr


def test_local_taskmanager_is_started_for_remote_workers(tmp_path):
    from support import Farm
    farm_dir = make_project(tmp_path / "farm", "def task_a():\n    return "
                            "{'actions': ['echo $COMPUTEFARM_WORKER > who.txt'], "
                            "'targets': ['who.txt']}\n")
    helper = Farm(tmp_path)
    try:
        import socket
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        address = "tcp://127.0.0.1:%d" % probe.getsockname()[1]
        probe.close()
        helper.address = address
        helper.start_worker("shell", wait=False)           # keeps trying to connect
        (farm_dir / "farm.yaml").write_text("taskmanager: {address: '%s'}\n" % address)
        got = run_tool("majordomo", farm_dir, "run")
        assert got.returncode == 0, got.stderr
        assert "started a TaskManager at %s" % address in got.stderr
        assert (farm_dir / "who.txt").read_text().startswith("worker-")
    finally:
        helper.close()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                       (signal.SIGHUP, 129)])
def test_a_stop_signal_stops_remote_tasks_and_the_farm_and_a_rerun_finishes(tmp_path, sig,
                                                                            code):
    """Ctrl-C, and (item 15) what `timeout`, a cancelled CI job or a closed terminal
    sends: the embedded farm and every task process end with majordomo."""
    farm = make_project(tmp_path / "farm", textwrap.dedent('''
        def task_quick():
            for i in range(3):
                yield {"name": str(i), "actions": ["touch quick%d.txt" % i],
                       "targets": ["quick%d.txt" % i], "file_dep": ["dodo.py"]}
        def task_slow():
            for i in range(2):
                yield {"name": str(i), "task_dep": ["quick"],
                       "actions": ["if [ ! -e pass2 ]; then echo $$ > pid%d; sleep 60; fi; "
                                   "touch slow%d.txt" % (i, i)],
                       "targets": ["slow%d.txt" % i]}
    '''))
    proc = subprocess.Popen([sys.executable, "-m", "computefarm.majordomo", "run"],
                            cwd=str(farm), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        wait_until(lambda: (farm / "pid0").exists() and (farm / "pid1").exists()
                   and (farm / "pid0").read_text() and (farm / "pid1").read_text(),
                   timeout=60, what="slow tasks running")
        pids = [int((farm / ("pid%d" % i)).read_text()) for i in range(2)]
        pids += [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, err
    assert len(pids) >= 6        # two tasks, the TaskManager, its forwarder, a worker, ...
    wait_until(lambda: not [pid for pid in pids if pid_alive(pid)], timeout=10,
               what="every process of the run gone")
    db = read_doit_db(farm)
    assert {"quick:0", "quick:1", "quick:2"} <= set(db) and "slow:0" not in db
    (farm / "pass2").write_text("")
    again = run_tool("majordomo", farm, "run")
    assert again.returncode == 0, again.stderr
    assert ".  slow:0" in again.stdout and ".  quick:0" not in again.stdout
    assert (farm / "slow1.txt").exists()
    shutil.rmtree(farm)


def test_other_doit_commands_work(tmp_path):
    farm = make_project(tmp_path / "farm")
    assert run_tool("majordomo", farm, "run", "total").returncode == 0
    info = run_tool("majordomo", farm, "info", "data")
    assert info.returncode == 0 and "capability" in info.stdout
    assert run_tool("majordomo", farm, "forget", "total").returncode == 0
    assert "total" not in read_doit_db(farm)
    assert run_tool("majordomo", farm, "ignore", "changed").returncode == 0
    assert "!! changed" in run_tool("majordomo", farm, "run", "changed").stdout
    dump = run_tool("majordomo", farm, "dumpdb")
    assert dump.returncode == 0 and "data" in dump.stdout
    helped = run_tool("majordomo", farm, "help", "run")
    assert helped.returncode == 0 and "--taskmanager" in helped.stdout
    assert "majordomo run" in helped.stdout


def test_another_program_on_the_port_is_named_not_a_failed_bind(tmp_path):
    """Item 21: a local address where another program listens (it never answers
    a handshake) is said so, not 'cannot bind ... Address already in use'."""
    import socket
    farm = make_project(tmp_path / "farm", "def task_a():\n    return {'actions': ['true']}\n")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        address = "tcp://127.0.0.1:%d" % other.getsockname()[1]
        got = run_tool("majordomo", farm, "run", "--taskmanager", address, timeout=60)
    assert got.returncode == 3, got.stderr
    assert "ERROR: something listens at %s, but no TaskManager there let this process in" \
        % address in got.stderr
    assert "Address already in use" not in got.stderr


def test_a_lost_task_leaves_an_error_record_saying_where_and_why(tmp_path, farm):
    """Its worker killed under it, out of attempts: the run fails, and the log
    viewer's records hold an ERROR for the task naming the worker and why."""
    farm.start_worker("shell")
    project = make_project(tmp_path / "project", textwrap.dedent('''
        def task_doomed():
            return {"actions": ["kill -9 $PPID"], "meta": {"max_attempts": 1}}
    '''))
    got = run_tool("majordomo", project, "run", "--taskmanager", farm.address)
    assert got.returncode != 0
    assert "farm: task lost: task" in got.stdout + got.stderr
    records = tmp_path / "records.jsonl"

    def errors():
        lines = [json.loads(line) for line in records.read_text().splitlines()] \
            if records.exists() else []
        return [r for r in lines if r["levelname"] == "ERROR"
                and r["name"] == "majordomo.project.doomed"]
    wait_until(errors, what="the task's ERROR record")
    message = errors()[0]["msg"]
    assert "failed after" in message and "lost" in message, message
    assert "stopped answering" in message and "worker-" in message, message
