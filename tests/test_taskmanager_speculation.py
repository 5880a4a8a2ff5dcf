"""Stragglers of clients' tasks (Client.submit(speculate=True), majordomo's meta
speculate): a copy on another machine's idle slot, the first result wins and
reaches the client once. Real TaskManager, workers on two machine ids (one 20x
slower: its tasks sleep longer), a real majordomo."""

import re
import time

from support import run_tool
from test_batches import start_worker_with

FAST, SLOW = "0.3", "6"


def two_machines(farm):
    start_worker_with(farm, {"TASK_SECONDS": FAST}, "shell", slots=2, machine="fast")
    start_worker_with(farm, {"TASK_SECONDS": SLOW}, "shell", slots=2, machine="slow")


def test_a_clients_straggler_is_copied_and_its_first_result_wins(farm):
    two_machines(farm)
    client = farm.client()
    began = time.monotonic()
    futures = [client.submit("shell", {"cmd": "sleep $TASK_SECONDS; echo %d" % i},
                             label="sweep:%d" % i, speculate=True) for i in range(12)]
    results = [f.result(60) for f in futures]
    took = time.monotonic() - began
    assert [r.stdout for r in results] == [[str(i)] for i in range(12)]
    assert all(r.ok for r in results)
    won = [r for r in results if r.copies == 2 and r.winner == 2]
    assert won and all(r.machine == "fast" for r in won)
    assert took < 5.0, took                  # the slow copies would end at 6 s or later
    assert client.stats["duplicate_results"] == 0 and client.stats["results"] == 12
    copies = client.status()["speculation"]
    assert copies["copies"] >= len(won) and copies["won"] == len(won)


def test_tasks_that_do_not_say_so_are_never_copied(farm):
    two_machines(farm)
    client = farm.client()
    futures = [client.submit("shell", {"cmd": "sleep $TASK_SECONDS"}, label="plain:%d" % i)
               for i in range(8)]
    results = [f.result(60) for f in futures]
    assert all(r.ok and r.copies == 1 for r in results)
    assert client.status()["speculation"] == {"copies": 0, "won": 0}


DODO = '''
def task_sim():
    for i in range(12):
        yield {"name": str(i), "actions": ["sleep $TASK_SECONDS; echo %d > out-%d" % (i, i)],
               "targets": ["out-%d" % i], "meta": {"speculate": True}}
'''


def test_majordomo_meta_speculate_copies_stragglers_and_the_report_counts_them(farm,
                                                                             tmp_path):
    two_machines(farm)
    project = tmp_path / "project"
    project.mkdir()
    (project / "dodo.py").write_text(DODO)
    report = tmp_path / "run.html"
    done = run_tool("majordomo", project, "run", "--taskmanager", farm.address,
                    "--report", str(report), timeout=120)
    assert done.returncode == 0, done.stderr
    for i in range(12):
        assert (project / ("out-%d" % i)).read_text() == "%d\n" % i
    page = report.read_text()
    copied = re.search(r"(\d+) started on another machine, (\d+) finished first", page)
    assert copied and int(copied.group(1)) >= 1 and int(copied.group(2)) >= 1, page[:2000]


def test_cancelling_a_copied_task_stops_both_copies(farm):
    two_machines(farm)
    client = farm.client()
    quick = [client.submit("shell", {"cmd": "sleep 0.2"}, label="mix:%d" % i, speculate=True)
             for i in range(4)]
    assert all(f.result(30).ok for f in quick)
    long = client.submit("shell", {"cmd": "sleep 60"}, label="mix:long", speculate=True)
    deadline = time.monotonic() + 20
    while client.status()["speculation"]["copies"] == 0:
        assert time.monotonic() < deadline, "no copy started"
        time.sleep(0.1)
    assert len(client.status()["running"]) == 2           # the task and its copy
    client.cancel(long)
    assert long.result(20).status == "cancelled"
    deadline = time.monotonic() + 20
    while client.status()["running"]:
        assert time.monotonic() < deadline, "a copy still runs"
        time.sleep(0.1)
    assert client.stats["duplicate_results"] == 0
