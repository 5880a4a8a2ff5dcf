"""farm-worker: runs the tasks the TaskManager dispatches, one plugin per capability.

The loop reads as a checklist: poll -> take messages (dispatch, cancel, ack) ->
read task output -> check runs (finished, timed out, stopping) -> send output
and results -> heartbeat or reconnect. A result stays in the outbox until the
TaskManager acknowledges it, so one finished while the TaskManager was away is
delivered after reconnection.
"""

import itertools
import json
import logging
import os
import signal
import threading
import time

import zmq

from .. import defaults, tracing
from ..exceptions import AccessRefused, PluginError, ProtocolError, StorageError
from ..hostinfo import host_name, machine_id
from ..service import Service, drain_pipe, write_ready_file
from ..wire import protocol
from ..wire.link import Link, peer_id
from ..wire.protocol import Msg
from . import capture
from .backlog import Backlog
from .blobruns import BlobRun, SpilledResults
from .pilot import PilotLimits
from .plugin import PathMap, Task, load_plugin
from .staging import StagedRun, Staging
from .taskrecords import TaskRecords
from .upstreams import Upstream, apportion

UPSTREAM = "_upstream"     # the key a dispatched task's spec keeps its TaskManager's index in

log = logging.getLogger(__name__)



class FarmWorker(Service):
    name = "worker"

    def __init__(self, address, capabilities, slots=None, machine=None, attributes=None,
                 path_map=None, context=None, clock=time.monotonic, curve=None,
                 ready_file=None, weights=None, cache=None, cache_size=defaults.CACHE_SIZE,
                 pilot=None):
        super().__init__()
        # one TaskManager's address, or several (``weights``: their shares of the slots)
        addresses = [address] if isinstance(address, str) else list(address)
        weights = list(weights or [1.0] * len(addresses))
        self.upstreams = [Upstream(i, a, w) for i, (a, w) in enumerate(zip(addresses, weights))]
        self.address = addresses[0]
        self.capability_names = list(capabilities)
        self.slots = slots or os.cpu_count() or 1
        self.machine = machine or machine_id()
        self.extra_attributes = dict(attributes or {})
        self.paths = PathMap(path_map)
        self.staging = Staging(self.paths, cache, cache_size)
        self.spilled = SpilledResults(self.staging, self.finished)   # big python results
        self.curve = curve             # keys: one set, or a list (one per TaskManager)
        self.ready_file = ready_file   # rewritten at every welcome: {"welcomes", "incarnation"}
        self.welcomes = 0
        self.context = context or zmq.Context.instance()
        self.clock = clock
        self.identity = peer_id("worker")
        self.name = "worker %s" % self.identity
        self.plugins = {}
        self.capabilities = {}
        self.runs = {}                 # task id -> Run (its ``upstream``: whose task it is)
        self.backlog = Backlog()       # dispatched tasks waiting for a slot
        self.fd_runs = {}              # polled fd -> Run
        self.records = None            # TaskRecords: the trees of our running tasks
        self.recorded_slots = set()    # process groups of slots recorded there
        self.poller = None
        self.wakeup = None
        self.pilot = pilot or PilotLimits()   # when a pilot drains and leaves on its own
        self.leaving = None              # why it leaves, for its BYE

    # -- lifecycle -------------------------------------------------------------
    def initialize(self):
        self.records = TaskRecords(name=self.name, machine=self.machine, identity=self.identity)
        self.records.reap()            # trees a killed worker left here: gone before our hello
        for name in self.capability_names:
            plugin = load_plugin(name)(self.slots)
            attrs = plugin.attributes()
            attrs.update(self.extra_attributes)
            if plugin.cache_attributes:       # what the action cache tells workers apart by
                attrs[protocol.CACHE_ATTRIBUTES] = ",".join(plugin.cache_attributes)
            self.plugins[name] = plugin
            self.capabilities[name] = attrs
        self.poller = zmq.Poller()
        self._watch_children()
        now = self.clock()
        self.lend()
        for up in self.upstreams:
            up.link = Link(self.context, up.address, "worker",
                           lambda up=up: self.hello(up),
                           lambda restarted, up=up: self.on_welcome(up, restarted),
                           self.poller, now, identity=self.identity,
                           curve=self.curve[up.index] if isinstance(self.curve, list)
                           else self.curve)
        log.info("%s: %s, %d slot(s), connecting to %s", self.name,
                 ", ".join(self.capability_names), self.slots,
                 ", ".join("%s (weight %g)" % (up.address, up.weight) for up in self.upstreams)
                 if len(self.upstreams) > 1 else self.address)

    def _watch_children(self):
        """Wake the loop when a task process exits (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.wakeup = (read, write)
        self.poller.register(read, zmq.POLLIN)

    def hello(self, up):
        """``up``'s HELLO: the slots lent it, its tasks here, its unacknowledged results."""
        extra = {"taskmanagers": [u.address for u in self.upstreams]} \
            if len(self.upstreams) > 1 else {}
        return protocol.hello(
            "worker", self.identity, host_name(), self.machine, os.getpid(), slots=up.lent,
            capabilities=self.capabilities, version=_version(),
            running=[{"id": r.task_id, "attempt": r.attempt,
                      "capability": getattr(r, "capability", "")}
                     for r in self.runs.values() if r.stopping is None
                     and r.upstream == up.index] +
                    [{"id": s["id"], "attempt": s["attempt"], "capability": s["capability"]}
                     for s in self.backlog.items() if s[UPSTREAM] == up.index],
            # results not acknowledged yet: they are on their way, not lost
            finished=[{"id": r["id"], "attempt": r["attempt"]}
                      for r in itertools.islice(up.outbox.values(), protocol.MAX_BATCH)],
            **extra)

    def on_welcome(self, up, restarted):
        up.unsent = list(up.outbox.values())
        up.transfers.reset()             # chunks in flight before are lost
        up.wanted = False                # until it says (DEMAND follows its WELCOME)
        self.welcomes += 1
        if self.ready_file:
            write_ready_file(self.ready_file, json.dumps({
                "welcomes": self.welcomes, "incarnation": up.link.incarnation,
                "pid": os.getpid()}))
        if restarted:        # the new TaskManager knows nothing of tasks stopped for an owner
            for run in self.runs.values():
                if run.upstream == up.index:
                    run.resume(self.clock())
            for spec in self.backlog.items():
                if spec[UPSTREAM] == up.index:
                    self.backlog.resume(spec["id"])

    def lend(self, now=None):
        """Share the slots among the TaskManagers (``upstreams.apportion``); tell
        those whose share changed (SLOTS). One TaskManager is lent them all."""
        draining = self.pilot.draining
        if len(self.upstreams) == 1:
            lent = [0 if draining else self.slots]
        else:
            holding = [0] * len(self.upstreams)
            for run in self.runs.values():
                holding[run.upstream] += 1
            for spec in self.backlog.items():
                holding[spec[UPSTREAM]] += 1
            lent = apportion(0 if draining else self.slots, [u.weight for u in self.upstreams],
                             [u.wanted and u.link is not None and u.link.ready
                              for u in self.upstreams], holding)
        for up, slots in zip(self.upstreams, lent):
            if slots != up.lent:
                told = up.lent is not None and up.link is not None and \
                    up.link.send(Msg.SLOTS, protocol.slots(slots, draining), now or self.clock())
                if told or up.lent is None or up.link is None or not up.link.ready:
                    up.lent = slots   # (a link not welcomed says it in its next hello)

    def loop(self, now=None):
        busy = any(run.busy() for run in self.runs.values()) or bool(self.spilled.hashing)
        timeout = 0.01 if busy else defaults.POLL_MAX
        if self.gathering is not None:
            timeout = min(timeout, max(0.0, self.gathering + defaults.RESULT_GATHER
                                       - self.clock()))
        if tracing.on:
            tracing.mark("poll")
        events = self.poller.poll(timeout * 1000)
        if tracing.on:
            tracing.mark("wake")
        now = self.clock() if now is None else now
        links = {up.link.socket: up for up in self.upstreams if up.link.socket is not None}
        for sock, _ in events:
            up = links.get(sock)
            if up is not None:
                for mtype, body in up.link.receive(now):
                    self.process_taskmanager(up, mtype, body, now)
            elif self.wakeup is not None and sock == self.wakeup[0]:
                drain_pipe(sock)
            elif sock in self.fd_runs:
                run = self.fd_runs[sock]
                self.emit(run, run.readable(sock))
        self.check_runs(now)
        self.spilled.pump()
        self.start_waiting(now)
        if self.pilot.active:
            self.check_pilot(now)
        self.lend(now)
        self.flush(now)
        for up in self.upstreams:
            if up.transfers.busy:
                up.transfers.pump(up.link, now)
            up.link.tick(now)
            if up.link.refused:
                raise AccessRefused(up.link.refused)

    def check_pilot(self, now):
        """Leave when the pilot's limits say so (pilot.py): tasks dispatched but not
        started are handed back in the BYE, so nothing waits on a worker gone."""
        busy = bool(self.runs) or self.spilled.busy or \
            any(up.outbox for up in self.upstreams) or (
            bool(self.backlog) and not self.pilot.draining)
        why = self.pilot.step(now, busy)
        if why is not None and not self.stop_requested:
            self.leaving = why
            self.request_stop("leaving: %s" % why)

    def shutdown(self):
        """Stop every run (their trees killed), hand them back, say goodbye."""
        now = self.clock()
        handed_back = [[] for _ in self.upstreams]
        for task_id, run in self.runs.items():
            handed_back[run.upstream].append(task_id)
        for spec in self.backlog.items():
            handed_back[spec[UPSTREAM]].append(spec["id"])
        self.backlog = Backlog()
        for run in self.runs.values():
            run.stop(now, "cancelled", "worker shutting down")
        deadline = now + defaults.SHUTDOWN_WAIT
        while self.runs and self.clock() < deadline:
            self.poller.poll(20)
            for task_id, run in list(self.runs.items()):
                if run.poll(self.clock()) is not None:
                    self._forget(run)
        self.flush(self.clock())
        for up in self.upstreams:
            if up.link is not None:
                up.link.close(bye={"reason": self.leaving or "worker shutting down",
                                   "handed_back": handed_back[up.index]})
        for plugin in self.plugins.values():
            plugin.close()
        self.staging.close()
        for pgid in self.recorded_slots:
            self.records.remove("python slot %d" % pgid)
        if self.wakeup is not None:
            signal.set_wakeup_fd(-1)
            for fd in self.wakeup:
                os.close(fd)
        log.info("%s: stopped, %d task(s) handed back", self.name, sum(map(len, handed_back)))

    # -- messages from the TaskManager ------------------------------------------
    def process_taskmanager(self, up, mtype, body, now):
        """A message from TaskManager ``up`` (task ids are unique across them: each
        begins with its client's scope and id)."""
        if up.transfers.handle(mtype, body, now):
            return
        if mtype == Msg.DISPATCH:
            for task_id in body.get("acks") or ():   # results it acknowledges on the way
                up.outbox.pop(task_id, None)
            for task in body["tasks"]:
                task[UPSTREAM] = up.index
                self.take(task, now)
        elif mtype == Msg.CANCEL:
            for task_id in body["ids"]:
                run = self.runs.get(task_id)
                if run is not None:
                    run.stop(now, "cancelled", "cancelled by its client")
                elif task_id in self.backlog:
                    spec = self.backlog.remove(task_id)
                    self.finished(protocol.result_item(task_id, spec["attempt"], "cancelled",
                                                       "cancelled by its client"),
                                  spec[UPSTREAM])
        elif mtype in (Msg.SUSPEND, Msg.RESUME):
            for task_id in body["ids"]:
                run = self.runs.get(task_id)
                if run is None:
                    if mtype == Msg.SUSPEND:
                        self.backlog.suspend(task_id)
                    else:
                        self.backlog.resume(task_id)
                    continue
                if mtype == Msg.SUSPEND:
                    log.info("%s: suspending task %s: the machine's owner is back",
                             self.name, task_id)
                    run.suspend(now)
                else:
                    log.info("%s: resuming task %s", self.name, task_id)
                    run.resume(now)
        elif mtype == Msg.ACK:
            for task_id in body["ids"]:
                up.outbox.pop(task_id, None)
        elif mtype == Msg.DEMAND:
            up.wanted = body["wanted"]
        elif mtype == Msg.ERROR:
            log.warning("%s: the TaskManager refused a message: %s", self.name, body["text"])

    def take(self, spec, now):
        """A dispatched task: started if a slot is free, else it waits its turn."""
        running = self.runs.get(spec["id"])
        if running is not None:          # dispatched again after a re-registration
            running.attempt = spec["attempt"]
        elif len(self.runs) < self.slots and not self.backlog and not self.pilot.draining:
            self.start(spec, now)
        else:
            self.backlog.add(spec)

    def start_waiting(self, now):
        while self.backlog and len(self.runs) < self.slots and not self.pilot.draining:
            spec = self.backlog.next()
            if spec is None:
                break                    # the rest are suspended for the owner
            self.start(spec, now)

    def start(self, spec, now):
        task_id, attempt = spec["id"], spec["attempt"]
        plugin = self.plugins.get(spec["capability"])
        try:
            if plugin is None:
                raise PluginError("this worker has no capability %r" % spec["capability"])
            request = protocol.unpack_body(spec["body"])
            task = Task(task_id, attempt, spec.get("timeout"), self.identity)
            if plugin.takes_blobs:           # where a result too big for a message goes
                request["spill"] = self.staging.spill_path()
            stage = request.get("stage")
            if stage is not None and not self.staging.in_place(stage):
                run = StagedRun(self.staging, self.upstreams[spec[UPSTREAM]].transfers,
                                plugin, request, task, now)
                run.on_started = self._watch
            else:
                request.pop("stage", None)
                if request.get("blobs"):
                    run = BlobRun(self.staging, self.upstreams[spec[UPSTREAM]].transfers,
                                  plugin, self.paths.apply(request), task, now)
                    run.on_started = self._watch
                else:
                    run = plugin.start(self.paths.apply(request), task, now)
        except (PluginError, ProtocolError, StorageError) as exc:
            log.warning("%s: task %s refused: %s", self.name, task_id, exc)
            self.finished(protocol.result_item(task_id, attempt, "error", str(exc)),
                          spec[UPSTREAM])
            return
        except Exception as exc:  # a bug in a plugin: report it, keep serving
            log.exception("%s: plugin %r failed to start task %s", self.name,
                          spec["capability"], task_id)
            self.finished(protocol.result_item(task_id, attempt, "error", "worker plugin %r "
                                               "failed: %r" % (spec["capability"], exc)),
                          spec[UPSTREAM])
            return
        run.capability = spec["capability"]
        run.upstream = spec[UPSTREAM]
        run.plugin, run.request = plugin, request
        run.captured, run.captured_size, run.truncated = [], 0, 0
        run.on_close_fd = self._unwatch
        self.runs[task_id] = run
        self._watch(run)
        self.pilot.took()

    def _watch(self, run):
        """Poll ``run``'s output (at its start; a staged run's once its inputs are
        laid out) and record a python slot's tree on its first task. A task's own
        tree is recorded by ``check_runs`` once it has run TASK_RECORD_AFTER: the many
        tasks of a few milliseconds never cost a record."""
        if run.tree is not None and run.lasting_tree and \
                run.tree.pgid not in self.recorded_slots:
            self.recorded_slots.add(run.tree.pgid)     # a slot, recorded on its first task
            self.records.add("python slot %d" % run.tree.pgid, 0, run.tree)
        for fd in run.fds:
            self.fd_runs[fd] = run
            self.poller.register(fd, zmq.POLLIN)

    def _unwatch(self, fd):
        if self.fd_runs.pop(fd, None) is not None:
            self.poller.unregister(fd)

    # -- runs ------------------------------------------------------------------
    def check_runs(self, now):
        for run in list(self.runs.values()):
            outcome = run.poll(now)
            if outcome is None:
                if run.tree is not None and not run.lasting_tree and not run.recorded \
                        and now - run.started >= defaults.TASK_RECORD_AFTER:
                    self.records.add(run.task_id, run.attempt, run.tree)
                    run.recorded = True
                continue
            self.emit(run, run.drain())
            if run.captured_size > defaults.RESULT_OUTPUT_MAX:
                capture.trim(run)
            outcome = run.plugin.finish(run.request, outcome)
            self._forget(run)
            extra = {key: value for key, value in (
                ("value", outcome.value), ("detail", outcome.detail),
                ("output", run.captured), ("truncated", run.truncated),
                ("outputs", outcome.outputs), ("staging", outcome.staging))
                if value}                    # small results for the many tiny tasks
            duration = outcome.duration if outcome.duration is not None else now - run.started
            result = protocol.result_item(
                run.task_id, run.attempt, outcome.status, outcome.error or None,
                outcome.exit_code, code=outcome.code, duration=duration,
                # the run's start on the wall clock, for a timeline: from the
                # service clock read now, not this turn's ``now``, so a task that
                # started as this one ended never seems to overlap it
                started=time.time() - (self.clock() - run.started), **extra)
            if outcome.spilled is not None:          # sent once the store has its value
                self.spilled.send(result, outcome.spilled, run.upstream,
                                  self.upstreams[run.upstream].transfers)
            else:
                self.finished(result, run.upstream)

    def _forget(self, run):
        self.runs.pop(run.task_id, None)
        self.records.remove(run.task_id)
        for fd in list(run.fds):
            self._unwatch(fd)
        run.release()

    def finished(self, result, upstream):
        """Keep ``result`` (a RESULT item) until the TaskManager whose task it was
        (``upstream``, its index) acknowledges it."""
        self.upstreams[upstream].keep(result)

    def emit(self, run, lines):
        """Queue what ``run`` printed for the next flush, and keep its tail."""
        if lines:
            self.upstreams[run.upstream].output.extend(
                capture.output_items(run, lines, time.time()))

    def flush(self, now):
        for up in self.upstreams:
            up.flush(now, bool(self.backlog), self.name)

    @property
    def gathering(self):
        """When the oldest result kept back was (the loop's poll wakes for it)."""
        kept = [up.gathering for up in self.upstreams if up.gathering is not None]
        return min(kept) if kept else None


def _version():
    from .. import __version__
    return __version__
