"""What the TaskManager sends: replies batched per peer and message type.

Handlers and ``State`` effects queue items here during a loop iteration;
``flush`` sends one message per (peer, type). A DISPATCH that cannot be sent
(the peer is gone, or its queue is full) is handed back so its tasks are
requeued; anything else unsendable is dropped and left to the recovery paths
(docs/protocol.md, "Delivery guarantees").
"""

import logging

import zmq

from ..wire import protocol
from ..wire.protocol import Msg

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, socket, undeliverable):
        self.socket = socket
        self.undeliverable = undeliverable   # (routing id, DISPATCH items) -> None
        self.pending = {}                    # (routing id, Msg) -> items

    def queue(self, rid, mtype, item):
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
                    task.id, task.attempt, worker.host, worker.name, worker.machine))
        for worker, task_id in effects.cancel:
            self.queue(worker.rid, Msg.CANCEL, task_id)
        for worker, task_id in effects.suspend:
            self.queue(worker.rid, Msg.SUSPEND, task_id)
        for worker, task_id in effects.resume:
            self.queue(worker.rid, Msg.RESUME, task_id)
        for client, result in effects.results:
            self.queue(client.rid, Msg.RESULT, result)
        for client, level, code, text, ids in effects.notices:
            self.send(client.rid, Msg.NOTICE, protocol.notice(level, code, text, ids))

    def flush(self):
        pending, self.pending = self.pending, {}
        for (rid, mtype), items in pending.items():
            if not items or self.send(rid, mtype, protocol.batch(mtype, items)):
                continue
            if mtype == Msg.DISPATCH:
                self.undeliverable(rid, items)

    def send(self, rid, mtype, body):
        try:
            protocol.send(self.socket, mtype, body, to=rid)
            return True
        except zmq.ZMQError as exc:  # peer gone (EHOSTUNREACH) or its queue is full
            log.debug("TaskManager: cannot send %s: %s", mtype.name, exc)
            return False
