"""Batches on the TaskManager (farm-run): queues that outlive their client.

A client sends a batch's command lines in parts (BATCH), each answered
(BATCHED) once it is in the database (``batchdb``, ``batchparts``); the last
part makes the batch *active*, and from then on it needs no client. ``BatchBook`` is the
batches' owner here: it feeds ``State`` an active batch's tasks a window at a
time (``BATCH_WINDOW``; the rest wait on disk) as the tasks of a *batch peer*,
a client record no connection stands behind, so fair share, placement,
recovery and the transition log treat them like any client's tasks. What
``State`` would send to that client comes back here instead (the ``Outbox``
routes a batch peer's RESULT, STARTED and NOTICE to ``deliver``): results are
written to the database, and the server acknowledges them to their worker
only once that write is done (``settle``), so a crash of the TaskManager at any
point loses no acknowledged result, and a task's first result is the one kept.

Placeholders are filled in as each try is dispatched (``render``): a try's
``{token}`` is new every time. After a restart the batches are read back and
their windows queued as *held* during the recovery grace, so the tasks workers
still run are claimed by their hellos, not started twice.
"""

import collections
import logging
import secrets
import time

from .. import defaults, placeholders
from ..wire import protocol
from ..wire.protocol import Code, Msg
from . import speculation
from .peers import Peer

log = logging.getLogger(__name__)

OPEN, ACTIVE, CANCELLING, CANCELLED, FINISHED = \
    "open", "active", "cancelling", "cancelled", "finished"
# RESULTs State makes when a client is over a limit: the task goes back to disk
# and the batch loads more later, rather than failing it
_LIMITS = {Code.QUEUE_FULL, Code.QUEUE_BYTES, Code.USER_QUEUE_FULL, Code.USER_QUEUE_BYTES}
_RETRY_LOAD = 1.0            # s before a batch refused for a limit loads again
_SCOPE = "@"                 # batch peers' task ids: "@<batch id>/<n>"


class Batch:
    __slots__ = ("id", "user", "spec", "commands", "replicas", "received", "state", "created",
                 "ended", "peer", "cursor", "returned", "loaded", "texts", "counts",
                 "finished", "running", "notice", "touched", "blocked_until", "straggling",
                 "held_below", "text_bytes")

    def __init__(self, row, now):
        self.id = row["id"]
        self.user = row["user"]
        self.spec = row["spec"]
        self.commands = row["commands"]
        self.replicas = row["replicas"]
        self.received = row["received"]
        self.state = row["state"]
        self.created = row["created"]
        self.ended = row["ended"]
        self.peer = None             # its batch peer while active
        self.cursor = 0              # tasks below it were loaded (or finished) this run
        self.returned = []           # tasks to load again (refused for a limit)
        self.loaded = {}             # own id -> n: its tasks in State now
        self.texts = {}              # n -> command line, for the loaded tasks
        self.text_bytes = 0          # ... their characters (BATCH_WINDOW_BYTES at most)
        self.counts = collections.Counter()   # status -> finished tasks
        self.finished = 0
        self.running = {}            # own id -> (n, host, wall-clock start, attempt)
        self.notice = None           # why its tasks wait, if the TaskManager said
        self.touched = now           # last part received (open batches)
        self.blocked_until = 0.0     # refused for a limit: load again after
        self.straggling = speculation.Straggling()   # its copies of slow tasks
        # tasks below were loaded before this start, so may run on a worker: they
        # wait for the workers' hellos during the recovery grace; none above did
        self.held_below = row.get("loaded_to", 0)

    @property
    def total(self):
        return self.commands * self.replicas

    def describe(self, now_wall):
        spec = self.spec
        return {"id": self.id, "user": self.user, "label": spec.get("label") or "",
                "capability": spec["capability"], "state": self.state,
                "tasks": self.total, "commands": self.commands, "replicas": self.replicas,
                "finished": self.finished, "ok": self.counts.get("ok", 0),
                "failed": self.finished - self.counts.get("ok", 0)
                - self.counts.get("cancelled", 0),
                "cancelled": self.counts.get("cancelled", 0)
                + (self.total - self.finished - len(self.running)
                   if self.state in (CANCELLING, CANCELLED) else 0),
                "running": len(self.running),
                "queued": self.total - self.finished - len(self.running)
                if self.state == ACTIVE else 0,
                "copies": self.straggling.started, "copies_won": self.straggling.won,
                "created": self.created, "ended": self.ended,
                "age": round(now_wall - self.created, 1)}


class BatchBook:
    def __init__(self, db, state, apply, outbox, clock, limit, limit_bytes,
                 speculate_after=defaults.SPECULATE_AFTER, wall=time.time):
        self.db = db
        self.state = state
        self.apply = apply           # the server's: run a State change, send its effects
        self.outbox = outbox
        self.clock = clock
        self.wall = wall
        self.limit, self.limit_bytes = limit, limit_bytes
        self.speculate_after = speculate_after
        self.batches = {}            # id -> Batch
        self.active = {}             # id -> Batch with a batch peer (being run)
        self.held_acks = []          # (worker rid, result ids) waiting for a write
        self.retry_at = 0.0

    # -- start -------------------------------------------------------------------
    def restore(self, now):
        """Read the batches back after a start; queue the active ones' windows."""
        for row in self.db.batches():
            batch = self.batches[row["id"]] = Batch(row, now)
            counts = self.db.counts(batch.id)
            batch.counts.update(counts)
            batch.finished = sum(counts.values())
            if batch.state == ACTIVE:
                self.activate(batch, now)
        active = [b for b in self.batches.values() if b.state == ACTIVE]
        if active:
            log.info("TaskManager: %d batch(es) back from the database, %d task(s) to go",
                     len(active), sum(b.total - b.finished for b in active))

    def open(self, client, body, now):
        """A new batch from the first part of it that arrived (not yet written)."""
        row = {"id": body["id"], "user": client.user, "spec": body["spec"],
               "commands": body["commands"], "replicas": body["replicas"],
               "received": 0, "state": OPEN, "created": self.wall(), "ended": None}
        batch = self.batches[body["id"]] = Batch(row, now)
        self.db.create(batch.id, client.user, batch.spec, batch.commands, batch.replicas,
                       batch.created)
        log.info("TaskManager: batch %s of user %s: %d command(s) x %d coming",
                 batch.id, client.user, batch.commands, batch.replicas)
        return batch

    @staticmethod
    def may(client, batch):
        """Whether ``client`` may see and cancel ``batch``: its user's, or an admin."""
        return client.admin or client.user == batch.user

    # -- feeding State -------------------------------------------------------------
    def activate(self, batch, now):
        hello = {"id": "batch " + batch.id, "host": "(batch)", "machine": "", "pid": None}
        peer = Peer(b"\0batch:" + batch.id.encode() + secrets.token_bytes(4), "client",
                    hello, None, now)
        peer.user, peer.scope = batch.user, _SCOPE + batch.id + "/"
        batch.peer = peer
        batch.cursor = 0
        self.active[batch.id] = batch
        self.state.ledger.join(peer)
        self.outbox.local[peer.rid] = lambda mtype, item: self.deliver(batch, mtype, item)
        self.load(batch, now)

    def refill(self, now):
        """Top up the windows of active batches whose tasks left."""
        for batch in self.active.values():
            if batch.state == ACTIVE \
                    and now >= batch.blocked_until \
                    and len(batch.loaded) <= defaults.BATCH_WINDOW * 3 // 4 \
                    and batch.text_bytes <= defaults.BATCH_WINDOW_BYTES * 3 // 4 \
                    and (batch.returned or batch.cursor < batch.total):
                self.load(batch, now)

    def load(self, batch, now):
        """Queue the batch's next tasks, up to its window."""
        room = defaults.BATCH_WINDOW - len(batch.loaded)
        wanted = batch.returned[:room]
        del batch.returned[:room]
        while len(wanted) < room and batch.cursor < batch.total:
            high = min(batch.total, batch.cursor + 2 * (room - len(wanted)))
            done = self.db.finished_in(batch.id, batch.cursor, high) if batch.finished else ()
            tasks = self.state.tasks
            for n in range(batch.cursor, high):
                if n not in done and batch.peer.scope + str(n) not in tasks:
                    wanted.append(n)
                    if len(wanted) == room:
                        high = n + 1
                        break
            batch.cursor = high
        if not wanted:
            return
        # no task is dispatched past the mark the database holds: after a crash,
        # the tasks beyond it are known never to have run anywhere
        self.db.set_loaded_to(batch.id, batch.cursor)
        if not self.db.commit():
            batch.returned[:0] = wanted
            batch.blocked_until = now + defaults.DATABASE_RETRY
            return
        lines = self._commands(batch, wanted)
        specs = []
        for index, n in enumerate(wanted):
            text = lines[n // batch.replicas]
            if batch.text_bytes + len(text) > defaults.BATCH_WINDOW_BYTES and batch.loaded:
                batch.returned[:0] = wanted[index:]     # long commands: a smaller window
                break
            batch.loaded[str(n)] = n
            batch.texts[n] = text
            batch.text_bytes += len(text)
            specs.append(self.task_spec(batch, n, now))
        self.apply(self.state.submit, batch.peer, specs, now, limit=self.limit,
                   limit_bytes=self.limit_bytes)

    def task_spec(self, batch, n, now):
        """The SUBMIT item of task ``n`` (its body is made as it is dispatched)."""
        spec = batch.spec
        item = {"id": str(n), "capability": spec["capability"], "body": b"", "track": True,
                "priority": spec.get("priority", 0),
                "group_priority": spec.get("priority", 0),
                "group_weight": spec.get("weight", 1.0),
                "label": "%s %d.%d" % (spec.get("label") or batch.id, n // batch.replicas,
                                       n % batch.replicas)}
        for field in ("requires", "timeout", "max_attempts"):
            if spec.get(field) is not None:
                item[field] = spec[field]
        if now < self.state.recovery_until and n < batch.held_below:
            item["resume"] = True        # held: a worker's hello may claim it
        return item

    def _commands(self, batch, tasks):
        """``{c: line}`` of the commands of ``tasks``, read in runs of neighbours."""
        wanted = sorted({n // batch.replicas for n in tasks})
        lines, start = {}, 0
        for index in range(1, len(wanted) + 1):
            if index == len(wanted) or wanted[index] - wanted[index - 1] > 64:
                lines.update(self.db.commands(batch.id, wanted[start], wanted[index - 1] + 1))
                start = index
        return lines

    def render(self, dispatch):
        """Fill in the placeholders of the batch tasks about to be dispatched."""
        for _, task in dispatch:
            client = task.client
            if client is None or client.scope[:1] != _SCOPE:
                continue
            batch = self.batches.get(client.scope[1:-1])
            n = batch.loaded.get(task.own_id) if batch is not None else None
            if n is None or n not in batch.texts:
                continue
            spec = batch.spec
            command = placeholders.fill(batch.texts[n], {
                "replica": n % batch.replicas, "task": n // batch.replicas, "index": n,
                "batch": batch.id, "attempt": task.attempt,
                "token": "%s-%d-%d-%s" % (batch.id, n, task.attempt, secrets.token_hex(4))})
            request = {"cmd": command}
            if spec.get("cwd"):
                request["cwd"] = spec["cwd"]
            if spec.get("env"):
                request["env"] = spec["env"]
            task.body = protocol.pack_body(request)

    def adopt(self, now):
        """Claim the tasks of batches a reconnecting worker runs (after a restart)."""
        for task_id, task in list(self.state.adopted.items()):
            if task_id[:1] != _SCOPE or task.client is not None:
                continue
            batch_id, _, own_id = task_id[1:].partition("/")
            batch = self.batches.get(batch_id)
            if batch is not None and (batch.state in (CANCELLED, FINISHED) or "~" in own_id):
                self._stop_stray(task_id, own_id, now)   # over, or a copy: its pair is gone
                continue
            if batch is None or batch.peer is None or not own_id.isdigit():
                continue                # not ours to keep: State cancels it in time
            n = int(own_id)
            if own_id in batch.loaded or n >= batch.total:
                continue
            if self.db.finished_in(batch.id, n, n + 1):     # a copy of a finished task
                self.apply(self.state.cancel, batch.peer, [own_id], now)
                continue
            batch.returned.append(n)    # claimed by the next load (held -> running)
        for batch in list(self.active.values()):
            if batch.returned:
                self.load(batch, now)

    def _stop_stray(self, task_id, own_id, now):
        """Cancel a task a worker runs for a batch that is over (cancelled before a
        restart): as its owner would, through a peer of the batch's scope."""
        owner = Peer(b"\0batch-stray", "client", {"id": "stray", "host": "", "machine": ""},
                     None, now)
        owner.scope = task_id[:len(task_id) - len(own_id)]
        self.apply(self.state.cancel, owner, [own_id], now)

    # -- what State tells a batch ----------------------------------------------------
    def deliver(self, batch, mtype, item):
        if mtype == Msg.RESULT:
            self._finished(batch, item)
        elif mtype == Msg.STARTED:
            n = batch.loaded.get(item["id"])
            if n is not None:
                batch.running[item["id"]] = (n, item["host"], self.wall(), item["attempt"])
                batch.notice = None          # what made its tasks wait is over
        elif mtype == Msg.NOTICE:
            batch.notice = item["text"]

    def _finished(self, batch, item):
        own_id = item["id"]
        n = batch.loaded.pop(own_id, None)
        if n is None:
            return
        started = batch.running.pop(own_id, (n, None, None, None))
        if item.get("code") in _LIMITS:
            self._unload(batch, n)
            batch.returned.append(n)
            batch.blocked_until = self.clock() + _RETRY_LOAD
            return
        copies, winner = 1, 1
        if batch.straggling.pairs or batch.straggling.outrun:
            verdict = speculation.settle(self, batch, own_id, n, item, self.clock())
            if verdict is None:              # the other copy won, or carries on
                self._maybe_close(batch)
                return
            copies, winner = verdict
        self._unload(batch, n)
        status = item["status"]
        row = {"n": n, "attempt": item.get("attempt"), "status": status,
               "exit_code": item.get("exit_code"), "code": item.get("code"),
               "error": item.get("error"), "host": item.get("host") or started[1],
               "worker": item.get("worker"), "duration": item.get("duration"),
               "started": started[2], "ended": self.wall(), "copies": copies,
               "winner": winner, "output": item.get("output")}
        self.db.record(batch.id, [row])
        batch.counts[status] += 1
        batch.finished += 1
        if status == "ok" and item.get("duration") is not None:
            batch.straggling.samples.append(item["duration"])
        self._maybe_close(batch)

    @staticmethod
    def _unload(batch, n):
        text = batch.texts.pop(n, None)
        if text is not None:
            batch.text_bytes -= len(text)

    def _maybe_close(self, batch):
        """Close a batch whose every task has its result, or a cancelled one whose
        last running task (or copy) has stopped."""
        if batch.peer is not None and (batch.finished >= batch.total or (
                batch.state == CANCELLING and not batch.loaded)):
            self._close(batch, FINISHED if batch.state == ACTIVE else CANCELLED)

    def _close(self, batch, state):
        now = self.clock()
        batch.state, batch.ended = state, self.wall()
        self.db.set_state(batch.id, state, batch.ended)
        if batch.peer is not None:
            self.outbox.local.pop(batch.peer.rid, None)
            self.state.ledger.leave(batch.peer, now)
            batch.peer = None
            del self.active[batch.id]
        batch.texts.clear()
        batch.text_bytes = 0
        batch.running.clear()
        log.info("TaskManager: batch %s %s: %d ok of %d task(s)", batch.id, state,
                 batch.counts.get("ok", 0), batch.total)

    # -- acknowledgements ------------------------------------------------------------
    def settle(self, rid, ids):
        """Acknowledge ``ids`` (results from worker ``rid``) once the database holds
        what they wrote; while it cannot be written, the batches' ones wait."""
        if self.db.commit():
            self.outbox.ack(rid, ids)
            return
        mine = [i for i in ids if i[:1] == _SCOPE]
        others = [i for i in ids if i[:1] != _SCOPE]
        if others:
            self.outbox.ack(rid, others)
        if mine:
            self.held_acks.append((rid, mine))

    def tick(self, now):
        """Try a failed write again; drop batches abandoned before they were whole."""
        if (self.db.pending or self.held_acks) and now >= self.retry_at:
            self.retry_at = now + defaults.DATABASE_RETRY
            if self.db.commit():
                held, self.held_acks = self.held_acks, []
                for rid, ids in held:
                    self.outbox.ack(rid, ids)
        for batch in self.active.values():
            if batch.state == ACTIVE and batch.spec.get("speculate"):
                speculation.check(self, batch, now, self.speculate_after)
        for batch in [b for b in self.batches.values() if b.state == OPEN
                      and now - b.touched > defaults.BATCH_OPEN_TTL]:
            log.warning("TaskManager: batch %s dropped: its client went after sending %d of "
                        "its %d command(s)", batch.id, batch.received, batch.commands)
            self.db.drop(batch.id)
            del self.batches[batch.id]

    def close(self):
        self.db.commit()
        self.db.close()

    def cancel(self, batch):
        """Stop a batch: its queued tasks end, its running ones are stopped."""
        if batch.state not in (OPEN, ACTIVE):
            return
        now = self.clock()
        batch.state = CANCELLING              # until its running tasks have stopped
        self.db.set_state(batch.id, CANCELLED)
        if batch.peer is not None and batch.loaded:
            self.apply(self.state.cancel, batch.peer, list(batch.loaded), now)
        if batch.state == CANCELLING and not batch.loaded:
            self._close(batch, CANCELLED)
        self.db.commit()
        log.info("TaskManager: batch %s cancelled", batch.id)

    def forget(self, batch):
        """Remove a batch that is over, its commands and results, from the database."""
        if batch.state not in (CANCELLED, FINISHED):
            return False
        self.db.drop(batch.id)
        del self.batches[batch.id]
        self.db.commit()
        log.info("TaskManager: batch %s forgotten", batch.id)
        return True

    def unloaded(self):
        """``(capability, requires, count)``: active batches' tasks still on disk."""
        return [(b.spec["capability"], b.spec.get("requires"),
                 b.total - b.finished - len(b.loaded)) for b in self.batches.values()
                if b.state == ACTIVE and b.total - b.finished - len(b.loaded) > 0]

    def describe(self):
        """Active batches, for STATE."""
        now = self.wall()
        return [b.describe(now) for b in self.batches.values()
                if b.state in (OPEN, ACTIVE, CANCELLING)]
