"""farm-status: the live view on a real terminal (a pty, rendered by pyte), and plain text."""

import os
import re
import signal
import subprocess

import cloudpickle
from support import Terminal, command, wait_until

from computefarm.commands.statusview import reason
from computefarm.hostinfo import local_user
from computefarm.storage.cas import digest_bytes

TRACEBACK = ('Traceback (most recent call last):\n  File "x.py", line 3, in f\n'
             '    1 / 0\nZeroDivisionError: division by zero\n')


def test_the_reason_of_a_failure_is_the_line_that_says_it():
    assert reason(TRACEBACK) == "ZeroDivisionError: division by zero"
    assert reason("the python process running the task exited with code -9\n") == \
        "the python process running the task exited with code -9"
    assert reason(None) == ""


def busy_farm(farm, tmp_path):
    """A farm with one task running (label "long-one") and one that failed."""
    farm.start_worker("shell", "python", slots=2, machine="m1")
    farm.start_monitor("m1", os.getpid())
    client = farm.client()
    wait_until(lambda: any(m["cpu_percent"] is not None
                           for m in client.status()["machines"]), what="a load report")
    go = tmp_path / "go"
    running = client.submit("shell", {"cmd": "while [ ! -e %s ]; do sleep 0.05; done" % go},
                            label="long-one")
    fails = lambda: 1 / 0                        # noqa: E731  (by value: slots import no tests)
    failed = client.submit("python", {"payload": cloudpickle.dumps((fails, (), {}))},
                           label="divides")
    assert failed.result(30).status == "failed"
    wait_until(lambda: client.status()["running"], what="the long task running")
    return client, running, go


def test_watch_redraws_in_place_with_names_headers_and_reasons(farm, tmp_path):
    client, running, go = busy_farm(farm, tmp_path)
    terminal = Terminal(command("farm-status") + ["--taskmanager", farm.address, "--watch"],
                        columns=150, lines=50)
    try:
        terminal.read_until(lambda output: output.count(b"\x1b[H") >= 2, timeout=30)
        terminal.proc.send_signal(signal.SIGINT)          # Ctrl-C ends it
        assert terminal.wait(15) == 0
    finally:
        terminal.close()
    lines = terminal.lines()
    text = "\n".join(lines)
    assert len([line for line in lines if line.startswith("ComputeFarm ")]) == 1   # in place
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[0]), lines[0]
    for heading in ("MACHINES", "WORKERS", "QUEUED", "USERS", "RUNNING", "FAILED"):
        assert any(line.startswith(heading) for line in lines), heading
    assert re.search(r"\[[#.]{10}\] +\d+%", text), text              # a CPU bar
    long_line = next(line for line in lines if "long-one" in line)
    assert "shell" in long_line and re.search(r"\d+\.\ds", long_line)
    failure = next(line for line in lines if "divides" in line)
    assert "ZeroDivisionError: division by zero" in failure
    assert "Traceback" not in text
    user_line = next(line for line in lines if line.split()[:1] == [local_user()])
    assert user_line.split()[1:3] == ["1", "0"] and user_line.endswith("100%"), user_line
    go.write_text("")
    assert running.result(30).ok


def test_without_a_terminal_it_is_plain_text(farm, tmp_path):
    client, _, _ = busy_farm(farm, tmp_path)
    blobs = [(digest_bytes(data), len(data), data) for data in (b"kept", b"x" * 3000)]
    client.upload(blobs[:1], hold=True).result(30)
    client.upload(blobs[1:]).result(30)
    got = subprocess.run(command("farm-status") + ["--taskmanager", farm.address],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert "\x1b" not in got.stdout
    assert "long-one" in got.stdout and "ZeroDivisionError: division by zero" in got.stdout
    [store] = [line for line in got.stdout.splitlines() if line.startswith("STORE")]
    assert re.match(r"STORE +\d+ blob\(s\), [\d.]+ (bytes|KiB|MiB|GiB) of 20\.0 GiB; 1 held by "
                    r"runs; evicted \d+ \(0 held\); action cache: \d+ entries, \d+ hits, \d+ "
                    r"misses$", store), store        # (the tests' store is shared: counts vary)


def test_a_reader_that_goes_away_ends_it_quietly(farm):
    """``farm-status | head -1``: no traceback, the code of a closed pipe (141)."""
    reader, writer = os.pipe()
    os.close(reader)                          # gone before a line is written
    try:
        got = subprocess.run(command("farm-status") + ["--taskmanager", farm.address],
                             stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writer)
    assert got.returncode == 141 and "Traceback" not in got.stderr and \
        "Error" not in got.stderr, got.stderr
