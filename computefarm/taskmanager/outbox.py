"""What the TaskManager sends: replies batched per peer and message type.

Any message counts as a heartbeat: the TaskManager calls ``heartbeat`` twice an
interval, and only the peers sent nothing during the last two calls' span get a
HEARTBEAT. An idle peer hears one an interval, none goes more than 1.5
intervals without a message, and a busy farm of a thousand workers costs no
extra thousand sends a second.

Handlers and ``State`` effects queue items here during a loop iteration;
``flush`` sends one message per (peer, type). A DISPATCH that cannot be sent
(the peer is gone, or its queue is full) is handed back so its tasks are
requeued; anything else unsendable is dropped and left to the recovery paths
(docs/protocol.md, "Delivery guarantees").
"""

import logging

import zmq

from .. import defaults
from ..wire import protocol
from ..wire.protocol import Msg

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, socket, undeliverable, stalled):
        self.socket = socket
        self.undeliverable = undeliverable   # (routing id, DISPATCH items) -> None
        self.stalled = stalled               # routing id -> None: its queue is full
        self.pending = {}                    # (routing id, Msg) -> items
        self.sent = set()                    # routing ids sent something since the last round
        self.sent_before = set()             # ... in the round before
        self.count = 0                       # messages sent
        self.acks = {}                       # worker routing id -> result ids to acknowledge
        # peers no connection stands behind (batches): routing id -> (Msg, item) -> None
        self.local = {}

    def queue(self, rid, mtype, item):
        if self.local and rid in self.local:
            self.local[rid](mtype, item)
            return
        items = self.pending.get((rid, mtype))
        if items is None:
            self.pending[(rid, mtype)] = items = []
        if isinstance(item, list):
            items.extend(item)
        else:
            items.append(item)

    def apply(self, effects):
        """Queue the messages a state change calls for."""
        for worker, task in effects.dispatch:
            self.queue(worker.rid, Msg.DISPATCH, protocol.dispatch_item(
                task.id, task.attempt, task.capability, task.body, task.timeout))
            if task.track and task.client is not None:
                self.queue(task.client.rid, Msg.STARTED, protocol.started_item(
                    task.own_id, task.attempt, worker.host, worker.name, worker.machine))
        for worker, task_id in effects.cancel:
            self.queue(worker.rid, Msg.CANCEL, task_id)
        for worker, task_id in effects.suspend:
            self.queue(worker.rid, Msg.SUSPEND, task_id)
        for worker, task_id in effects.resume:
            self.queue(worker.rid, Msg.RESUME, task_id)
        for client, result in effects.results:
            self.queue(client.rid, Msg.RESULT, result)
        for client, level, code, text, ids in effects.notices:
            if client.rid in self.local:
                self.local[client.rid](Msg.NOTICE, protocol.notice(level, code, text, ids))
            else:
                self.send(client.rid, Msg.NOTICE, protocol.notice(level, code, text, ids))

    def ack(self, rid, ids):
        """Acknowledge results: on the next DISPATCH to that worker, or at the next
        heartbeat round, or once ``ACK_BATCH`` are waiting. A worker only needs
        them to empty its outbox, so they need not go at once."""
        waiting = self.acks.setdefault(rid, [])
        waiting.extend(ids)
        if len(waiting) >= defaults.ACK_BATCH:
            self.send_batched(rid, Msg.ACK, self.acks.pop(rid))

    def send_acks(self):
        acks, self.acks = self.acks, {}
        for rid, ids in acks.items():
            self.send_batched(rid, Msg.ACK, ids)

    def send_batched(self, rid, mtype, items):
        for body in protocol.batches(mtype, items):
            self.send(rid, mtype, body)

    def heartbeat(self, rids):
        """A heartbeat round: the acknowledgements still waiting, then HEARTBEAT to
        each of ``rids`` sent nothing in this round or the one before."""
        self.send_acks()
        recent = self.sent | self.sent_before
        for rid in rids:
            if rid not in recent:
                self.send(rid, Msg.HEARTBEAT, {})
        self.sent_before, self.sent = self.sent, set()

    def flush(self):
        """One message per (peer, type), RESULTs last; waiting acknowledgements ride
        on a DISPATCH to the same worker (one message where a busy farm would send
        two per task)."""
        pending, self.pending = self.pending, {}
        # a task's lines and its start before its result: a client forgets a task
        # once its result is in, so OUTPUT sent after it would be dropped
        for (rid, mtype), items in sorted(pending.items(),
                                          key=lambda entry: entry[0][1] == Msg.RESULT):
            for body in protocol.batches(mtype, items, protocol.WEIGHTS.get(mtype)):
                if mtype == Msg.DISPATCH and rid in self.acks:
                    body["acks"] = self.acks.pop(rid)
                if not self.send(rid, mtype, body) and mtype == Msg.DISPATCH:
                    self.undeliverable(rid, body["tasks"])

    def send(self, rid, mtype, body):
        """Send now, never waiting: False when the peer is gone or its queue is full
        (then ``stalled`` is told)."""
        try:
            protocol.send(self.socket, mtype, body, to=rid)
            self.sent.add(rid)
            self.count += 1
            return True
        except zmq.Again:            # its queue is full: it does not read
            log.debug("TaskManager: cannot send %s: the peer's queue is full", mtype.name)
            self.stalled(rid)
            return False
        except zmq.ZMQError as exc:  # peer gone (EHOSTUNREACH)
            log.debug("TaskManager: cannot send %s: %s", mtype.name, exc)
            return False
