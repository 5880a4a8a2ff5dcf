"""Batches through a client's link: command lists the TaskManager keeps on disk.

``Client.submit_batch`` sends a batch's command lines in parts (at most
``BATCH_PARTS_IN_FLIGHT`` unanswered) and returns a ``Batch`` once every part
is in the TaskManager's database: from then on the batch needs no client, and
``Client.batch(id)`` attaches to it later, from any client of the same user.
Parts and queries not answered when the link drops are sent again after the
TaskManager welcomes this client back (a part is idempotent).
"""

import itertools
import secrets
import threading
import time
from concurrent.futures import Future

from .. import defaults, placeholders
from ..exceptions import FarmUnreachable, UsageError
from ..wire import protocol
from ..wire.protocol import Code, Msg
from ..wire.schemas import MAX_ID

DONE_STATES = ("finished", "cancelled")


class BatchError(UsageError):
    """The TaskManager refused a batch request (its text says why)."""


class Batches:
    """The batch requests of one client, run in its thread (``pump``, ``handle``)."""

    def __init__(self, wake):
        self.wake = wake
        self.lock = threading.Lock()
        self.refs = itertools.count(1)
        self.outbox = []             # (ref, Msg, body) to send
        self.waiting = {}            # ref -> (Msg, body, on_answer): sent, unanswered

    # -- the caller's side -----------------------------------------------------
    def submit(self, batch_id, spec, commands, replicas):
        """A Future of ``batch_id`` once every command is in the TaskManager's database."""
        future = Future()
        parts = list(_parts(commands))
        state = {"left": len(parts), "queue": []}
        lock = threading.Lock()

        def answered(body):
            if body.get("code"):
                if not future.done():
                    future.set_exception(_error(body))
                return
            with lock:
                state["left"] -= 1
                follow = state["queue"].pop(0) if state["queue"] else None
                finished = state["left"] == 0
            if follow is not None and not future.done():
                self._request(Msg.BATCH, follow, answered)
            if finished and not future.done():
                future.set_result(batch_id)

        bodies = [protocol.batch_part(0, batch_id, spec, len(commands), replicas, first,
                                      lines) for first, lines in parts]
        state["queue"] = bodies[defaults.BATCH_PARTS_IN_FLIGHT:]
        for body in bodies[:defaults.BATCH_PARTS_IN_FLIGHT]:
            self._request(Msg.BATCH, body, answered)
        return future

    def query(self, what, batch_id=None, after=None, limit=None):
        """A Future of the ANSWER's ``answer`` map (BatchError if refused)."""
        future = Future()

        def answered(body):
            if body.get("code"):
                future.set_exception(_error(body))
            else:
                future.set_result(body.get("answer") or {})
        self._request(Msg.QUERY, protocol.query(0, what, batch_id, after, limit), answered)
        return future

    def _request(self, mtype, body, on_answer):
        with self.lock:
            ref = next(self.refs)
            body["ref"] = ref
            self.outbox.append((ref, mtype, body, on_answer))
        self.wake()

    # -- the client's thread -------------------------------------------------------
    def pump(self, link, now):
        if not self.outbox or not link.ready:
            return
        with self.lock:
            outbox, self.outbox = self.outbox, []
        for index, (ref, mtype, body, on_answer) in enumerate(outbox):
            if not link.send(mtype, body, now):
                with self.lock:
                    self.outbox[:0] = outbox[index:]
                return
            self.waiting[ref] = (mtype, body, on_answer)

    def handle(self, mtype, body):
        if mtype not in (Msg.BATCHED, Msg.ANSWER):
            return False
        entry = self.waiting.pop(body["ref"], None)
        if entry is not None:
            entry[2](body)
        return True

    def reset(self):
        """Welcomed (again): what was not answered goes again."""
        with self.lock:
            again = [(ref,) + entry for ref, entry in sorted(self.waiting.items())]
            self.waiting = {}
            self.outbox[:0] = again

    def fail_all(self, text):
        with self.lock:
            entries = [e[3] for e in self.outbox] + [e[2] for e in self.waiting.values()]
            self.outbox, self.waiting = [], {}
        for on_answer in entries:
            on_answer({"code": Code.INTERNAL, "text": text, "unreachable": True})


def _error(body):
    """The exception an ANSWER or BATCHED refusal (or a lost link) raises."""
    if body.get("unreachable"):
        return FarmUnreachable(body["text"])
    return BatchError(body.get("text") or body["code"])


def _parts(commands):
    """``(first, lines)`` pieces of ``commands`` within a part's count and bytes."""
    first, size, lines = 0, 0, []
    for index, line in enumerate(commands):
        cost = len(line.encode()) + 8
        if lines and (len(lines) >= defaults.BATCH_PART or
                      size + cost > defaults.BATCH_PART_BYTES):
            yield first, lines
            first, size, lines = index, 0, []
        lines.append(line)
        size += cost
    if lines:
        yield first, lines


def batch_spec(capability="shell", requires=None, priority=0, weight=1.0, timeout=None,
               max_attempts=None, speculate=False, label=None, cwd=None, env=None):
    """The settings map of a batch (what every part carries), checked here."""
    if not isinstance(capability, str) or not capability or len(capability) > MAX_ID:
        raise UsageError("batch: capability must be a non-empty name")
    spec = {"capability": capability, "priority": int(priority), "weight": float(weight)}
    if not 0.001 <= spec["weight"] <= 1e6:
        raise UsageError("batch: weight must be a number from 0.001 to 1000000")
    if requires:
        if not all(isinstance(v, str) for v in requires.values()):
            raise UsageError("batch: requires must map names to strings")
        spec["requires"] = dict(requires)
    if timeout is not None:
        spec["timeout"] = float(timeout)
    if max_attempts is not None:
        spec["max_attempts"] = int(max_attempts)
    if speculate:
        spec["speculate"] = True
    if label:
        spec["label"] = str(label)
    if cwd:
        spec["cwd"] = str(cwd)
    if env:
        spec["env"] = {str(k): str(v) for k, v in env.items()}
    return spec


def check_commands(commands, where="command"):
    """UsageError naming the first command line that cannot run (``where`` names
    it: a file and line), before anything is sent."""
    for index, line in enumerate(commands):
        name = where(index) if callable(where) else "%s %d" % (where, index)
        if not isinstance(line, str) or not line.strip():
            raise UsageError("%s: an empty command" % name)
        if len(line) > defaults.BATCH_COMMAND_MAX:
            raise UsageError("%s: longer than %d characters" % (name,
                                                               defaults.BATCH_COMMAND_MAX))
        why = placeholders.problem(line)
        if why is not None:
            raise UsageError("%s: %s" % (name, why))


def new_batch_id():
    return "b" + secrets.token_hex(5)


class Batch:
    """A batch on the farm, by id: its status, results and output, to wait for or
    cancel; valid as long as ``client`` is open (attach anew with ``Client.batch``)."""

    def __init__(self, client, batch_id):
        self.client = client
        self.id = batch_id

    def __repr__(self):
        return "Batch(%r)" % self.id

    def status(self, timeout=30.0):
        """What the TaskManager says of it: state, tasks, finished, ok, failed,
        running, queued, counts per status, the running tasks and where."""
        return self.client._batch_query("status", self.id, timeout=timeout)

    def cancel(self, timeout=30.0):
        """Stop it: its status (``cancelling`` until its running tasks have stopped)."""
        return self.client._batch_query("cancel", self.id, timeout=timeout)

    def forget(self, timeout=30.0):
        """Remove it, once finished or cancelled, and its results from the
        TaskManager's database (BatchError while it runs)."""
        return self.client._batch_query("forget", self.id, timeout=timeout)

    def wait(self, timeout=None, interval=1.0, on_progress=None):
        """Block until it is finished or cancelled (its status); ``on_progress(status)``
        after each look. TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if on_progress is not None:
                on_progress(status)
            if status["state"] in DONE_STATES:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("batch %s not finished after %gs" % (self.id, timeout))
            time.sleep(interval if deadline is None
                       else max(0.0, min(interval, deadline - time.monotonic())))

    def results(self, output=False):
        """Each finished task's result, in task order: task, replica, status,
        exit_code, host, worker, duration, attempt, error (and output tails)."""
        after = -1
        while True:
            page = self.client._batch_query("output" if output else "results", self.id,
                                            after=after)
            if not page["items"]:
                return
            yield from page["items"]
            after = page["next"]

    def output_lines(self):
        """``(task, replica, stream, line)`` of every finished task's output, in task order."""
        for item in self.results(output=True):
            for tail in item["output"]:
                for line in tail["lines"]:
                    yield item["task"], item["replica"], tail["stream"], line

    def write_output(self, stream):
        """Write every finished task's output to ``stream``, one line each, prefixed
        by its task and replica (``[3.0] ...``; stderr lines ``[3.0!] ...``)."""
        count = 0
        for task, replica, kind, line in self.output_lines():
            stream.write("[%d.%d%s] %s\n" % (task, replica, "!" if kind == "stderr" else "",
                                             line))
            count += 1
        return count


def resolve(future, timeout, address):
    try:
        return future.result(timeout)
    except TimeoutError:
        raise FarmUnreachable("the TaskManager at %s did not answer a batch request within "
                              "%gs" % (address, timeout)) from None
