"""FarmExecutor: a ``concurrent.futures.Executor`` over the farm's python workers."""

import collections
import concurrent.futures
import pickle
import threading
from concurrent.futures import Executor, InvalidStateError

from .. import defaults, pickling
from ..exceptions import RemoteError, UsageError
from ..storage.cas import digest_bytes
from ..wire.protocol import Code
from .client import Client

_EMPTY_ARGUMENTS = pickling.dumps(((), {}))
_REMEMBERED = 10000          # digests of blobs known to be in the TaskManager's store


class FarmExecutor(Executor):
    """``concurrent.futures.Executor`` that runs callables on the farm's python workers."""

    def __init__(self, address, requires=None, timeout=None, connect_timeout=10.0, **kwargs):
        self.client = Client(address, connect_timeout=connect_timeout, **kwargs)
        self.requires = requires
        self.timeout = timeout
        self._functions = pickling.FunctionPickles()
        self._futures = set()
        self._lock = threading.Lock()
        self._stored = collections.OrderedDict()   # digests of blobs the store has

    def submit(self, fn, /, *args, **kwargs):
        """A future of ``fn(*args, **kwargs)`` run on a python worker: the one the
        client resolves (one future and one lock a task, no callback between).
        Its ``cancel()`` stops the task on the farm too, until it has finished.

        ``fn`` is pickled once while it lives (``pickling.FunctionPickles``: a
        function of ``__main__`` keeps the globals it had at its first submit).
        A pickled function over FUNCTION_INLINE_MAX bytes, or arguments over
        PY_INLINE_MAX, are uploaded to the TaskManager's store (this call waits
        for that) and travel by digest: a function once, whatever the tasks."""
        function = self._functions.dumps(fn)
        arguments = _EMPTY_ARGUMENTS if not args and not kwargs \
            else pickling.dumps((args, kwargs))
        request, blobs = {}, {}
        if len(function) <= defaults.FUNCTION_INLINE_MAX:
            request["function"] = function
        else:
            blobs["function"] = self._store(function, self._functions.digest(fn, function),
                                            hold=True)
        if len(arguments) <= defaults.PY_INLINE_MAX:
            request["arguments"] = arguments
        else:
            blobs["arguments"] = self._store(arguments, digest_bytes(arguments))
        if blobs:
            request["blobs"] = blobs
        origin = pickling.origin(fn)
        if origin is not None:
            request["origin"] = origin
        future = self.client.submit("python", request, requires=self.requires,
                                    timeout=self.timeout, _settle=self._settle)
        with self._lock:
            self._futures.add(future)
        return future

    def _store(self, blob, digest, hold=False):
        """``{digest, size}`` of ``blob``, once the TaskManager's store has it
        (uploaded by the first task that sends it). ``hold``: the store keeps it
        while this executor is connected, other uploads evicted first (a
        function: its next tasks need it; not arguments, used once)."""
        with self._lock:
            known = digest in self._stored
            if known:
                self._stored.move_to_end(digest)
        if not known:
            if threading.current_thread() is self.client._thread:
                raise UsageError("FarmExecutor.submit: a function of more than %d bytes "
                                 "pickled, or arguments of more than %d, cannot be sent "
                                 "from a future's callback (it waits for their upload)"
                                 % (defaults.FUNCTION_INLINE_MAX, defaults.PY_INLINE_MAX))
            self.client.upload([(digest, len(blob), blob)], hold=hold).result()
            with self._lock:
                self._stored[digest] = True
                while len(self._stored) > _REMEMBERED:
                    self._stored.popitem(last=False)
        return {"digest": digest, "size": len(blob)}

    def _settle(self, future, body):
        """In the client's thread: the RESULT item of ``future``'s task (a value
        that came as a blob is in it by now: ``Client`` fetched it)."""
        with self._lock:
            self._futures.discard(future)
        error = None
        try:
            if body["status"] == "ok":
                value = pickle.loads(body.get("value"))
            else:
                if body.get("code") == Code.STAGING and Code.MISSING in (body.get("error")
                                                                         or ""):
                    self._lost(body["error"])
                error = _remote_error(body)
        except Exception as exc:          # the value does not unpickle here
            error = exc
        try:
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)
        except InvalidStateError:         # cancelled by its caller meanwhile
            pass

    def _lost(self, error):
        """The store lost a blob this executor had sent (evicted, or the store
        wiped): the digests the task's ``error`` names are forgotten, so the next
        task that needs one uploads it again instead of failing the same way."""
        with self._lock:
            for digest in [d for d in self._stored if d[:12] in error]:
                del self._stored[digest]

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Wait for the outstanding tasks (``wait``), or stop them on the farm
        (``cancel_futures``), then close the client."""
        with self._lock:
            futures = list(self._futures)
        if cancel_futures:
            for future in futures:
                future.cancel()
        elif wait:
            concurrent.futures.wait(futures)
        self.client.close()


def _remote_error(body):
    """The exception a failed task's RESULT item stands for: the one the callable
    raised (pickled by the slot), or a RemoteError saying how the task ended."""
    remote = None
    if body.get("value"):
        try:
            remote = pickling.cloudpickle().loads(body["value"])
        except Exception:
            remote = None
    if isinstance(remote, BaseException):
        remote.__cause__ = RemoteError(body.get("error") or body["status"])
        return remote
    return RemoteError("task %s %s on %s: %s" % (body["id"], body["status"], body.get("host"),
                                                 body.get("error")))
