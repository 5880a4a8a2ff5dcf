"""The TaskManager's state: one record per task, worker and client, and the queues.

Nothing here touches a socket. Methods take ``now`` and return what must be sent
(as ``Effects``) so the TaskManager loop stays a screen long and this module can
be reasoned about on its own. Queued tasks wait in ``Group``s, one per distinct
(capability, constraints) pair, so matching a worker costs one check per group,
not one per task, however many thousands are queued.
"""

import itertools
import logging
from collections import OrderedDict, deque

from .. import defaults
from ..config import Policy
from . import constraints
from .machines import Machine
from .records import (
    CANCELLING,
    HELD,
    QUEUED,
    RUNNING,
    Client,
    Group,
    Monitor,
    Task,
    Worker,
)

RECENT_FAILURES = 20

log = logging.getLogger(__name__)

class Effects:
    """What the TaskManager must send after a state change."""

    __slots__ = ("dispatch", "cancel", "results", "notices", "suspend", "resume")

    def __init__(self):
        self.dispatch = []   # (Worker, Task)
        self.cancel = []     # (Worker, task id)
        self.results = []    # (Client, result dict)
        self.notices = []    # (Client, level, text, ids)
        self.suspend = []    # (Worker, task id)
        self.resume = []     # (Worker, task id)



class State:
    def __init__(self, max_attempts=defaults.MAX_ATTEMPTS, recovery_until=0.0, policies=None,
                 default_policy=None, placement="load"):
        self.tasks = {}
        self.workers = {}
        self.clients = {}
        self.monitors = {}
        self.loggers = {}              # routing id -> [last seen, credit]: log forwarders
        self.machines = {}             # machine id -> Machine
        self.policies = dict(policies or {})
        self.default_policy = default_policy or Policy()
        self.placement = placement
        self._turn = 0                 # round-robin position
        self.failures = deque(maxlen=RECENT_FAILURES)
        self.groups = {}
        self.by_capability = {}
        self.held = []                 # resumed tasks waiting out the recovery grace
        self.orphans = OrderedDict()   # task id -> (result, time): finished, nobody asked yet
        self.max_attempts = max_attempts
        self.recovery_until = recovery_until
        self.dirty = False
        self._seq = itertools.count()

    # -- clients ---------------------------------------------------------------
    def add_client(self, rid, hello, now):
        client = self.clients.get(rid)
        if client is None:
            client = self.clients[rid] = Client(rid, hello, now)
        client.last_seen = now
        return client

    def remove_client(self, client, effects):
        """Forget a client: drop its queued tasks, cancel its running ones."""
        self.clients.pop(client.rid, None)
        for task_id in list(client.tasks):
            task = self.tasks.get(task_id)
            if task is not None:
                self._cancel(task, effects, tell_client=False)
        client.tasks.clear()

    def submit(self, client, spec, now, effects):
        """Queue one task from a SUBMIT; a repeated id from its owner is a no-op."""
        task_id = spec["id"]
        task = self.tasks.get(task_id)
        if task is not None:
            if task.client is None and task.state == CANCELLING:
                task.revive = (client, spec)  # its old owner expired: run it anew after
                return None
            if task.client is None:          # adopted from a worker after a restart
                self._claim(task, client, spec)
                return task
            if task.client is not client:
                effects.notices.append((client, "error", "task id %r is already in use by "
                                        "another client" % task_id, [task_id]))
            return None
        orphan = self.orphans.pop(task_id, None)
        if orphan is not None:
            effects.results.append((client, orphan[0]))
            return None
        task = Task(task_id, client, spec["capability"], spec.get("requires") or {},
                    spec.get("priority", 0), spec.get("timeout"),
                    spec.get("max_attempts") or self.max_attempts, spec["body"],
                    next(self._seq), now)
        task.stream = bool(spec.get("stream"))
        task.track = bool(spec.get("track"))
        task.load = float(spec.get("load", 1.0))
        task.label = spec.get("label")
        self.tasks[task_id] = task
        client.tasks.add(task_id)
        if spec.get("resume") and now < self.recovery_until:
            task.state = HELD
            self.held.append(task)
        else:
            self._enqueue(task)
        return task

    def _claim(self, task, client, spec):
        task.client = client
        task.body = spec["body"]
        task.requires = spec.get("requires") or {}
        task.priority = spec.get("priority", 0)
        task.timeout = spec.get("timeout")
        task.max_attempts = spec.get("max_attempts") or self.max_attempts
        task.stream = bool(spec.get("stream"))
        task.track = bool(spec.get("track"))
        client.tasks.add(task.id)

    def output_for(self, item):
        """The client to forward a live OUTPUT item to, if its task still wants it."""
        task = self.tasks.get(item["id"])
        if task is not None and task.stream and task.client is not None \
                and task.attempt == item["attempt"]:
            return task.client
        return None

    def unmatched(self, capability, requires):
        """Why no worker could take such a task now, or None if one could."""
        workers = self.by_capability.get(capability)
        if not workers:
            return "no worker offers capability %r yet" % capability
        if requires and not any(constraints.matches(w.capabilities[capability], requires)
                                for w in workers):
            return "no worker with capability %r matches %s yet" % (
                capability, constraints.describe(requires))
        return None

    def cancel(self, client, task_ids, effects):
        for task_id in task_ids:
            task = self.tasks.get(task_id)
            if task is None:
                continue
            if task.client is not client:
                effects.notices.append((client, "error", "task %r is not yours to cancel"
                                        % task_id, [task_id]))
                continue
            self._cancel(task, effects, tell_client=True)

    def _cancel(self, task, effects, tell_client):
        if task.state in (QUEUED, HELD):
            if task.group is not None:
                task.group.discard(task)
            if task.state == HELD:
                self.held.remove(task)
            self._forget(task)
            if tell_client:
                effects.results.append((task.client, _result(task, "cancelled",
                                                             "cancelled before it ran")))
        elif task.state == RUNNING:
            task.state = CANCELLING
            task.requeue = False               # a cancel wins over an owner's requeue
            effects.cancel.append((task.worker, task.id))
            if not tell_client:
                task.client = None

    # -- workers ---------------------------------------------------------------
    def add_worker(self, rid, hello, now, effects):
        """Register (or re-register) a worker and reconcile what it says it runs."""
        old = self.workers.get(rid)
        if old is not None:
            self.remove_worker(old, "re-registered", effects, requeue_only=True)
        worker = self.workers[rid] = Worker(rid, hello, now)
        for cap in worker.capabilities:
            self.by_capability.setdefault(cap, set()).add(worker)
        for entry in hello.get("running") or []:
            self._reconcile(worker, entry, now, effects)
        self.dirty = True
        return worker

    def _reconcile(self, worker, entry, now, effects):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            return
        task_id, attempt = entry["id"], entry.get("attempt", 1)
        task = self.tasks.get(task_id)
        if task is None:                      # a restart: keep it until its client returns
            task = Task(task_id, None, str(entry.get("capability", "")), {}, 0, None,
                        self.max_attempts, b"", next(self._seq), now)
            self.tasks[task_id] = task
        elif task.state in (QUEUED, HELD):
            if task.group is not None:
                task.group.discard(task)
            if task.state == HELD:
                self.held.remove(task)
        else:                                 # already running elsewhere: stop this copy
            effects.cancel.append((worker, task_id))
            return
        task.state, task.worker, task.started = RUNNING, worker, now
        task.attempt = attempt if isinstance(attempt, int) else 1
        worker.running[task_id] = task

    def remove_worker(self, worker, reason, effects, requeue_only=False):
        """Drop a worker; each of its tasks is requeued, or fails once out of attempts."""
        self.workers.pop(worker.rid, None)
        for cap in worker.capabilities:
            peers = self.by_capability.get(cap)
            if peers is not None:
                peers.discard(worker)
                if not peers:
                    del self.by_capability[cap]
        for task in list(worker.running.values()):
            task.worker = None
            where = "%s (%s)" % (worker.describe(), reason)
            task.lost_on.append(where)
            if task.client is None or task.state == CANCELLING:
                self._forget(task)
                self._revive(task, worker.last_seen, effects)
            elif task.attempt >= task.max_attempts and not requeue_only:
                text = "task %s lost: %s, attempt %d of %d" % (
                    task.id, where, task.attempt, task.max_attempts)
                effects.results.append((task.client, _result(task, "lost", text)))
                self._forget(task)
            else:
                self._enqueue(task)
        worker.running.clear()

    def finish(self, worker, result, now, effects):
        """A worker's RESULT for one task; True when the worker may forget it."""
        task = worker.running.get(result["id"])
        if task is None or task.attempt != result["attempt"]:
            task = self.tasks.get(result["id"])
            if task is None:
                self._keep_orphan(result, worker, now)
            return True                        # stale: another attempt owns the task
        del worker.running[task.id]
        self.dirty = True
        self.machine(worker.machine).suspended.discard(task.id)
        result["host"], result["worker"], result["machine"] = worker.host, worker.name, worker.machine
        if task.requeue and result["status"] == "cancelled" and task.client is not None:
            task.requeue = False
            task.max_attempts += 1         # the owner's return is not the task's failure
            task.lost_on.append("%s (requeued for its owner)" % worker.describe())
            self._enqueue(task)
            return True
        if result["status"] not in ("ok", "cancelled"):
            self.failures.append({"id": task.id, "status": result["status"],
                                  "error": result.get("error"), "host": worker.host,
                                  "worker": worker.name, "time": now})
        if task.client is None:
            if task.state != CANCELLING:
                self._keep_orphan(result, worker, now)
        else:
            effects.results.append((task.client, result))
        self._forget(task)
        self._revive(task, now, effects)
        return True

    def _revive(self, task, now, effects):
        if task.revive is not None and task.revive[0].rid in self.clients:
            self.submit(task.revive[0], task.revive[1], now, effects)

    def _keep_orphan(self, result, worker, now):
        result.setdefault("host", worker.host)
        result.setdefault("worker", worker.name)
        self.orphans[result["id"]] = (result, now)
        while len(self.orphans) > defaults.ORPHAN_RESULTS_MAX:
            self.orphans.popitem(last=False)

    # -- scheduling ------------------------------------------------------------
    def schedule(self, now, effects):
        """Assign queued tasks to free, matching workers, highest priority first."""
        self.dirty = False
        if self.held and now >= self.recovery_until:
            for task in self.held:
                self._enqueue(task)
            self.held = []
        groups = [g for g in self.groups.values() if g.live]
        if len(groups) > 1:
            groups.sort(key=lambda g: g.head_key() or (0, 0))
        for group in groups:
            if self.placement == "round-robin":
                self._schedule_in_turn(group, now, effects)
                continue
            candidates = [w for w in self.by_capability.get(group.capability, ())
                          if w.free > 0 and w.accepts(group) and self._machine_of(w).eligible(now)]
            while candidates and group.live:
                task = group.pop()
                if task is None:
                    break
                worker = min(candidates, key=self._rank)
                self._assign(task, worker, now, effects)
                if worker.free <= 0:
                    candidates.remove(worker)
            if not group.live and not group.heap:
                del self.groups[group.key]

    def _rank(self, worker):
        return self._machine_of(worker).rank() + _load(worker)

    def _machine_of(self, worker):
        machine = worker.machine_record
        if machine is None:
            machine = worker.machine_record = self.machine(worker.machine)
        return machine

    def _schedule_in_turn(self, group, now, effects):
        """Placement switched off: each matching worker in turn, whatever its load,
        waiting for the next one in line to have a free slot (the baseline)."""
        workers = sorted((w for w in self.by_capability.get(group.capability, ())
                          if w.accepts(group)), key=lambda w: w.name)
        while workers and group.live:
            worker = workers[self._turn % len(workers)]
            if worker.free <= 0:
                return
            task = group.pop()
            if task is None:
                return
            self._turn += 1
            self._assign(task, worker, now, effects)

    def _assign(self, task, worker, now, effects):
        task.state, task.worker, task.started = RUNNING, worker, now
        task.attempt += 1
        worker.running[task.id] = task
        worker.assigned += 1
        self._machine_of(worker).assigned_load += task.load
        effects.dispatch.append((worker, task))

    # -- machines --------------------------------------------------------------
    def machine(self, machine_id):
        machine = self.machines.get(machine_id)
        if machine is None:
            policy = self.policies.get(machine_id, self.default_policy)
            machine = self.machines[machine_id] = Machine(machine_id, policy)
        return machine

    def add_monitor(self, rid, hello, now):
        monitor = self.monitors[rid] = Monitor(rid, hello, now)
        self.machine(monitor.machine).monitor = rid
        return monitor

    def report(self, monitor, report, now, effects):
        """A monitor's load report: update the machine, apply its owner policy."""
        machine = self.machine(monitor.machine)
        machine.update(report, now)
        self.dirty = True
        running = [(w, t) for w in self.workers.values() if w.machine == machine.id
                   for t in w.running.values() if t.state == RUNNING]
        policy = machine.policy
        if not machine.owner_active():
            machine.owner_since = None
            for worker, task in running:
                if task.id in machine.suspended:
                    effects.resume.append((worker, task.id))
            machine.suspended.clear()
            return
        if machine.owner_since is None:
            machine.owner_since = now
            log.info("TaskManager: the owner of machine %s is back (%.0f%% CPU)", machine.id,
                     report.get("owner_cpu", 0.0))
        if policy.on_owner == "suspend":
            for worker, task in running:
                if task.id not in machine.suspended:
                    machine.suspended.add(task.id)
                    effects.suspend.append((worker, task.id))
        elif policy.on_owner == "requeue" and now - machine.owner_since >= policy.requeue_grace:
            for worker, task in running:
                if not task.requeue:
                    task.requeue = True
                    effects.cancel.append((worker, task.id))

    def requeue(self, task):
        """Put back a task whose dispatch could not be sent."""
        if task.worker is not None:
            task.worker.running.pop(task.id, None)
        task.attempt -= 1
        self._enqueue(task)

    def expire(self, now, peer_timeout, effects):
        """Drop workers and clients silent for longer than ``peer_timeout``."""
        for worker in [w for w in self.workers.values() if now - w.last_seen > peer_timeout]:
            log.warning("TaskManager: %s stopped answering, requeueing %d task(s)",
                        worker.describe(), len(worker.running))
            self.remove_worker(worker, "stopped answering", effects)
        for monitor in [m for m in self.monitors.values() if now - m.last_seen > peer_timeout]:
            log.warning("TaskManager: the monitor of machine %s stopped answering",
                        monitor.machine)
            del self.monitors[monitor.rid]
        for rid in [r for r, entry in self.loggers.items() if now - entry[0] > peer_timeout]:
            log.warning("TaskManager: the log forwarder stopped answering")
            del self.loggers[rid]
        for client in [c for c in self.clients.values() if now - c.last_seen > peer_timeout]:
            log.warning("TaskManager: client %s on %s stopped answering, dropping %d task(s)",
                        client.name, client.host, len(client.tasks))
            self.remove_client(client, effects)
        self._expire_unclaimed(now, effects)
        for machine in self.machines.values():   # a silent monitor cannot resume its tasks
            if machine.suspended and machine.state(now) == "stale":
                for worker in self.workers.values():
                    if worker.machine == machine.id:
                        effects.resume.extend((worker, t) for t in worker.running
                                              if t in machine.suspended)
                machine.suspended.clear()
        while self.orphans:
            task_id, (_, since) = next(iter(self.orphans.items()))
            if now - since < defaults.ORPHAN_RESULT_TTL:
                break
            del self.orphans[task_id]

    def _expire_unclaimed(self, now, effects):
        if now < self.recovery_until + defaults.ORPHAN_RESULT_TTL:
            return
        for task in [t for t in self.tasks.values() if t.client is None and t.state == RUNNING]:
            task.state = CANCELLING
            effects.cancel.append((task.worker, task.id))

    def _enqueue(self, task):
        key = (task.capability, tuple(sorted(task.requires.items())))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, task.capability, task.requires)
        task.state, task.worker = QUEUED, None
        group.push(task)
        self.dirty = True

    def _forget(self, task):
        self.tasks.pop(task.id, None)
        if task.client is not None:
            task.client.tasks.discard(task.id)
        if task.worker is not None:
            task.worker.running.pop(task.id, None)
            self.dirty = True

    def compact(self):
        """Rebuild the tables that only grow, after most of their entries left."""
        self.tasks = dict(self.tasks)
        for client in self.clients.values():
            client.tasks = set(client.tasks)

    def snapshot(self, now):
        """What farm-status shows: machines, workers, queues, running tasks, failures."""
        for worker in self.workers.values():
            self.machine(worker.machine)
        queues = {}
        for group in self.groups.values():
            queues[group.capability] = queues.get(group.capability, 0) + group.live
        return {
            "machines": [m.describe(now) for m in sorted(self.machines.values(),
                                                         key=lambda m: m.id)],
            "workers": [{"name": w.name, "host": w.host, "machine": w.machine,
                         "capabilities": sorted(w.capabilities), "slots": w.slots,
                         "used": len(w.running)} for w in self.workers.values()],
            "queues": queues,
            "held": len(self.held),
            "running": [{"id": t.id, "capability": t.capability, "host": w.host,
                         "machine": w.machine, "attempt": t.attempt,
                         "age": now - (t.started or now),
                         "suspended": t.id in self.machine(w.machine).suspended}
                        for w in self.workers.values() for t in w.running.values()],
            "failures": [dict({k: v for k, v in f.items() if k != "time"},
                              age=now - f["time"]) for f in self.failures],
            "clients": len(self.clients),
            "placement": self.placement,
        }



def _load(worker):
    return (len(worker.running) / worker.slots, worker.assigned)


def _result(task, status, error):
    return {"id": task.id, "attempt": task.attempt, "status": status, "error": error,
            "exit_code": None}
