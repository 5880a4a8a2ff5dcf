"""Who is connected, as ``State`` sees it: peers' hellos and departures, machines
and their reports, and the expiry of the silent. A part of ``State`` (mixed into
it, the only writer of the records), kept apart to keep each file short.

A worker's hello is reconciled with what this TaskManager thinks it runs: this
is how a restarted TaskManager recovers (tasks a worker runs are adopted until
their client resubmits them), and why a repeated hello changes nothing.
"""

import heapq
import logging

from .. import defaults
from ..wire.protocol import Code, result_item
from .machines import Machine
from .peers import Peer, hello_slots
from .tasks import CANCELLING, DONE, HELD, QUEUED, RUNNING, Task, queue_key

log = logging.getLogger(__name__)


class Membership:
    # -- peers -----------------------------------------------------------------
    def hello(self, rid, body, key, now, effects, grant=None):
        """Register the sender of a HELLO: ``(peer, None)``, or ``(None, code)`` when
        refused. A second HELLO with the same role updates the record. ``grant``
        (``gate.Grant`` of its key) names its user; an admin key, or a farm
        without keys, may name the user itself (the embedded farm: the local user)."""
        role = body["role"]
        peer = self.peers.get(rid)
        if peer is not None and peer.role != role:
            return None, Code.ROLE_FIXED
        if peer is None:
            peer = Peer(rid, role, body, key, now, order=next(self._order))
            if grant is not None:
                peer.user, peer.admin = grant.name, grant.role == "admin"
            if peer.admin and body.get("user"):
                peer.user = body["user"]
            self.peers[rid] = peer
            self.roles[role][rid] = peer
            if role == "worker":
                self._add_worker(peer)
            elif role == "client":
                self.ledger.join(peer)
            elif role == "monitor":
                self.machine(peer.machine).monitor = rid
        else:
            peer.last_seen = now
            if role == "worker":
                self._rehello_worker(peer, body)
            elif role == "monitor" and body["machine"] != peer.machine:
                peer.machine = body["machine"]
                self.machine(peer.machine).monitor = rid
        if role == "worker":
            # what it runs, and what it finished but has not had acknowledged (its
            # RESULT is on its way): both are its own, neither is lost
            self._reconcile(peer, (body.get("running") or []) + (body.get("finished") or []),
                            now, effects)
        return peer, None

    def seen(self, peer, now):
        peer.last_seen = now

    def _add_worker(self, worker):
        worker.machine_record = self.machine(worker.machine)
        worker.machine_record.workers.add(worker)
        self.scheduler.add(worker)
        self.dirty = True

    def _rehello_worker(self, worker, body):
        slots = hello_slots(body)
        capabilities = body.get("capabilities") or {}
        worker.serves = tuple(body.get("taskmanagers") or ())
        if slots != worker.slots or capabilities != worker.capabilities \
                or body["machine"] != worker.machine:
            self.scheduler.remove(worker)
            worker.machine_record.workers.discard(worker)
            worker.slots, worker.capabilities, worker.machine = slots, capabilities, body["machine"]
            worker.gone = False
            worker.depth, worker.pace = 0, None      # its pipelining starts anew
            self._add_worker(worker)

    def lend(self, worker, slots, draining=None):
        """A worker serving several TaskManagers lends this one ``slots`` now (SLOTS),
        or a pilot drains (``draining``: why; 0 slots): fewer than it runs here take
        nothing back; they are not refilled."""
        worker.draining = draining
        if slots == worker.slots or worker.gone:
            return
        self.scheduler.remove(worker)
        worker.slots, worker.gone, worker.depth = slots, False, 0
        self.scheduler.add(worker)
        self.dirty = True

    def wanted(self, worker):
        """Whether tasks ``worker`` could take wait in a queue (DEMAND: for a worker
        serving several TaskManagers, which shares its slots by it)."""
        scheduler = self.scheduler
        for key in self.queues:
            if key[0] in worker.capabilities and any(
                    p in worker.heaps for p in scheduler.matching(key)):
                return True
        return False

    def _reconcile(self, worker, listed, now, effects):
        """What a worker says it runs, against what this TaskManager thinks it runs."""
        ids = {entry["id"] for entry in listed}
        for task in [t for t in worker.running.values() if t.id not in ids]:
            task.lost("%s (re-registered without it)" % worker.describe())
            self._lose(task, now, effects, counts=False)
        for entry in listed:
            task_id, attempt = entry["id"], entry.get("attempt")
            attempt = attempt if isinstance(attempt, int) and attempt > 0 else 1
            task = self.tasks.get(task_id)
            if task is None:                  # a restart: keep it until its client returns
                capability = entry.get("capability")
                key = queue_key(capability if isinstance(capability, str) else "", None)
                task = Task(task_id, None, key, next(self._seq))
                task.max_attempts = self.max_attempts
                self.tasks[task_id] = task
            elif task.worker is worker:
                task.attempt = max(task.attempt, attempt)
                continue
            elif task.state not in (QUEUED, HELD):   # running elsewhere: stop this copy
                effects.cancel.append((worker, task_id))
                continue
            task.attempt = attempt
            self.transition(task, RUNNING, "its worker says it runs it", now, worker)

    def remove_peer(self, peer, reason, effects, requeue_only=False):
        """Forget a peer: a worker's tasks requeued (or lost after ``max_attempts``),
        a client's cancelled."""
        if self.peers.pop(peer.rid, None) is None:
            return
        del self.roles[peer.role][peer.rid]
        if peer.role == "worker":
            self._remove_worker(peer, reason, effects, requeue_only)
        elif peer.role == "client":
            for task_id in list(peer.tasks):
                task = self.tasks.get(task_id)
                if task is None:
                    continue
                if task.revive is not None and task.revive[0] is peer:
                    task.revive = None         # its resubmission goes with it
                self._cancel(task, effects, tell_client=False, now=peer.last_seen)
            peer.tasks.clear()
            self.ledger.leave(peer, peer.last_seen)
        elif peer.role == "monitor":
            machine = self.machines.get(peer.machine)
            if machine is not None and machine.monitor == peer.rid:
                machine.monitor = None

    def _remove_worker(self, worker, reason, effects, requeue_only):
        self.scheduler.remove(worker)
        worker.machine_record.workers.discard(worker)
        now = worker.last_seen
        for task in list(worker.running.values()):
            task.lost("%s (%s)" % (worker.describe(), reason))
            self._lose(task, now, effects, counts=not requeue_only)
        self.dirty = True

    def _lose(self, task, now, effects, counts):
        """Its worker no longer runs ``task``: requeue it, or fail it as lost."""
        if task.client is None or task.state == CANCELLING:
            if task.client is not None:        # its client cancelled it: the end it awaits
                effects.results.append((task.client, result_item(
                    task.own_id, task.attempt, "cancelled", "cancelled; its worker was lost "
                    "before it confirmed", code=Code.CANCELLED_LOST)))
            self.transition(task, DONE, "lost while unclaimed or cancelling", now)
            self._revive(task, now, effects)
        elif counts and task.attempt >= task.max_attempts:
            text = "task %s lost: %s, attempt %d of %d" % (
                task.own_id, task.lost_on[-1], task.attempt, task.max_attempts)
            effects.results.append((task.client, result_item(
                task.own_id, task.attempt, "lost", text, code=Code.OUT_OF_ATTEMPTS)))
            self.transition(task, DONE, "lost, out of attempts", now)
        else:
            self.transition(task, QUEUED, "its worker was lost", now)

    def turn_stale(self, now, effects):
        """Act once on each machine whose last report has just turned stale: under
        ``stale: run`` its workers are eligible again (back in the scheduler's heaps);
        tasks suspended there are resumed (a silent monitor cannot say the owner left)."""
        while self.staling and self.staling[0][0] < now:
            _, _, machine = heapq.heappop(self.staling)
            if machine.stale_at is None or now <= machine.stale_at \
                    or machine.stale_seen == machine.reported_at:
                continue                               # reported since, or done already
            machine.stale_seen = machine.reported_at
            if machine.policy.stale == "run":
                for worker in machine.workers:
                    self.scheduler.offer(worker)
                self.dirty = True
            if machine.suspended:
                resumed = [(w, t) for w in machine.workers for t in w.running.values()
                           if t.id in machine.suspended]
                effects.resume.extend((w, t.id) for w, t in resumed)
                _tell_owners(effects, [t for _, t in resumed], Code.RESUMED,
                             "%%d task(s) go on: the monitor of machine %s is silent"
                             % machine.id)
                machine.suspended.clear()

    # -- machines --------------------------------------------------------------
    def machine(self, machine_id):
        machine = self.machines.get(machine_id)
        if machine is None:
            policy = self.policies.get(machine_id, self.default_policy)
            machine = self.machines[machine_id] = Machine(machine_id, policy)
        return machine

    def report(self, monitor, report, now, effects):
        """A monitor's load report: update the machine, apply its owner policy."""
        machine = self.machine(monitor.machine)
        machine.update(report, now)
        heapq.heappush(self.staling, (machine.stale_at, next(self._order), machine))
        self.dirty = True
        for worker in machine.workers:
            self.scheduler.offer(worker)       # its rank changed; eligible again, maybe
        running = [(w, t) for w in machine.workers for t in w.running.values()
                   if t.state == RUNNING]
        if not machine.owner_active():
            machine.owner_since = None
            resumed = [(w, t) for w, t in running if t.id in machine.suspended]
            effects.resume.extend((w, t.id) for w, t in resumed)
            _tell_owners(effects, [t for _, t in resumed], Code.RESUMED,
                         "%%d task(s) go on: the owner of machine %s left" % machine.id)
            machine.suspended.clear()
            return
        if machine.owner_since is None:
            machine.owner_since = now
            log.info("TaskManager: the owner of machine %s is back (%.0f%% CPU)", machine.id,
                     machine.owner_cpu())
        policy = machine.policy
        if policy.on_owner == "suspend":
            stopped = [(w, t) for w, t in running if t.id not in machine.suspended]
            for worker, task in stopped:
                machine.suspended.add(task.id)
                effects.suspend.append((worker, task.id))
            _tell_owners(effects, [t for _, t in stopped], Code.SUSPENDED,
                         "%%d task(s) suspended: the owner of machine %s is back (its "
                         "policy's on_owner: suspend)" % machine.id)
        elif policy.on_owner == "requeue" and now - machine.owner_since >= policy.requeue_grace:
            for worker, task in running:
                if not task.requeue:
                    task.requeue = True
                    effects.cancel.append((worker, task.id))

    # -- timers ----------------------------------------------------------------
    def expire(self, now, peer_timeout, effects):
        """Drop peers silent for longer than ``peer_timeout``, and what outlived them."""
        for peer in [p for p in self.peers.values() if now - p.last_seen > peer_timeout]:
            self.expired[peer.role] += 1
            if peer.role == "worker":
                log.warning("TaskManager: %s stopped answering, requeueing %d task(s)",
                            peer.describe(), len(peer.running))
            elif peer.role == "client":
                log.warning("TaskManager: client %s on %s stopped answering, dropping %d "
                            "task(s)", peer.name, peer.host, len(peer.tasks))
            else:
                log.warning("TaskManager: %s stopped answering", peer.describe())
            self.remove_peer(peer, "stopped answering", effects)
        if now >= self.recovery_until + defaults.ORPHAN_RESULT_TTL:
            for task in list(self.adopted.values()):   # no client claimed it
                self.transition(task, CANCELLING, "adopted, never claimed", now)
                effects.cancel.append((task.worker, task.id))
                del self.adopted[task.id]
        self.turn_stale(now, effects)
        while self.orphans:
            task_id, (_, since) = next(iter(self.orphans.items()))
            if now - since < defaults.ORPHAN_RESULT_TTL:
                break
            del self.orphans[task_id]


def _tell_owners(effects, tasks, code, text):
    """A NOTICE to each client of ``tasks`` (``text`` takes their count)."""
    by_client = {}
    for task in tasks:
        if task.client is not None:
            by_client.setdefault(task.client, []).append(task.own_id)
    for client, ids in by_client.items():
        effects.notices.append((client, "warning", code, text % len(ids), ids))
