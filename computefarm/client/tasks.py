"""What a submit gives back: a ``TaskFuture`` of a ``TaskResult``, and the
client thread's record of a task until its result comes (``_Pending``)."""

from concurrent.futures import Future


class TaskResult:
    """How a task ended. A failed task is a value, not an exception."""

    __slots__ = ("id", "status", "exit_code", "value", "error", "attempt", "duration",
                 "started", "host", "worker", "machine", "detail", "stdout", "stderr",
                 "records", "truncated", "code", "outputs", "staging", "copies", "winner",
                 "value_blob")

    def __init__(self, body):
        self.id = body["id"]
        self.status = body["status"]
        self.exit_code = body.get("exit_code")
        self.value = body.get("value")
        self.value_blob = body.get("value_blob")   # python: a big result, in the store
        self.error = body.get("error")
        self.attempt = body.get("attempt")
        self.duration = body.get("duration")
        self.started = body.get("started")   # its worker's clock (s since the epoch)
        self.host = body.get("host")
        self.worker = body.get("worker")
        self.machine = body.get("machine")
        self.detail = body.get("detail") or {}
        self.stdout, self.stderr, self.records = [], [], []
        for item in body.get("output") or ():
            stream = item["stream"]
            first = len(self.stderr if stream == "stderr" else self.stdout)
            (self.stderr if stream == "stderr" else self.stdout).extend(item["lines"])
            for record in item.get("records") or ():
                if isinstance(record, dict):
                    index = record.get("index", 0)
                    self.records.append(dict(record, stream=stream, index=first + index))
        self.truncated = body.get("truncated") or 0
        self.code = body.get("code")          # a wire Code when the farm failed it itself
        self.copies = body.get("copies") or 1  # 2: a straggler's copy ran too ...
        self.winner = body.get("winner") or 1  # ... and this result is the first (1) or copy
        self.outputs = body.get("outputs") or []   # staged: {path, digest, size, exec} stored
        self.staging = body.get("staging") or {}   # staged: fetch_s, upload_s, files, bytes, fetched

    @property
    def ok(self):
        return self.status == "ok"

    def __repr__(self):
        return "<TaskResult %s %s exit=%s on %s>" % (self.id, self.status, self.exit_code,
                                                    self.host)


class _Pending:
    __slots__ = ("future", "spec", "on_output", "on_start", "sent", "settle", "submitted")

    def __init__(self, future, spec, on_output, on_start, settle=None, submitted=None):
        self.future = future
        self.spec = spec
        self.on_output = on_output
        self.on_start = on_start
        self.sent = False
        self.settle = settle          # (future, RESULT item) -> None; None: a TaskResult
        self.submitted = submitted    # wall time of submit(), when the client keeps a timeline


class TaskFuture(Future):
    """A Future whose ``cancel()`` also stops the task on the farm."""

    def __init__(self, client, task_id):
        super().__init__()
        self.task_id = task_id
        self._client = client

    def cancel(self):
        if self.done():
            return False
        self._client._request_cancel(self.task_id)
        return super().cancel()
