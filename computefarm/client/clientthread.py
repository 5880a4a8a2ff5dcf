"""The client's thread: the one owner of its socket to the TaskManager.

A part of ``Client`` (mixed into it), kept apart as the TaskManager's handlers
are. Each turn it reads what arrived, resolves futures (exactly once: a result
for a task no longer pending is counted, not delivered), sends what callers
queued since the last turn (submits, cancels, logs, a status request), pumps
blob transfers and batch requests, and heartbeats; after the TaskManager's
goodbye it waits for its successor, resubmitting what is outstanding.
"""

import logging
import os

import zmq

from .. import defaults, tracing
from ..exceptions import AccessRefused, FarmUnreachable
from ..hostinfo import host_name, machine_id
from ..service import drain_pipe
from ..wire import protocol
from ..wire.link import Link
from ..wire.protocol import Msg
from .tasks import TaskResult

log = logging.getLogger("computefarm.client.client")    # the client's, as before the split


class ClientThread:
    """What ``Client``'s thread does, on the attributes ``Client.__init__`` makes."""

    def _run(self):
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        link = Link(self.context, self.address, "client", self._hello, self._welcomed,
                    poller, self.clock(), identity=self.identity, curve=self.curve)
        self._link = link
        try:
            while not self._closing:
                if tracing.on:
                    tracing.mark("poll")
                ready = dict(poller.poll(100))
                if tracing.on:
                    tracing.mark("wake")
                now = self.clock()
                self._woken = False
                if self._wake_r in ready:
                    drain_pipe(self._wake_r)
                if link.socket in ready:
                    for mtype, body in link.receive(now):
                        if not self.files.handle(mtype, body, now) \
                                and not self.batch_requests.handle(mtype, body):
                            self._process(mtype, body)
                self._send_new(now)
                self.files.pump(link, now)
                self.batch_requests.pump(link, now)
                link.tick(now)
                if self._away is not None:
                    self._wait_for_return(now)
                if link.refused:          # the key is not let in: retrying cannot help
                    self._refused = link.refused
                    log.error("client %s: %s", self.identity, link.refused)
                    self._fail_all(link.refused, AccessRefused)
                    self._connected.set()     # a constructor waiting hears it at once
                    break
        except Exception:  # a bug: fail every future rather than hang callers
            log.exception("client %s: crashed", self.identity)
            self._fail_all("the client thread crashed")
        finally:
            if link.ready:
                self._send_new(self.clock(), final=True)   # what was submitted or logged last
            link.close(bye={"reason": "client closing"})
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            self._fail_all("the client was closed before the task finished")
            self.files.close()

    def _wait_for_return(self, now):
        """After the TaskManager's goodbye: its successor welcomes this client back
        (outstanding tasks are resubmitted and go on), or after the wait it said,
        they fail; later submits wait for a TaskManager as at the start."""
        until, wait, why = self._away
        if self._link.ready:
            self._away = None
        elif now >= until:
            self._away = None
            with self._lock:                 # still running somewhere: stopped once a
                self._cancels.extend(         # TaskManager is back to hear it
                    task_id for task_id, p in self._pending.items() if p.sent)
            self._fail_all("the TaskManager at %s said goodbye (%s) and was not back within "
                           "%gs (its taskmanager.handover_wait)" % (self.address, why, wait),
                           permanent=False)

    def _hello(self):
        return protocol.hello("client", self.identity, host_name(), machine_id(), os.getpid(),
                              user=self.user, nice=self.nice)

    def _welcomed(self, restarted):
        self._status_asked = False
        self.files.reset()
        self.batch_requests.reset()
        with self._lock:
            resend = [p for p in self._pending.values() if p.sent]
        if resend:
            specs = [dict(p.spec, resume=True) for p in resend]
            self.stats["resubmitted"] += len(specs)
            log.info("client %s: resubmitting %d outstanding task(s)", self.identity, len(specs))
            self._link.send_batched(Msg.SUBMIT, specs, self.clock(), protocol.WEIGHTS[Msg.SUBMIT])
        self._connected.set()

    def _send_new(self, now, final=False):
        if not self._link.ready:
            return
        with self._lock:
            incoming, self._incoming = self._incoming, []
            cancels, self._cancels = self._cancels, []
            pending = [self._pending.get(i) for i in incoming]
        pending = [p for p in pending if p is not None]
        if pending:
            sent = self._link.send_batched(Msg.SUBMIT, [p.spec for p in pending], now,
                                           protocol.WEIGHTS[Msg.SUBMIT])
            for p in pending[:sent]:
                p.sent = True
            if sent < len(pending):
                with self._lock:               # tried again at the next turn
                    self._incoming[:0] = [p.spec["id"] for p in pending[sent:]]
        if cancels:
            self._link.send_batched(Msg.CANCEL, cancels, now)
        if self._status and not self._status_asked:
            self._status_asked = self._link.send(
                Msg.STATUS, {} if self._report is None else {"report": self._report}, now)
        if self._logs and (final or len(self._logs) >= defaults.LOG_BATCH or
                           now - self._logs_sent >= defaults.LOG_DELAY):
            with self._lock:
                logs, self._logs = self._logs, []
            sent = self._link.send_batched(Msg.LOG, logs, now, protocol.WEIGHTS[Msg.LOG])
            if sent:
                self._logs_sent = now
            if sent < len(logs):
                with self._lock:
                    self._logs[:0] = logs[sent:]

    def _process(self, mtype, body):
        if mtype == Msg.RESULT:
            for result in body["results"]:
                self._resolve(result)
        elif mtype == Msg.OUTPUT:
            for item in body["items"]:
                self._output(item)
        elif mtype == Msg.STATE:
            with self._lock:
                waiting, self._status = self._status, []
            self._status_asked = False
            for future in waiting:
                future.set_result(body["status"])
        elif mtype == Msg.STARTED:
            for item in body["items"]:
                pending = self._pending.get(item["id"])
                if pending is not None and pending.on_start is not None:
                    pending.on_start(item["host"])
        elif mtype == Msg.NOTICE:
            if self.timeline is not None:            # suspensions, for the report
                self.timeline.notice(body.get("code"), body.get("ids") or [])
            self.on_notice(body["level"], body.get("code"), body["text"], body.get("ids") or [])
        elif mtype == Msg.ERROR:
            self.refused[body.get("code")] += 1
            log.warning("client %s: the TaskManager refused a message: %s", self.identity,
                        body["text"])
        elif mtype == Msg.BYE:             # its tasks go on; it is back within "wait"
            wait = body.get("wait", 0.0)
            self._away = (self.clock() + wait, wait, body.get("reason", ""))

    def _output(self, item):
        """Live output: handed to the task's ``on_output``; its result carries a copy."""
        pending = self._pending.get(item["id"])
        if pending is None or pending.on_output is None:
            return
        for line in item["lines"]:
            pending.on_output(item["stream"], line)

    def _resolve(self, body):
        if body.get("value_blob") and "value" not in body:
            self._fetch_value(body)
            return
        with self._lock:
            pending = self._pending.pop(body["id"], None)
        if pending is None:
            self.stats["duplicate_results"] += 1
            return
        self.stats["results"] += 1
        if self.timeline is not None:
            self.timeline.add(pending.spec.get("label") or pending.spec["id"],
                              pending.submitted, TaskResult(body))
        if pending.future.done():
            return
        if pending.settle is not None:
            pending.settle(pending.future, body)
        else:
            pending.future.set_result(TaskResult(body))

    def _fetch_value(self, body):
        """A python result too big for a message (``value_blob``): fetched, then
        resolved as if it had come inside the RESULT."""
        with self._lock:
            wanted = body["id"] in self._pending
        if wanted:
            self.files.fetch_value(body, self._resolve)
        else:
            self.stats["duplicate_results"] += 1

    def _fail_all(self, text, error=FarmUnreachable, permanent=True):
        if permanent:                    # later submits are refused with it
            self._error = self._error or text
            self.files.fail_all(text)
            self.batch_requests.fail_all(text)
        with self._lock:
            pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(error(text))
