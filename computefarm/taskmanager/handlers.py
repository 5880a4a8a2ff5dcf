"""What each message a TaskManager takes does: the handlers of its peers' tables.

``TaskManager`` (server.py) builds one table per role, ``{Msg: handler}``, from
these methods; what a role may send is its table. Each handler takes the
sending peer's record, the checked body and the time, and either changes the
state through ``State`` (whose ``Effects`` the outbox sends) or answers.
"""

import logging

from .. import defaults
from ..exceptions import ProtocolError
from ..wire import protocol
from ..wire.protocol import Code, Msg
from ..wire.schemas import MAX_HELD
from . import batchparts, batchqueries
from .actioncache import profile
from .snapshot import farm_status
from .state import Effects

log = logging.getLogger(__name__)


class Handlers:
    """The TaskManager's message handlers (a part of ``server.TaskManager``)."""

    def on_hello(self, peer, body, now, sender=None, user=None):
        role = body["role"]
        held = (body.get("slots") or 1) * (1 + defaults.PIPELINE_MAX)   # waiting ones too
        if len(body.get("taskmanagers") or ()) > 1:
            held = MAX_HELD            # it lends this one few slots now, maybe after more
        if len(body.get("running") or ()) > held:
            raise ProtocolError("HELLO lists %d running or waiting tasks for %d slot(s)"
                                % (len(body["running"]), body.get("slots") or 1), Code.INVALID)
        rid = peer.rid if peer is not None else sender
        effects = Effects()
        grant = self.keyring.lookup(user) if self.keyring is not None and user else None
        registered, code = self.state.hello(rid, body, user, now, effects, grant)
        self.outbox.apply(effects)
        if registered is None:
            raise ProtocolError("this connection said hello as a %s before"
                                % self.state.peers[rid].role, code)
        if peer is None:
            log.info("TaskManager: %s connected%s", registered.describe(),
                     ": %s, %d slot(s)" % (", ".join(sorted(registered.capabilities)) or
                                          "no capabilities", registered.slots)
                     if role == "worker" else "")
        if role == "logger":
            self.logs.connected(rid)
        self.outbox.send(rid, Msg.WELCOME, {"incarnation": self.incarnation,
                                            "heartbeat": self.interval,
                                            "liveness": self.config.heartbeat_liveness,
                                            "max_message": self.config.max_message_size})
        if role == "worker" and self.state.adopted:
            self.batches.adopt(now)            # batch tasks it runs since before a restart
        if role == "worker" and registered.shared:
            registered.wanted = None           # it learns anew what waits here
            self.tell_demand(registered)

    def on_enrol(self, sender, body, user, now):
        """A stranger's key proves an invitation (the gate let nothing else through)."""
        if self.enrolment is None or user is None:
            raise ProtocolError("this TaskManager takes no invitations (it has no key "
                                "directory)", Code.NOT_ALLOWED)
        self.outbox.send(sender, Msg.ENROLLED, protocol.enrolled(
            **self.enrolment.enrol(user, body, now)))

    def on_bye(self, peer, body, now):
        self.apply(self.state.remove_peer, peer, "left", requeue_only=True)
        log.info("TaskManager: %s left: %s", peer.describe(), body.get("reason", ""))

    def on_submit(self, client, body, now):
        tasks = body["tasks"]
        if any("action" in spec for spec in tasks):     # answered from the action cache
            tasks = self.actions.answered(
                tasks, self.state.workers.values(),
                lambda spec: client.scope + spec["id"] in self.state.tasks,
                lambda item: self.outbox.queue(client.rid, Msg.RESULT, item))
        self.apply(self.state.submit, client, tasks, now,
                   limit=self.config.max_queued_per_client,
                   limit_bytes=self.config.max_queued_bytes_per_client)

    def on_batch(self, client, body, now):
        batchparts.take(self.batches, client, body, now)

    def on_query(self, client, body, now):
        self.outbox.send(client.rid, Msg.ANSWER, batchqueries.answer(self.batches, client, body))

    def on_cancel(self, client, body, now):
        self.apply(self.state.cancel, client, body["ids"], now)
        self.apply(self.speculator.cancelled, client, body["ids"], now)

    def on_status(self, client, body, now):
        if body.get("report") is not None:       # a factory of pilots says how it does
            self.reports[client.rid] = (client, body["report"], now)
        self.outbox.send(client.rid, Msg.STATE, {"status": farm_status(self, client, now)})

    def on_log(self, client, body, now):
        self.logs.events(client, body["records"], now)

    def on_find(self, peer, body, now):
        self.blobs.find(peer.rid, body)

    def on_put(self, peer, body, now):
        self.blobs.put(peer.rid, body)

    def on_get(self, peer, body, now):
        self.blobs.get(peer.rid, body)

    def on_result(self, worker, body, now):
        effects = Effects()
        ids = [r["id"] for r in body["results"]]   # as the worker knows them: acknowledged
        for result in body["results"]:
            if result["status"] != "ok" and self.logs.active:
                self.logs.result(worker, result)
            task = worker.running.get(result["id"])
            if task is not None and task.attempt == result["attempt"]:
                self.speculator.finished(task, result, now, effects)   # a copy's race
            self.state.finish(worker, result, now, effects)   # may give it its client's id
            if task is not None and task.action is not None and result["status"] == "ok" \
                    and result.get("exit_code") == 0 and result.get("outputs") \
                    and task.attempt == result["attempt"]:   # (in place: nothing to reuse)
                worker_profile = profile(worker.capabilities.get(task.capability) or {})
                if worker_profile is not None:
                    self.actions.record(task.action, worker_profile, result)
        self.outbox.apply(effects)
        self.batches.settle(worker.rid, ids)     # once the batches' results are on disk

    def on_slots(self, worker, body, now):
        self.state.lend(worker, body["slots"], body.get("draining"))
        if body.get("draining"):
            log.info("TaskManager: %s drains: %s", worker.describe(), body["draining"])

    def on_output(self, worker, body, now):
        for item in body["items"]:
            task = self.state.output_for(item)
            if task is not None:
                self.outbox.queue(task.client.rid, Msg.OUTPUT, dict(item, id=task.own_id))
            if self.logs.active:
                self.logs.output(worker, item, now)

    def on_report(self, monitor, body, now):
        if body["machine"] != monitor.machine:
            raise ProtocolError("REPORT for machine %r from the monitor of %r"
                                % (body["machine"], monitor.machine))
        self.apply(self.state.report, monitor, body, now)

    def on_credit(self, forwarder, body, now):
        credit = body.get("credit", 0)
        self.logs.credit(forwarder.rid, credit if credit > 0 else 0)

    def tell_demand(self, worker):
        """DEMAND to a worker serving several TaskManagers, when what waits here for
        it changed: it lends its slots to those with work."""
        wanted = self.state.wanted(worker)
        if wanted != worker.wanted:
            worker.wanted = wanted
            self.outbox.send(worker.rid, Msg.DEMAND, {"wanted": wanted})


def nothing(peer, body, now):
    """A HEARTBEAT: that it arrived (``State.seen``) is all it says."""
