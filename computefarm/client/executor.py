"""FarmExecutor: a ``concurrent.futures.Executor`` over the farm's python workers."""

import concurrent.futures
import threading
from concurrent.futures import Executor, InvalidStateError

from .. import pickling
from ..exceptions import RemoteError
from .client import Client

_EMPTY_ARGUMENTS = pickling.dumps(((), {}))


class FarmExecutor(Executor):
    """``concurrent.futures.Executor`` that runs callables on the farm's python workers."""

    def __init__(self, address, requires=None, timeout=None, connect_timeout=10.0, **kwargs):
        self.client = Client(address, connect_timeout=connect_timeout, **kwargs)
        self.requires = requires
        self.timeout = timeout
        self._functions = pickling.FunctionPickles()
        self._futures = set()
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        """A future of ``fn(*args, **kwargs)`` run on a python worker: the one the
        client resolves (one future and one lock a task, no callback between).
        Its ``cancel()`` stops the task on the farm too, until it has finished.

        ``fn`` is pickled once while it lives (``pickling.FunctionPickles``: a
        function of ``__main__`` keeps the globals it had at its first submit)."""
        request = {"function": self._functions.dumps(fn),
                   "arguments": _EMPTY_ARGUMENTS if not args and not kwargs
                   else pickling.dumps((args, kwargs))}
        origin = pickling.origin(fn)
        if origin is not None:
            request["origin"] = origin
        future = self.client.submit("python", request, requires=self.requires,
                                    timeout=self.timeout, _settle=self._settle)
        with self._lock:
            self._futures.add(future)
        return future

    def _settle(self, future, body):
        """In the client's thread: the RESULT item of ``future``'s task."""
        with self._lock:
            self._futures.discard(future)
        try:
            if body["status"] == "ok":
                future.set_result(pickling.cloudpickle().loads(body.get("value")))
            else:
                future.set_exception(_remote_error(body))
        except InvalidStateError:         # cancelled by its caller meanwhile
            pass

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
