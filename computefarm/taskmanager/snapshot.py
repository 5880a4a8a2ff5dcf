"""What farm-status sees: a STATE body made from the TaskManager's ``State``.

A ``viewer`` (a client Peer) that is not admin sees its own key's tasks and
failures, and only counts of everyone else's (users other than its own summed
as "other users": their slots and queued tasks, not their usage or weights). Its cost grows with peers and running tasks, never with the
queue: queued counts come from the queues and the fair-share ledger.
"""


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
                     "serves": list(w.serves)} for w in workers],
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
