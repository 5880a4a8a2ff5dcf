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
from collections import OrderedDict

import zmq

from .. import defaults
from ..exceptions import AccessRefused, PluginError, ProtocolError
from ..hostinfo import host_name, machine_id
from ..service import Service, write_ready_file
from ..wire import protocol
from ..wire.link import Link, peer_id
from ..wire.protocol import Msg
from .plugin import PathMap, Task, load_plugin
from .taskrecords import TaskRecords

log = logging.getLogger(__name__)



class FarmWorker(Service):
    name = "worker"

    def __init__(self, address, capabilities, slots=None, machine=None, attributes=None,
                 path_map=None, context=None, clock=time.monotonic, curve=None,
                 ready_file=None):
        super().__init__()
        self.address = address
        self.capability_names = list(capabilities)
        self.slots = slots or os.cpu_count() or 1
        self.machine = machine or machine_id()
        self.extra_attributes = dict(attributes or {})
        self.paths = PathMap(path_map)
        self.curve = curve
        self.ready_file = ready_file   # rewritten at every welcome: {"welcomes", "incarnation"}
        self.welcomes = 0
        self.context = context or zmq.Context.instance()
        self.clock = clock
        self.identity = peer_id("worker")
        self.name = "worker %s" % self.identity
        self.plugins = {}
        self.capabilities = {}
        self.runs = {}                 # task id -> Run
        self.fd_runs = {}              # polled fd -> Run
        self.outbox = OrderedDict()    # task id -> result, until acknowledged
        self.unsent = []               # results not sent since the last (re)connection
        self.output = []               # OUTPUT items waiting for the next flush
        self.records = None            # TaskRecords: the trees of our running tasks
        self.recorded_slots = set()    # process groups of slots recorded there
        self.poller = None
        self.link = None
        self.wakeup = None

    # -- lifecycle -------------------------------------------------------------
    def initialize(self):
        self.records = TaskRecords(name=self.name, machine=self.machine, identity=self.identity)
        self.records.reap()            # trees a killed worker left here: gone before our hello
        for name in self.capability_names:
            plugin = load_plugin(name)(self.slots)
            attrs = plugin.attributes()
            attrs.update(self.extra_attributes)
            self.plugins[name] = plugin
            self.capabilities[name] = attrs
        self.poller = zmq.Poller()
        self._watch_children()
        now = self.clock()
        self.link = Link(self.context, self.address, "worker", self.hello, self.on_welcome,
                         self.poller, now, identity=self.identity, curve=self.curve)
        log.info("%s: %s, %d slot(s), connecting to %s", self.name,
                 ", ".join(self.capability_names), self.slots, self.address)

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

    def hello(self):
        return protocol.hello(
            "worker", self.identity, host_name(), self.machine, os.getpid(), slots=self.slots,
            capabilities=self.capabilities, version=_version(),
            running=[{"id": r.task_id, "attempt": r.attempt,
                      "capability": getattr(r, "capability", "")}
                     for r in self.runs.values() if r.stopping is None],
            # results not acknowledged yet: they are on their way, not lost
            finished=[{"id": r["id"], "attempt": r["attempt"]}
                      for r in itertools.islice(self.outbox.values(), protocol.MAX_BATCH)])

    def on_welcome(self, restarted):
        self.unsent = list(self.outbox.values())
        self.welcomes += 1
        if self.ready_file:
            write_ready_file(self.ready_file, json.dumps({
                "welcomes": self.welcomes, "incarnation": self.link.incarnation,
                "pid": os.getpid()}))
        if restarted:        # the new TaskManager knows nothing of tasks stopped for an owner
            for run in self.runs.values():
                run.resume(self.clock())

    def loop(self, now=None):
        busy = any(run.busy() for run in self.runs.values())
        timeout = 0.01 if busy else defaults.POLL_MAX
        events = self.poller.poll(timeout * 1000)
        now = self.clock() if now is None else now
        for sock, _ in events:
            if self.link.socket is not None and sock is self.link.socket:
                for mtype, body in self.link.receive(now):
                    self.process_taskmanager(mtype, body, now)
            elif self.wakeup is not None and sock == self.wakeup[0]:
                _drain_pipe(sock)
            elif sock in self.fd_runs:
                run = self.fd_runs[sock]
                self.emit(run, run.readable(sock))
        self.check_runs(now)
        self.flush(now)
        self.link.tick(now)
        if self.link.refused:
            raise AccessRefused(self.link.refused)

    def shutdown(self):
        """Stop every run (their trees killed), hand them back, say goodbye."""
        now = self.clock()
        handed_back = list(self.runs)
        for run in self.runs.values():
            run.stop(now, "cancelled", "worker shutting down")
        deadline = now + defaults.SHUTDOWN_WAIT
        while self.runs and self.clock() < deadline:
            self.poller.poll(20)
            for task_id, run in list(self.runs.items()):
                if run.poll(self.clock()) is not None:
                    self._forget(run)
        self.flush(self.clock())
        if self.link is not None:
            self.link.close(bye={"reason": "worker shutting down", "handed_back": handed_back})
        for plugin in self.plugins.values():
            plugin.close()
        for pgid in self.recorded_slots:
            self.records.remove("python slot %d" % pgid)
        if self.wakeup is not None:
            signal.set_wakeup_fd(-1)
            for fd in self.wakeup:
                os.close(fd)
        log.info("%s: stopped, %d task(s) handed back", self.name, len(handed_back))

    # -- messages from the TaskManager ------------------------------------------
    def process_taskmanager(self, mtype, body, now):
        if mtype == Msg.DISPATCH:
            for task_id in body.get("acks") or ():   # results it acknowledges on the way
                self.outbox.pop(task_id, None)
            for task in body["tasks"]:
                self.start(task, now)
        elif mtype == Msg.CANCEL:
            for task_id in body["ids"]:
                run = self.runs.get(task_id)
                if run is not None:
                    run.stop(now, "cancelled", "cancelled by its client")
        elif mtype in (Msg.SUSPEND, Msg.RESUME):
            for task_id in body["ids"]:
                run = self.runs.get(task_id)
                if run is None:
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
                self.outbox.pop(task_id, None)
        elif mtype == Msg.ERROR:
            log.warning("%s: the TaskManager refused a message: %s", self.name, body["text"])

    def start(self, spec, now):
        task_id, attempt = spec["id"], spec["attempt"]
        running = self.runs.get(task_id)
        if running is not None:          # dispatched again after a re-registration
            running.attempt = attempt
            return
        plugin = self.plugins.get(spec["capability"])
        try:
            if plugin is None:
                raise PluginError("this worker has no capability %r" % spec["capability"])
            request = self.paths.apply(protocol.unpack_body(spec["body"]))
            task = Task(task_id, attempt, spec.get("timeout"), self.identity)
            run = plugin.start(request, task, now)
        except (PluginError, ProtocolError) as exc:
            log.warning("%s: task %s refused: %s", self.name, task_id, exc)
            self.finished(protocol.result_item(task_id, attempt, "error", str(exc)))
            return
        except Exception as exc:  # a bug in a plugin: report it, keep serving
            log.exception("%s: plugin %r failed to start task %s", self.name,
                          spec["capability"], task_id)
            self.finished(protocol.result_item(task_id, attempt, "error", "worker plugin %r "
                                               "failed: %r" % (spec["capability"], exc)))
            return
        run.capability = spec["capability"]
        run.plugin, run.request = plugin, request
        run.captured, run.captured_size, run.truncated = [], 0, 0
        run.on_close_fd = self._unwatch
        self.runs[task_id] = run
        if run.tree is not None and not run.lasting_tree:
            self.records.add(task_id, attempt, run.tree)
        elif run.tree is not None and run.tree.pgid not in self.recorded_slots:
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
                continue
            self.emit(run, run.drain())
            if run.captured_size > defaults.RESULT_OUTPUT_MAX:
                self._trim_capture(run)
            outcome = run.plugin.finish(run.request, outcome)
            self._forget(run)
            extra = {key: value for key, value in (
                ("value", outcome.value), ("detail", outcome.detail),
                ("output", run.captured), ("truncated", run.truncated))
                if value}                    # small results for the many tiny tasks
            self.finished(protocol.result_item(
                run.task_id, run.attempt, outcome.status, outcome.error or None,
                outcome.exit_code, duration=now - run.started, **extra))

    def _forget(self, run):
        self.runs.pop(run.task_id, None)
        self.records.remove(run.task_id)
        for fd in list(run.fds):
            self._unwatch(fd)
        run.release()

    def finished(self, result):
        """Keep ``result`` (a RESULT item) until the TaskManager acknowledges it.
        One the TaskManager could not take in one message becomes an error."""
        if len(result.get("value") or b"") + defaults.RESULT_OUTPUT_MAX * 4 > \
                self.link.max_message:
            size = len(protocol.encode(Msg.RESULT, protocol.batch(Msg.RESULT, [result])))
            if size > self.link.max_message:
                result = protocol.result_item(
                    result["id"], result["attempt"], "error",
                    "the result is %d bytes, more than the TaskManager takes in one "
                    "message (taskmanager.max_message_size: %d)"
                    % (size, self.link.max_message), duration=result.get("duration", 0.0))
        self.outbox[result["id"]] = result
        self.unsent.append(result)

    def emit(self, run, lines):
        if not lines:
            return
        by_stream = {}
        for stream, line in lines:
            by_stream.setdefault(stream, []).append(line)
        for stream, text in by_stream.items():
            pieces, records, start = [], [], 0
            for index, line in enumerate(text):
                record = run.plugin.records(stream, line)
                if record is None:
                    continue
                if len(records) == protocol.MAX_RECORDS:   # the wire's limit per item
                    pieces.append((text[start:index], records))
                    records, start = [], index
                record["index"] = index - start
                records.append(record)
            pieces.append((text[start:] if start else text, records))
            for piece, piece_records in pieces:
                item = {"id": run.task_id, "attempt": run.attempt, "stream": stream,
                        "lines": piece, "level": run.plugin.default_level(stream),
                        "time": time.time()}
                tail = {"stream": stream, "lines": piece}
                if piece_records:
                    item["records"] = tail["records"] = piece_records
                self.output.append(item)
                self._capture(run, tail)

    def _capture(self, run, tail):
        """Keep the tail of the run's output for its result: about
        ``RESULT_OUTPUT_MAX`` characters (trimmed from the front once it holds twice
        that, so a flood costs linear time), consecutive lines of one stream in one
        piece, and no more pieces than a RESULT may carry."""
        captured = run.captured
        records = tail.get("records") or ()
        if captured and captured[-1]["stream"] == tail["stream"]:
            last = captured[-1]
            offset = len(last["lines"])
            last["lines"].extend(tail["lines"])
            if records:
                kept = last.setdefault("records", [])
                kept.extend(dict(record, index=record["index"] + offset) for record in records)
                del kept[:-protocol.MAX_RECORDS]     # the wire's limit: the latest stay
        else:
            piece = {"stream": tail["stream"], "lines": list(tail["lines"])}
            if records:
                piece["records"] = list(records)
            captured.append(piece)
        run.captured_size += sum(len(line) + 1 for line in tail["lines"])
        if run.captured_size > 2 * defaults.RESULT_OUTPUT_MAX or \
                len(captured) > protocol.MAX_TAILS:
            self._trim_capture(run)

    @staticmethod
    def _trim_capture(run):
        captured = run.captured
        if len(captured) > protocol.MAX_TAILS:      # merge the older half, by stream
            half, merged = protocol.MAX_TAILS // 2, {}
            for piece in captured[:half]:
                into = merged.setdefault(piece["stream"], {"stream": piece["stream"],
                                                           "lines": []})
                offset = len(into["lines"])
                into["lines"].extend(piece["lines"])
                if piece.get("records"):
                    into.setdefault("records", []).extend(
                        dict(r, index=r["index"] + offset) for r in piece["records"])
            for piece in merged.values():
                if piece.get("records"):
                    del piece["records"][:-protocol.MAX_RECORDS]
            captured[:half] = list(merged.values())
        while len(captured) > 1 and \
                run.captured_size - _size(captured[0]["lines"]) >= defaults.RESULT_OUTPUT_MAX:
            dropped = captured.pop(0)
            run.captured_size -= _size(dropped["lines"])
            run.truncated += len(dropped["lines"])
        first = captured[0]
        cut, excess = 0, run.captured_size - defaults.RESULT_OUTPUT_MAX
        while excess > 0 and cut < len(first["lines"]) - 1:
            excess -= len(first["lines"][cut]) + 1
            cut += 1
        if cut:
            run.captured_size -= _size(first["lines"][:cut])
            run.truncated += cut
            first["lines"] = first["lines"][cut:]
            records = [dict(r, index=r["index"] - cut) for r in first.get("records") or ()
                       if r["index"] >= cut]
            if records:
                first["records"] = records
            else:
                first.pop("records", None)

    def flush(self, now):
        if self.output:
            del self.output[:self.link.send_batched(Msg.OUTPUT, self.output, now,
                                                    protocol.WEIGHTS[Msg.OUTPUT])]
            self._trim_backlog()
        if self.unsent:
            del self.unsent[:self.link.send_batched(Msg.RESULT, self.unsent, now,
                                                    protocol.WEIGHTS[Msg.RESULT])]


    def _trim_backlog(self):
        lines = sum(len(item["lines"]) for item in self.output)
        dropped = 0
        while self.output and lines > defaults.OUTPUT_BACKLOG_LINES:
            item = self.output.pop(0)
            lines -= len(item["lines"])
            dropped += len(item["lines"])
        if dropped:
            log.warning("%s: TaskManager unreachable, dropped %d old output line(s)",
                        self.name, dropped)


def _size(lines):
    return sum(len(line) + 1 for line in lines)


def _drain_pipe(fd):
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _version():
    from .. import __version__
    return __version__
