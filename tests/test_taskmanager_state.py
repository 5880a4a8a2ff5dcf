"""The TaskManager's state on its own, driven with the time passed in."""

from computefarm.taskmanager.state import Effects, State
from computefarm.taskmanager.tasks import CANCELLING, HELD, QUEUED, RUNNING

LIMIT = 10 ** 6


def hello(name, caps=None, slots=1, running=None, role="worker"):
    return {"role": role, "id": name, "host": "h-" + name, "machine": "m-" + name,
            "slots": slots, "capabilities": caps or {"shell": {"platform": "linux-x86_64"}},
            "running": running or []}


def add_client(state, rid, now):
    return state.hello(rid, hello(rid.decode(), role="client"), None, now, Effects())[0]


def add_worker(state, rid, body, now, fx):
    return state.hello(rid, body, None, now, fx)[0]


def submit(state, client, spec, now, fx):
    state.submit(client, [spec], now, fx, limit=LIMIT)
    return state.tasks.get(spec["id"])


def spec(task_id, **extra):
    body = {"id": task_id, "capability": "shell", "body": b"x"}
    body.update(extra)
    return body


def test_expired_worker_requeues_then_loses_after_max_attempts():
    state = State(max_attempts=2)
    client = add_client(state, b"c", 0.0)
    fx = Effects()
    submit(state, client, spec("t"), 0.0, fx)
    for attempt, now in ((1, 1.0), (2, 10.0)):
        add_worker(state, b"w%d" % attempt, hello("w%d" % attempt), now, fx)
        fx = Effects()
        state.schedule(now, fx)
        assert [(w.name, t.attempt) for w, t in fx.dispatch] == [("w%d" % attempt, attempt)]
        fx = Effects()
        state.seen(client, now + 4.0)          # the client keeps answering
        state.expire(now + 5.0, 3.0, fx)
    assert fx.results and fx.results[0][1]["status"] == "lost"
    assert "worker w2 on host h-w2" in fx.results[0][1]["error"]
    assert "attempt 2 of 2" in fx.results[0][1]["error"]
    assert state.tasks == {}


def test_priority_wins_across_constraint_groups():
    state = State()
    client = add_client(state, b"c", 0.0)
    fx = Effects()
    submit(state, client, spec("low", priority=1), 0.0, fx)
    submit(state, client, spec("high", priority=9, requires={"platform": "linux-x86_64"}), 0.0, fx)
    add_worker(state, b"w", hello("w"), 0.0, fx)
    state.schedule(0.0, fx)
    assert [t.id for _, t in fx.dispatch] == ["high"]


def test_resumed_tasks_wait_for_their_worker_during_recovery():
    state = State(recovery_until=5.0)
    client = add_client(state, b"c", 0.0)
    fx = Effects()
    task = submit(state, client, spec("t", resume=True), 1.0, fx)
    assert task.state == HELD
    add_worker(state, b"w2", hello("w2"), 1.0, fx)
    state.schedule(1.0, fx)
    assert not fx.dispatch
    add_worker(state, b"w1", hello("w1", running=[{"id": "t", "attempt": 1,
                                                   "capability": "shell"}]), 2.0, fx)
    assert task.state == RUNNING and task.worker.name == "w1"
    state.schedule(6.0, fx)
    assert not fx.dispatch


def test_adopted_task_result_waits_for_its_client():
    state = State(recovery_until=5.0)
    fx = Effects()
    worker = add_worker(state, b"w", hello("w", running=[{"id": "t", "attempt": 2}]), 0.0, fx)
    state.finish(worker, {"id": "t", "attempt": 2, "status": "ok"}, 0.5, fx)
    assert not fx.results and "t" in state.orphans
    client = add_client(state, b"c", 1.0)
    submit(state, client, spec("t", resume=True), 1.0, fx)
    assert fx.results[0][1]["status"] == "ok" and fx.results[0][1]["host"] == "h-w"


def test_client_gone_cancels_running_and_a_return_revives_it():
    state = State()
    client = add_client(state, b"c", 0.0)
    fx = Effects()
    add_worker(state, b"w", hello("w"), 0.0, fx)
    submit(state, client, spec("run"), 0.0, fx)
    submit(state, client, spec("wait"), 0.0, fx)
    state.schedule(0.0, fx)
    state.seen(state.workers[b"w"], 9.0)
    fx = Effects()
    state.expire(10.0, 3.0, fx)
    assert [task_id for _, task_id in fx.cancel] == ["run"]
    assert "wait" not in state.tasks and state.tasks["run"].state == CANCELLING
    worker = state.workers[b"w"]
    state.seen(worker, 10.0)
    client = add_client(state, b"c", 10.5)
    submit(state, client, spec("run", resume=True), 10.5, fx)
    fx = Effects()
    state.finish(worker, {"id": "run", "attempt": 1, "status": "cancelled"}, 11.0, fx)
    assert not fx.results                       # the cancelled copy is not reported
    assert state.tasks["run"].state == QUEUED    # the resubmission runs anew


def test_estimated_load_spreads_a_burst_by_expected_finish():
    state = State()
    client = add_client(state, b"c", 0.0)
    fx = Effects()
    for name in ("a", "b"):
        add_worker(state, name.encode(), hello(name, slots=4), 0.0, fx)
        state.machine("m-" + name).update({"cores": 4, "cpu_percent": 0.0,
                                           "memory_available": 1 << 30, "owner_cpu": 0.0,
                                           "load_avg": [0.0]}, 0.0)
    submit(state, client, spec("big", load=4.0), 0.0, fx)
    submit(state, client, spec("s1"), 0.0, fx)
    submit(state, client, spec("s2"), 0.0, fx)
    state.schedule(0.0, fx)
    placed = {t.id: w.machine for w, t in fx.dispatch}
    assert placed["s1"] == placed["s2"] != placed["big"]


def test_owner_policy_suspends_then_resumes():
    from computefarm.config import Policy
    state = State(default_policy=Policy(owner_cpu_limit=20, on_owner="suspend"))
    client = add_client(state, b"c", 0.0)
    fx = Effects()
    add_worker(state, b"w", hello("w"), 0.0, fx)
    monitor = state.hello(b"m", {"role": "monitor", "id": "mon", "host": "h", "machine": "m-w"},
                          None, 0.0, fx)[0]
    submit(state, client, spec("t"), 0.0, fx)
    state.schedule(0.0, fx)
    report = {"cores": 2, "cpu_percent": 60.0, "memory_available": 1 << 30, "owner_cpu": 50.0,
              "load_avg": [1.0], "interval": 1.0}
    state.report(monitor, report, 1.0, fx)
    assert [tid for _, tid in fx.suspend] == ["t"]
    assert state.machine("m-w").state(1.0) == "owner-active"
    fx = Effects()
    state.report(monitor, dict(report, owner_cpu=1.0), 2.0, fx)
    assert [tid for _, tid in fx.resume] == ["t"] and state.machine("m-w").state(2.0) == "idle"
    assert state.machine("m-w").state(6.0) == "stale"
