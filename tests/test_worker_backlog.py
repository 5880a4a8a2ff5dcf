"""Pipelining: short tasks sent ahead to wait on their worker, with real processes.

A worker whose results come back faster than ``defaults.PIPELINE_WINDOW`` (or
``PIPELINE_SOLE_WINDOW``, when no other worker offers its capability) is sent
tasks beyond its slots; they wait in its backlog (worker/backlog.py) and start as
a slot frees, never more at once than its slots; they can be cancelled there,
and go back to the queue when the worker leaves.
"""

import signal
import time

from support import wait_until

from computefarm import defaults
from computefarm.client import FarmExecutor


def worker_entry(client):
    workers = client.status()["workers"]
    assert len(workers) == 1
    return workers[0]


def primed(client, count=20):
    """Run ``count`` no-op shell tasks, so the worker's pace is short."""
    assert all(f.result(30).ok for f in [client.submit("shell", {"cmd": "true"})
                                         for _ in range(count)])


def test_short_tasks_are_sent_ahead_and_still_run_one_per_slot(farm):
    def spans():                 # nested: pickled by value (the slot cannot import tests)
        started = time.time()
        time.sleep(0.002)
        return started, time.time()
    farm.start_worker("python", slots=1)
    with FarmExecutor(farm.address) as executor:
        results = [f.result(30) for f in [executor.submit(spans) for _ in range(200)]]
        entry = worker_entry(executor.client)
    assert entry["depth"] > 0, entry                 # it was sent more than its one slot
    results.sort()
    for (_, end), (start, _) in zip(results, results[1:]):
        assert start >= end, "two tasks ran at once on a worker of one slot"


def test_a_task_waiting_on_its_worker_is_cancelled_there(farm, tmp_path):
    farm.start_worker("shell", slots=1)
    client = farm.client()
    primed(client)
    go, marker = tmp_path / "go", tmp_path / "ran"
    blocker = client.submit("shell", {"cmd": "while [ ! -e %s ]; do sleep 0.02; done" % go})
    waiting = client.submit("shell", {"cmd": "touch %s" % marker})
    wait_until(lambda: worker_entry(client)["used"] == 2, what="the second task sent ahead")
    client.cancel(waiting)                 # its result comes from the worker, once stopped
    assert waiting.result(30).status == "cancelled"
    go.write_text("")
    assert blocker.result(30).ok
    assert client.submit("shell", {"cmd": "true"}).result(30).ok   # the worker's next turn
    assert not marker.exists(), "a task cancelled while it waited still ran"


def held_back(client, worker, machine, task, site=None, ahead=0):
    """Run ``task`` on ``worker``, then hold its one slot with a blocker and submit
    one more: the entry of ``machine``'s worker once that one waits where
    expected (``ahead`` 1: sent ahead to the worker, 0: queued), and the futures
    to finish. (A status read between a SUBMIT and the scheduling that follows
    it may see the second task queued for a moment: wait, do not sample.)"""
    requires = {"site": site} if site else None
    assert client.submit("shell", {"cmd": task}, requires=requires).result(30).ok
    go = worker / "go"
    blocker = client.submit("shell", {"cmd": "while [ ! -e %s ]; do sleep 0.02; done" % go},
                            requires=requires)
    second = client.submit("shell", {"cmd": "true"}, requires=requires)
    def placed():                  # scheduled: running, sent ahead or queued
        status = client.status()
        entry = next(w for w in status["workers"] if w["machine"] == machine)
        placed = entry["used"] == 1 + ahead and \
            entry["used"] + status["queues"].get("shell", 0) == 2
        return placed and entry
    entry = wait_until(placed, what="the blocker running, the second task placed")
    go.write_text("")
    return entry, [blocker, second]


def test_long_tasks_are_not_sent_ahead(farm, tmp_path):
    """Even to the only worker of its capability, when its tasks take longer
    than PIPELINE_SOLE_WINDOW: a worker or user who comes later would wait."""
    farm.start_worker("shell", slots=1, machine="only")
    client = farm.client()
    entry, futures = held_back(client, tmp_path, "only",
                               "sleep %g" % (defaults.PIPELINE_SOLE_WINDOW + 0.1))
    assert entry["depth"] == 0 and entry["used"] == 1, entry
    assert all(f.result(30).ok for f in futures)


def test_the_only_worker_of_a_capability_holds_one_task_a_slot_ahead(farm, tmp_path):
    """Tasks of 20 ms to PIPELINE_SOLE_WINDOW: the only worker of their
    capability is sent one a slot beyond its slots; no other could start it sooner."""
    farm.start_worker("shell", slots=1, machine="only")
    client = farm.client()
    entry, futures = held_back(client, tmp_path, "only", "sleep 0.1", ahead=1)
    assert entry["depth"] == 1 and entry["used"] == 2, entry      # the second waits there
    assert all(f.result(30).ok for f in futures)


def test_tasks_of_a_tenth_of_a_second_wait_in_the_queue_when_other_workers_exist(
        farm, tmp_path):
    """Another worker offers the capability (it could free up first): no task
    waits on a busy worker."""
    farm.start_worker("shell", slots=1, machine="a", attrs=["site=a"])
    farm.start_worker("shell", slots=1, machine="b", attrs=["site=b"])
    client = farm.client()
    entry, futures = held_back(client, tmp_path, "a", "sleep 0.1", site="a")
    assert entry["depth"] == 0 and entry["used"] == 1, entry
    assert all(f.result(30).ok for f in futures)


def test_tasks_waiting_on_a_worker_that_leaves_run_elsewhere(farm, tmp_path):
    first = farm.start_worker("shell", slots=1, machine="first")
    client = farm.client()
    primed(client)
    go = tmp_path / "go"
    blocker = client.submit("shell", {"cmd": 'if [ "$COMPUTEFARM_ATTEMPT" = 1 ]; then '
                                             'while [ ! -e %s ]; do sleep 0.02; done; fi' % go})
    waiting = [client.submit("shell", {"cmd": "true"}) for _ in range(3)]
    wait_until(lambda: worker_entry(client)["used"] == 4, what="three tasks sent ahead")
    farm.stop(first)                       # SIGTERM: it hands back what it runs and holds
    farm.start_worker("shell", slots=1, machine="second")
    results = [f.result(30) for f in [blocker] + waiting]
    assert all(r.ok and r.machine == "second" for r in results), results


def test_a_restarted_taskmanager_takes_back_a_worker_holding_waiting_tasks(farm, tmp_path):
    """Its hello lists more tasks than its slots (the waiting ones): accepted, and
    every task still runs once."""
    worker = farm.start_worker("shell", slots=1)
    client = farm.client()
    primed(client)
    go, runs = tmp_path / "go", tmp_path / "runs"
    runs.mkdir()
    tasks = [client.submit("shell", {"cmd": "echo x >> %s/0; while [ ! -e %s ]; do "
                                            "sleep 0.02; done" % (runs, go)})]
    tasks += [client.submit("shell", {"cmd": "echo x >> %s/%d" % (runs, i)})
              for i in range(1, 4)]
    wait_until(lambda: worker_entry(client)["used"] == 4, what="three tasks sent ahead")
    port = farm.address
    farm.stop(farm.taskmanager, signal.SIGKILL)
    farm.start_taskmanager(bind=port)
    farm.wait_registered(worker, after=1)
    assert worker_entry(client)["used"] == 4       # its hello's four, none lost
    go.write_text("")
    assert all(f.result(30).ok for f in tasks)
    assert [len((runs / str(i)).read_text().split()) for i in range(4)] == [1, 1, 1, 1]
