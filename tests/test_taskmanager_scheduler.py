"""Placement through the index: the least-loaded eligible matching worker, found
without a scan; ineligible machines leave the heaps until their next report."""

from computefarm.taskmanager.state import Effects, State
from computefarm.taskmanager.tasks import queue_key

LIMIT = 10 ** 6


def worker(state, name, slots=2, attrs=None, machine=None):
    return state.hello(name.encode(), {
        "role": "worker", "id": name, "host": "h-" + name, "machine": machine or "m-" + name,
        "slots": slots, "capabilities": {"shell": dict(attrs or {"rack": "r1"})}},
        None, 0.0, Effects())[0]


def report(cpu, owner=0.0, memory=1 << 30):
    return {"machine": "", "host": "h", "interval": 1.0, "cores": 4, "cpu_percent": cpu,
            "memory_available": memory, "owner_cpu": owner, "load_avg": [0.0]}


def submit(state, client, ids, requires=None):
    fx = Effects()
    state.submit(client, [{"id": i, "capability": "shell", "body": b"x",
                           "requires": requires or {}} for i in ids], 0.0, fx, limit=LIMIT)
    return fx


def placed(state, now=0.0):
    fx = Effects()
    state.schedule(now, fx)
    return [(t.id, w.name) for w, t in fx.dispatch]


def test_least_loaded_machine_first_then_spread_as_load_is_placed():
    state = State()
    client = state.hello(b"c", {"role": "client", "id": "c", "host": "h", "machine": "mc"},
                         None, 0.0, Effects())[0]
    busy, idle = worker(state, "busy", slots=4), worker(state, "idle", slots=4)
    monitor = state.hello(b"m1", {"role": "monitor", "id": "m1", "host": "h",
                                  "machine": "m-busy"}, None, 0.0, Effects())[0]
    state.report(monitor, report(cpu=75.0), 0.0, Effects())
    monitor2 = state.hello(b"m2", {"role": "monitor", "id": "m2", "host": "h",
                                   "machine": "m-idle"}, None, 0.0, Effects())[0]
    state.report(monitor2, report(cpu=0.0), 0.0, Effects())
    submit(state, client, ["a", "b", "c", "d", "e"])
    where = dict(placed(state))
    # idle: 0, .25, .5, .75 (+0), busy: .75 + 0 -> after three on idle, ties go by
    # running/slots: busy (0/4) before idle (3/4)
    assert [where[t] for t in "abcde"] == ["idle", "idle", "idle", "busy", "idle"]
    assert busy.free == 3 and idle.free == 0


def test_constraints_pick_only_matching_profiles():
    state = State()
    client = state.hello(b"c", {"role": "client", "id": "c", "host": "h", "machine": "mc"},
                         None, 0.0, Effects())[0]
    worker(state, "r1", attrs={"rack": "r1"})
    worker(state, "r2", attrs={"rack": "r2", "version": "3.1"})
    fx = submit(state, client, ["x", "y"], requires={"version": ">=3"})
    assert not fx.notices
    assert placed(state) == [("x", "r2"), ("y", "r2")]
    fx = submit(state, client, ["z"], requires={"rack": "r9"})
    assert [n[2] for n in fx.notices] == ["no-match"]
    assert state.scheduler.matching(queue_key("shell", {"rack": "r9"})) == []


def test_owner_active_machine_is_skipped_until_its_next_report():
    state = State()
    client = state.hello(b"c", {"role": "client", "id": "c", "host": "h", "machine": "mc"},
                         None, 0.0, Effects())[0]
    worker(state, "w")
    monitor = state.hello(b"m", {"role": "monitor", "id": "m", "host": "h", "machine": "m-w"},
                          None, 0.0, Effects())[0]
    state.report(monitor, report(cpu=90.0, owner=90.0), 0.0, Effects())
    submit(state, client, ["a"])
    assert placed(state) == []                   # the owner is back: no new work
    assert state.workers[b"w"].profiles[0].heap == []   # left the heaps, no rescans
    state.report(monitor, report(cpu=5.0), 1.0, Effects())
    assert placed(state, 1.0) == [("a", "w")]


def test_a_departed_worker_leaves_no_entry_and_its_profile_goes():
    state = State()
    gone = worker(state, "gone", attrs={"rack": "solo"})
    worker(state, "stays")
    state.remove_peer(gone, "left", Effects())
    assert set(p.attributes["rack"] for p in state.scheduler.by_capability["shell"]) == {"r1"}
    assert state.scheduler.free == {"shell": 2}
