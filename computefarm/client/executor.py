"""FarmExecutor: a ``concurrent.futures.Executor`` over the farm's python workers."""

import threading
from concurrent.futures import Executor, Future

import cloudpickle

from ..exceptions import RemoteError
from .client import Client


class FarmExecutor(Executor):
    """``concurrent.futures.Executor`` that runs callables on the farm's python workers."""

    def __init__(self, address, requires=None, timeout=None, connect_timeout=10.0, **kwargs):
        self.client = Client(address, connect_timeout=connect_timeout, **kwargs)
        self.requires = requires
        self.timeout = timeout
        self._futures = set()
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        payload = cloudpickle.dumps((fn, args, kwargs))
        inner = self.client.submit("python", {"payload": payload}, requires=self.requires,
                                   timeout=self.timeout)
        outer = Future()
        outer.set_running_or_notify_cancel()
        with self._lock:
            self._futures.add(outer)
        inner.add_done_callback(lambda f: self._settle(f, outer))
        return outer

    def _settle(self, inner, outer):
        with self._lock:
            self._futures.discard(outer)
        try:
            result = inner.result()
        except BaseException as exc:
            outer.set_exception(exc)
            return
        if result.ok:
            outer.set_result(cloudpickle.loads(result.value))
            return
        remote = None
        if result.value:
            try:
                remote = cloudpickle.loads(result.value)
            except Exception:
                remote = None
        if isinstance(remote, BaseException):
            remote.__cause__ = RemoteError(result.error or result.status)
            outer.set_exception(remote)
        else:
            outer.set_exception(RemoteError("task %s %s on %s: %s" % (
                result.id, result.status, result.host, result.error)))

    def shutdown(self, wait=True, *, cancel_futures=False):
        if wait and not cancel_futures:
            with self._lock:
                futures = list(self._futures)
            from concurrent.futures import wait as wait_for
            wait_for(futures)
        self.client.close()
