"""``python``: call a Python callable sent by a client.

Request: ``{"payload": cloudpickle.dumps((fn, args, kwargs)), "cwd": ..., "env": ...}``,
or, instead of ``payload``, ``"function": cloudpickle.dumps(fn)`` and ``"arguments":
pickle of (args, kwargs)``: the function's bytes are the same from task to task
(FarmExecutor pickles each callable once), and a slot unpickles them once.
Either of those two may instead be a blob (``"blobs": {"function": {digest,
size}}``, fetched into the machine's cache by the worker's ``BlobRun``: the slot
reads it there), and a result longer than PY_INLINE_MAX is spilled to a file
the worker uploads (``blobruns``).
Both are decoded only inside a slot process (``computefarm.worker.pyslot``), one
per slot, started ahead and reused from task to task so a task costs no process
start. Each slot is the leader of its own session: a timeout or cancel kills the
slot's whole tree and a fresh slot takes its place. A slot dies with its worker
(``pyslot.die_with``), even one in the middle of a task. A task's output ends
with it, an unterminated last line included (``SlotRun.drain``); what a slot prints
between two tasks (a thread a task left running) is dropped before the next
task starts, never given to it (it may be another user's); what such a thread
prints while the next task runs cannot be told from that task's own output. A
slot found dead, or no longer reading its requests, when a task would start on
it is replaced by a new one that runs the task.
"""

import logging
import os
import select
import sys

from computefarm import defaults, tracing
from computefarm.exceptions import PluginError
from computefarm.storage.cas import remove_file
from computefarm.worker import pyslot
from computefarm.worker.plugin import WorkerPlugin
from computefarm.worker.processes import Tree, spawn
from computefarm.worker.runs import LineSplitter, Outcome, Run

_CALL = ("payload", "function", "arguments", "origin", "spill")   # what the slot needs

log = logging.getLogger(__name__)


class Slot:
    """One slot process and the pipes to it."""

    def __init__(self):
        req_r, self.req_w = os.pipe()
        self.res_r, res_w = os.pipe()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self.proc = spawn([sys.executable, "-m", "computefarm.worker.pyslot", str(req_r),
                               str(res_w), str(os.getpid())], env=env, pass_fds=(req_r, res_w))
        finally:
            os.close(req_r)
            os.close(res_w)
        os.set_blocking(self.res_r, False)
        self.tree = Tree(self.proc.pid)
        self.output = {self.proc.stdout.fileno(): ("stdout", LineSplitter()),
                       self.proc.stderr.fileno(): ("stderr", LineSplitter())}
        self.between = select.poll()   # its output pipes, looked at before each task
        for fd in self.output:
            self.between.register(fd, select.POLLIN)
        self.healthy = True

    def drop_stray_output(self):
        """Bytes the slot printed since its last task returned (a thread that task
        left running), read and dropped: never the next task's output, which may
        be another user's. How many."""
        dropped = 0
        for fd, _ in self.between.poll(0):
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:               # BlockingIOError: nothing more
                    break
                if not data:
                    break
                dropped += len(data)
        return dropped

    def send(self, request):
        data = pyslot.frame(request)
        if tracing.on:
            tracing.mark("request")
        view = memoryview(data)
        while view:
            written = os.write(self.req_w, view)
            view = view[written:]

    def close(self):
        self.healthy = False
        self.tree.kill()
        try:
            self.proc.wait(timeout=5)
        except Exception:
            pass
        for fd in (self.req_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc.stdout.close()
        self.proc.stderr.close()


class SlotRun(Run):
    """One task on one slot; the slot's pipes are polled only while it runs."""

    lasting_tree = True               # the slot's: recorded once, not per task

    def __init__(self, pool, slot, task, request, now):
        super().__init__(task.id, task.attempt, task.timeout, now)
        self.pool = pool
        self.slot = slot
        self.tree = slot.tree
        self.fds = dict(slot.output)
        self.fds[slot.res_r] = ("result", None)
        self.buffer = bytearray()      # the reply frame, growing in place (linear)
        self.reply = None
        self.dead = False
        call = {key: request[key] for key in _CALL if key in request}
        for name, path in (request.get("blob_paths") or {}).items():
            call[name + "_path"] = path            # function_path, arguments_path
        call["cwd"], call["env"] = request.get("cwd"), task.environ(request.get("env"), base={})
        self.spill = request.get("spill")
        slot.send(call)

    def readable(self, fd):
        if fd != self.slot.res_r:
            return super().readable(fd)
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not data:
                self.dead = True
                break
            self.buffer += data
        if len(self.buffer) >= 4:
            size = int.from_bytes(self.buffer[:4], "big")
            if len(self.buffer) >= 4 + size:
                self.reply = pyslot.msgpack.unpackb(memoryview(self.buffer)[4:4 + size],
                                                    raw=False)
                if tracing.on:
                    tracing.mark("reply")
        return []

    def close_fd(self, fd):
        # The slot outlives the run: its pipes are closed with the slot, not here.
        self.fds.pop(fd, None)
        self.on_close_fd(fd)
        self.dead = True

    def drain(self):
        """What the task printed that is still in the slot's pipes (read only where
        there is some), and its last lines without a newline: the slot outlives
        the task, so nothing the task printed may be left for the next one."""
        lines = []
        for fd, _ in self.slot.between.poll(0):
            if fd in self.fds:
                lines.extend(self.readable(fd))
        for stream, splitter in self.slot.output.values():
            lines.extend((stream, line) for line in splitter.close())
        return lines

    def poll(self, now):
        if self.timed_out(now):
            self.stop(now, "timeout", "timed out after %gs" % self.timeout)
        if self.stopping is not None:
            if now >= self.kill_at:
                self.slot.tree.kill()
                self.kill_at = now + defaults.KILL_GRACE
            if self.slot.proc.poll() is None or self.slot.tree.alive():
                return None
            self.slot.healthy = False
            return Outcome(self.stopping[0], error=self.stopping[1])
        if self.reply is not None:
            outcome = Outcome(self.reply["status"], value=self.reply.get("value"),
                              error=self.reply.get("error"))
            spilled = self.reply.get("spilled")
            if spilled is not None and spilled == self.spill:
                outcome.spilled = spilled
            return outcome
        if self.dead or self.slot.proc.poll() is not None:
            self.slot.healthy = False
            self.slot.tree.kill()
            code = self.slot.proc.wait()
            return Outcome("failed", code, error="the python process running the task "
                           "exited with code %s" % code)
        return None

    def busy(self):
        return self.stopping is not None or self.dead

    def release(self):
        if self.stopping is not None and self.spill:   # it may have spilled meanwhile
            remove_file(self.spill)
        self.pool.give_back(self.slot)


class PythonWorker(WorkerPlugin):
    capability = "python"
    cache_attributes = ()             # a callable's outcome is its own business
    takes_blobs = True                # its big function, arguments, result: blobruns

    def __init__(self, slots, options=None):
        super().__init__(slots, options)
        self.idle = [Slot() for _ in range(slots)]

    def attributes(self):
        attrs = super().attributes()
        attrs["version"] = "%d.%d.%d" % sys.version_info[:3]
        attrs["implementation"] = sys.implementation.name
        return attrs

    def start(self, request, task, now):
        fetched = request.get("blob_paths") or {}
        if request.get("blobs") and not fetched:
            raise PluginError("python request names blobs, which a task staged on this "
                              "machine does not fetch: send its function and arguments "
                              "inside it")
        if not (isinstance(request.get("payload"), bytes) or all(
                isinstance(request.get(name), bytes) or isinstance(fetched.get(name), str)
                for name in ("function", "arguments"))):
            raise PluginError("python request needs 'payload' (the pickled callable and its "
                              "arguments), or 'function' and 'arguments' (bytes, or blobs)")
        slot = self._idle_slot()
        dropped = slot.drop_stray_output()
        if dropped:
            log.warning("python slot %d: dropped %d byte(s) printed after its last task "
                        "returned (a thread it left running?), before starting task %s",
                        slot.proc.pid, dropped, task.id)
        try:
            return SlotRun(self, slot, task, request, now)
        except BrokenPipeError:        # it stopped reading after the check above
            log.warning("python slot %d no longer reads its requests (it died as task %s "
                        "was handed to it?): starting another", slot.proc.pid, task.id)
            slot.close()
            return SlotRun(self, Slot(), task, request, now)

    def _idle_slot(self):
        """An idle slot that is alive, else a new one: one killed while idle (by the
        OOM killer, or a person) is replaced, not handed the task."""
        while self.idle:
            slot = self.idle.pop()
            if slot.proc.poll() is None:
                return slot
            log.warning("python slot %d ended while idle (exit code %s): starting another",
                        slot.proc.pid, slot.proc.returncode)
            slot.close()
        return Slot()

    def give_back(self, slot):
        if slot.healthy and len(self.idle) < self.slots:
            self.idle.append(slot)
        else:
            slot.close()

    def close(self):
        for slot in self.idle:
            slot.close()
        self.idle = []
