"""Runs that fetch blobs into the machine's cache before the plugin's own run.

A ``FetchingRun`` pins and fetches the blobs a task needs (``_want``: each
from the TaskManager that sent the task, once however many tasks wait for it;
``staging.Staging.fetch``), starts the plugin's Run once they are all there
(``_begin``), and from then on hands the worker's calls on to it. A staged task
(``staging.StagedRun``: a project laid out in a scratch folder, outputs sent
back) and a task whose request names blobs (``blobruns.BlobRun``: a python
task's big function or arguments) are the two kinds.
"""

from .runs import Run


class FetchingRun(Run):
    """Fetching, then the plugin's Run (``inner``); ``outcome`` is set by a kind
    that has more to do once that run ended (a staged run's upload)."""

    def __init__(self, staging, transfers, plugin, task, now):
        super().__init__(task.id, task.attempt, task.timeout, now)
        self.staging, self.transfers = staging, transfers
        self.store = staging.open()
        self.plugin_, self.task = plugin, task
        self.inner = None               # the plugin's Run, once the blobs are here
        self.outcome = None             # the inner run's, while more is done after it
        self.waiting = 0                # blobs being fetched
        self.error = None               # why fetching failed
        self.pinned = []
        self.fetched = 0                # bytes the cache lacked
        self.on_started = None          # the worker's hook: the run's processes exist

    # -- fetching ----------------------------------------------------------------
    def _want(self, digest, size, then=None):
        """Fetch blob ``digest`` unless the cache has it; ``then()`` once it is there."""
        if self.pinned is None:
            return
        self.waiting += 1
        self.store.pin(digest)
        self.pinned.append(digest)
        if not self.staging.fetch(digest, size, self.transfers,
                                  lambda error: self._arrived(error, then)):
            self.fetched += size            # not in this machine's cache: over the wire

    def _arrived(self, error, then):
        self.waiting -= 1
        if self.stopping is not None or self.pinned is None:   # cancelled meanwhile
            return
        if error is not None:
            self.error = self.error or error
        elif then is not None and self.error is None:
            then()

    def _begin(self, request, now):
        """Start the plugin's run of ``request``: the blobs are here."""
        inner = self.plugin_.start(request, self.task, now)
        inner.on_close_fd = lambda fd: self.on_close_fd(fd)
        self.inner = inner
        self.fds, self.tree, self.lasting_tree = inner.fds, inner.tree, inner.lasting_tree
        self.started = now
        if self.on_started is not None:
            self.on_started(self)

    # -- what the worker asks of every run ------------------------------------------
    def readable(self, fd):
        return self.inner.readable(fd)

    def close_fd(self, fd):
        if self.inner is not None:
            self.inner.close_fd(fd)

    def drain(self):
        return self.inner.drain() if self.inner is not None else []

    def suspend(self, now):
        if self.inner is not None and self.outcome is None:
            self.inner.suspend(now)
        elif self.inner is None and self.stopping is None:
            self.suspended_at = now          # the blobs come; the task waits

    def resume(self, now):
        if self.inner is not None:
            self.inner.resume(now)
        self.suspended_at = None

    def stop(self, now, status, reason):
        if self.stopping is None:
            self.stopping = (status, reason)
            if self.inner is not None and self.outcome is None:
                self.inner.stop(now, status, reason)

    def busy(self):
        if self.inner is not None and self.outcome is None:
            return self.inner.busy()
        return self.stopping is not None or (self.inner is None and not self.waiting)

    def release(self):
        if self.inner is not None:
            self.inner.release()
        for digest in self.pinned or ():
            self.store.unpin(digest)
        self.pinned = None              # released: blobs arriving now are not this run's
