"""Every majordomo run writes its timeline in the Chrome trace event format."""

import json
import os
import pathlib
import random
import subprocess
import sys
import textwrap

from support import run_tool

DODO = textwrap.dedent('''
    def task_step():
        for i in range(8):
            yield {"name": str(i), "actions": ["sleep 0.2"]}

    def task_quick():
        return {"actions": ["true", "true"]}
''')
TASKS = ["step:%d" % i for i in range(8)] + ["quick"]


def check_trace(path):
    """The trace's events, checked against the trace event format: metadata naming
    each process (machine) and thread (slot), one complete event per action."""
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    machines = {e["pid"]: e["args"]["name"] for e in events
                if e["ph"] == "M" and e["name"] == "process_name"}
    actions = [e for e in events if e["ph"] == "X"]
    for event in actions:
        assert set(event) >= {"name", "ph", "ts", "dur", "pid", "tid", "args"}
        assert isinstance(event["ts"], int) and isinstance(event["dur"], int)
        assert event["ts"] >= 0 and event["dur"] >= 0
        assert machines[event["pid"]] == "machine %s" % event["args"]["machine"]
        assert names[(event["pid"], event["tid"])].endswith(" slot %d" % (
            event["tid"] % 1000))
        assert event["args"]["status"] == "ok" and event["args"]["attempt"] == 1
    return actions


def test_a_run_writes_a_timeline_of_every_task_on_its_slots(tmp_path):
    (tmp_path / "dodo.py").write_text(DODO)
    report = tmp_path / "out" / "trace.json"
    got = run_tool("majordomo", tmp_path, "run", "--slots", "2", "--report", str(report))
    assert got.returncode == 0, got.stderr
    assert "timeline: %s" % report in got.stderr
    actions = check_trace(report)
    assert sorted(e["name"] for e in actions) == sorted(TASKS + ["quick"])   # two actions
    for event in actions:
        if event["name"].startswith("step:"):     # its run time, not its time queued
            assert 0.2 <= event["dur"] / 1e6 < 2.0, event
    by_slot = {}
    for event in actions:
        by_slot.setdefault((event["pid"], event["tid"]), []).append(event)
    assert 1 <= len(by_slot) <= 2                    # one worker of 2 slots
    for events in by_slot.values():                   # a slot runs one task at a time
        events.sort(key=lambda e: e["ts"])
        for first, second in zip(events, events[1:]):
            assert first["ts"] + first["dur"] <= second["ts"], (first, second)


def test_majordomo_timeline_prints_the_last_timeline_and_old_runs_are_pruned(tmp_path):
    (tmp_path / "dodo.py").write_text(DODO)
    none = run_tool("majordomo", tmp_path, "timeline")
    assert none.returncode != 0 and "no timeline of a majordomo run" in none.stderr
    keep = {"COMPUTEFARM_RUNS_KEEP": "2"}      # the newest two runs' files are kept
    firsts = []
    for _ in range(3):
        assert run_tool("majordomo", tmp_path, "run", "quick", env=keep).returncode == 0
        firsts.append(pathlib.Path(run_tool("majordomo", tmp_path, "timeline").stdout.split()[0]))
    shown = run_tool("majordomo", tmp_path, "timeline")
    assert shown.returncode == 0, shown.stderr
    path, page = map(pathlib.Path, shown.stdout.split())
    written = sorted(path.parent.glob("timeline-*.json"), key=lambda p: p.stat().st_mtime)
    assert written == firsts[1:] and path == written[-1]     # the newest of this project's
    pages = sorted(path.parent.glob("report-*.html"), key=lambda p: p.stat().st_mtime)
    assert len(pages) == 2 and page == pages[-1] and page.name[6:-5] == path.name[8:-5]
    actions = check_trace(path)
    assert [e["name"] for e in actions] == ["quick", "quick"]
    reader, writer = os.pipe()                # majordomo timeline | head: gone at once
    os.close(reader)
    try:
        closed = subprocess.run([sys.executable, "-m", "computefarm.majordomo", "timeline"],
                                cwd=str(tmp_path), stdout=writer, stderr=subprocess.PIPE,
                                text=True, timeout=60)
    finally:
        os.close(writer)
    assert closed.returncode == 141 and closed.stderr == "", closed.stderr
    bad = run_tool("majordomo", tmp_path, "run", "quick", env={"COMPUTEFARM_RUNS_KEEP": "0"})
    assert bad.returncode != 0 and bad.stderr.strip().splitlines() == [
        "ERROR: $COMPUTEFARM_RUNS_KEEP='0': the number of runs to keep, at least 1"]


def test_runs_that_follow_each_other_on_a_slot_are_drawn_in_one_lane_without_overlap():
    """Tasks sent ahead start as the one before ends: with clocks read a moment
    apart and times rounded to microseconds, a slot still shows one lane whose
    runs never overlap."""
    from computefarm.client.tasks import TaskResult
    from computefarm.client.timeline import Timeline

    rng = random.Random(7)
    now = [1_700_000_000.123456789]
    timeline = Timeline(clock=lambda: now[0])
    worker_start = 1_699_999_000.0 + rng.random()     # its clock: skewed from ours
    for i in range(400):
        duration = rng.uniform(0.002, 0.05)
        read_late = rng.uniform(0, 0.0005)          # the start read a moment late
        body = {"id": "c:%d" % i, "status": "ok", "attempt": 1, "host": "h",
                "worker": "w", "machine": "m", "duration": duration,
                "started": worker_start + read_late}
        submitted = now[0]
        now[0] += duration + rng.uniform(0.0001, 0.003)     # its result arrives
        timeline.add("t%d" % i, submitted - 1.0, TaskResult(body))
        worker_start += duration                      # the next starts as it ends
    events = [e for e in timeline.events() if e["ph"] == "X"]
    assert len(events) == 400 and {e["tid"] for e in events} == {events[0]["tid"]}
    events.sort(key=lambda e: e["ts"])
    for first, second in zip(events, events[1:]):
        assert first["ts"] + first["dur"] <= second["ts"], (first, second)
