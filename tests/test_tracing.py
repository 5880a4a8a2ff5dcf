"""COMPUTEFARM_TRACE: every process of a real farm marks a task's way through it
(bench/roundtrip_bench.py reads these marks)."""

import os

from support import Farm

from computefarm import tracing
from computefarm.client import FarmExecutor


def read(folder):
    """pid -> [(time, event)] of every process that wrote marks."""
    marks = {}
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as stream:
            marks[int(name)] = [(int(line.split(" ", 1)[0]), line.split(" ", 1)[1].strip())
                                for line in stream]
    return marks


def test_a_traced_farm_marks_a_task_in_every_process_in_order(tmp_path, monkeypatch):
    folder = tmp_path / "trace"
    folder.mkdir()
    monkeypatch.setenv("COMPUTEFARM_TRACE", str(folder))     # the farm's processes
    farm = Farm(tmp_path)
    tracing.start(str(folder))                               # and this one
    try:
        farm.start_taskmanager()
        worker = farm.start_worker("python")
        with FarmExecutor(farm.address) as executor:
            for _ in range(3):
                tracing.mark("submit")
                assert executor.submit(lambda: None).result(30) is None   # by value
                tracing.mark("done")
    finally:
        farm.close()                                         # SIGTERM: they write at exit
        tracing.stop()
    marks = read(folder)
    slots = [pid for pid, events in marks.items() if any(e == "slot-in" for _, e in events)]
    assert len(slots) == 1
    roles = {os.getpid(): "client", farm.taskmanager.pid: "taskmanager",
             worker.pid: "worker", slots[0]: "slot"}
    assert set(roles) <= set(marks)
    last_submit = max(t for t, e in marks[os.getpid()] if e == "submit")
    timeline = sorted((t, roles[pid], e) for pid, events in marks.items() if pid in roles
                      for t, e in events if t >= last_submit)
    way = [("client", "send 6"), ("taskmanager", "recv 6"), ("taskmanager", "send 8"),
           ("worker", "recv 8"), ("worker", "request"), ("slot", "slot-in"),
           ("slot", "slot-out"), ("worker", "reply"), ("worker", "send 10"),
           ("taskmanager", "recv 10"), ("taskmanager", "send 10"), ("client", "recv 10"),
           ("client", "done")]
    seen = [(role, event) for _, role, event in timeline]
    position = 0
    for step in way:                     # each step, after the one before it
        assert step in seen[position:], (step, seen)
        position = seen.index(step, position) + 1
    for role in ("client", "taskmanager", "worker"):
        assert (role, "wake") in seen and (role, "poll") in seen
