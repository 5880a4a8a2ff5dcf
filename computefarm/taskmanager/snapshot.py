"""What farm-status sees: a STATE body made from the TaskManager's ``State``.

A ``viewer`` (a client Peer) that is not admin sees its own key's tasks and
failures, and only counts of everyone else's (users other than its own summed
as "other users": their slots and queued tasks, not their usage or weights). Its cost grows with peers and running tasks, never with the
queue: queued counts come from the queues and the fair-share ledger.
"""


def farm_status(tm, client, now):
    """The whole STATE body for ``client``: the snapshot of ``tm``'s State, and
    what its other parts count (logs, refusals, messages, store, action cache,
    batches, demand, enrolment, factories' reports, the loop's worst turn)."""
    status = snapshot(tm.state, now, client)
    for rid in [rid for rid in tm.reports if rid not in tm.state.peers]:
        del tm.reports[rid]                     # a factory gone: its report too
    status["factories"] = [dict(report, client=peer.name, user=peer.user, age=now - when)
                           for peer, report, when in tm.reports.values()]
    status["logs"] = {"forwarders": len(tm.logs.forwarders), "dropped_lines": tm.logs.dropped}
    status["refused_messages"] = tm.refusals.count
    status["internal_errors"] = tm.internal_errors
    status["messages"] = {"received": tm.received, "sent": tm.outbox.count}
    status["store"] = tm.blobs.describe()
    status["action_cache"] = tm.actions.describe()
    status["batches"] = [b for b in tm.batches.describe()
                         if client.admin or b["user"] == client.user]
    status["demand"] = demand(tm.state, tm.batches.unloaded())
    if tm.enrolment is not None and client.admin:
        status["enrolment"] = tm.enrolment.status()
    status["speculation"] = {"copies": tm.speculator.started, "won": tm.speculator.won}
    status["loop"] = {"iterations": tm.iterations,
                      "longest_ms": round(tm.longest_turn * 1000, 3),
                      "longest_cpu_ms": round(tm.longest_cpu * 1000, 3),
                      "longest_phases_ms": {phase: round(seconds * 1000, 3) for phase, seconds
                                            in tm.longest_phases.items()}}
    return status


def snapshot(state, now, viewer=None):
    """Machines, workers, queues (per capability), users (fair share), running tasks
    and recent failures, as ``viewer`` may see them (None: everything)."""
    def visible(task_id):
        return viewer is None or viewer.admin or task_id.startswith(viewer.scope)
    queues = {}
    for key, lanes in state.queues.items():
        queues[key[0]] = queues.get(key[0], 0) + sum(lane.live for lane in lanes.values())
    workers = state.workers.values()
    running = [(w, t) for w in workers for t in w.running.values()]
    shown = [(w, t) for w, t in running if visible(t.id)]
    failures = [f for f in state.failures if visible(f["task"])]
    users = state.ledger.describe(now)   # user -> running, queued, usage, weight, share
    if viewer is not None and not viewer.admin:   # the others as one
        mine = viewer.user
        others = [c for user, c in users.items() if user != mine]
        users = {user: c for user, c in users.items() if user == mine}
        if others:
            users["other users"] = {key: sum(c[key] for c in others)
                                    for key in ("running", "queued", "share")}
    return {
        "machines": [m.describe(now) for m in sorted(state.machines.values(),
                                                     key=lambda m: m.id)],
        "workers": [{"name": w.name, "host": w.host, "machine": w.machine,
                     "capabilities": sorted(w.capabilities), "slots": w.slots,
                     "used": len(w.running), "depth": w.depth,
                     "serves": list(w.serves), "draining": w.draining} for w in workers],
        "queues": queues,
        "users": users,
        "held": len(state.held),
        "running": [{"id": t.own_id or t.id, "label": t.label,
                     "user": t.client.user if t.client is not None else None,
                     "capability": t.capability, "host": w.host,
                     "machine": w.machine, "attempt": t.attempt,
                     "age": now - (t.started or now),
                     "suspended": t.id in w.machine_record.suspended}
                    for w, t in shown],
        "others_running": len(running) - len(shown),
        "failures": [{k: v for k, v in f.items() if k not in ("time", "task")} |
                     {"age": now - f["time"]} for f in failures],
        "others_failures": len(state.failures) - len(failures),
        "clients": len(state.clients),
        "placement": state.scheduler.placement,
        "expired": dict(state.expired),
    }


def demand(state, unloaded=()):
    """What a factory of pilots (farm-factory) reads: per capability and set of
    constraints with tasks waiting, how many wait (queued here, and batch tasks
    still on disk: ``unloaded``, ``(capability, requires, count)``), and the slots
    of the workers that could serve them, in all and free now."""
    waiting = {}
    for key, lanes in state.queues.items():
        queued = sum(lane.live for lane in lanes.values())
        if queued:
            waiting[key] = waiting.get(key, 0) + queued
    for capability, requires, count in unloaded:
        key = (capability, tuple(sorted((requires or {}).items())))
        waiting[key] = waiting.get(key, 0) + count
    rows = []
    for key, queued in sorted(waiting.items()):
        workers = {w for p in state.scheduler.matching(key) for w in p.workers if not w.gone}
        rows.append({"capability": key[0], "requires": dict(key[1]), "queued": queued,
                     "slots": sum(w.slots for w in workers),
                     "free": sum(max(0, w.free) for w in workers)})
    return rows
