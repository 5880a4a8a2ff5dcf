"""Tasks whose data is too big for a message: their blobs go by digest.

A request may name blobs, ``"blobs": {name: {"digest", "size"}}`` (a python
task's function over FUNCTION_INLINE_MAX, its arguments over PY_INLINE_MAX,
uploaded once by the client to the TaskManager's store). A ``BlobRun`` fetches
those this machine's cache lacks from the TaskManager that sent the task, pins
them while the task runs, and starts the plugin with their paths in the cache
(``blob_paths``: {name: path}); a python slot then reads them from there, and
loads a function once by its digest. A request that names none runs as any
other, at no cost.

A plugin with ``takes_blobs`` gets a ``spill`` path in each request, where it
may write a result too big for a message (a python slot does when the pickled
value passes PY_INLINE_MAX: ``Outcome.spilled``). ``SpilledResults`` hashes it
in the worker's hashing thread, moves it into the cache and uploads it to the
TaskManager's store, and only then sends the RESULT, which carries
``value_blob`` ({digest, size}) instead of ``value``: the client fetches it.
So what a task takes and gives is bounded by disks, not by MAX_MESSAGE_SIZE,
and a function sent with many tasks crosses the port once per machine.
"""


from ..exceptions import PluginError, StorageError
from ..storage.cas import is_digest, remove_file
from ..wire.protocol import Code
from .fetching import FetchingRun
from .runs import Outcome


def blobs_of(request):
    """The request's ``blobs``, checked: {name: (digest, size)}; PluginError names
    what is wrong."""
    blobs = request.get("blobs") or {}
    if not isinstance(blobs, dict):
        raise PluginError("request: blobs must map names to {digest, size}")
    checked = {}
    for name, ref in blobs.items():
        if not (isinstance(name, str) and isinstance(ref, dict)
                and isinstance(ref.get("digest"), str) and is_digest(ref["digest"])
                and isinstance(ref.get("size"), int) and ref["size"] >= 0):
            raise PluginError("request: blob %r must be {digest: a sha256, size: bytes}"
                              % (name,))
        checked[name] = (ref["digest"], ref["size"])
    return checked


class BlobRun(FetchingRun):
    """One task whose request names blobs: fetching them, then the plugin's own Run."""

    def __init__(self, staging, transfers, plugin, request, task, now):
        super().__init__(staging, transfers, plugin, task, now)
        self.blobs = blobs_of(request)
        self.call = request             # not ``request``: the worker keeps the task's there
        for digest, size in self.blobs.values():
            self._want(digest, size)

    def poll(self, now):
        if self.inner is not None:
            return self.inner.poll(now)
        if self.stopping is not None:
            return Outcome(self.stopping[0], error=self.stopping[1])
        if self.error is not None:
            return Outcome("error", error="fetching the task's blobs: %s" % self.error,
                           code=Code.STAGING)
        if self.waiting or self.suspended_at is not None:
            return None
        try:
            self._begin(dict(self.call, blob_paths={
                name: self.store.path(digest) for name, (digest, _) in self.blobs.items()}),
                now)
        except PluginError as exc:
            return Outcome("error", error=str(exc))
        return None


class SpilledResults:
    """Results a plugin spilled to a file (``Outcome.spilled``): each hashed in the
    worker's hashing thread (``Staging.hash_later``: a result of gigabytes must
    not stop the worker's loop and its heartbeats), moved into the machine's
    cache, uploaded to its TaskManager's store, then handed to
    ``finished(result, upstream)`` naming it in ``value_blob``. Its slot is free
    meanwhile: the next task does not wait."""

    def __init__(self, staging, finished):
        self.staging = staging
        self.finished = finished
        self.hashing = []               # (future of [(digest, size)], result, path, ...)
        self.uploading = 0              # results on their way to the store

    @property
    def busy(self):
        return bool(self.hashing) or self.uploading > 0

    def send(self, result, path, upstream, transfers):
        self.hashing.append((self.staging.hash_later([path]), result, path, upstream,
                             transfers))

    def pump(self):
        """(Each loop turn.) Upload the results hashed since the last turn."""
        if not self.hashing:
            return
        left = []
        for entry in self.hashing:
            if entry[0].done():
                self._hashed(*entry)
            else:
                left.append(entry)
        self.hashing = left

    def _hashed(self, future, result, path, upstream, transfers):
        try:
            [(digest, size)] = future.result()
            store = self.staging.open()
            store.adopt(path, digest, size)
        except (OSError, StorageError) as exc:
            remove_file(path)
            self._failed(result, "storing the result: %s" % exc, upstream)
            return
        store.pin(digest)
        self.uploading += 1
        result["value_blob"] = {"digest": digest, "size": size}

        def uploaded(error):
            self.uploading -= 1
            store.unpin(digest)
            if error:
                del result["value_blob"]
                self._failed(result, "uploading the result: %s" % error, upstream)
            else:
                self.finished(result, upstream)
        transfers.upload([(digest, size, store.path(digest))], uploaded)

    def _failed(self, result, error, upstream):
        result.update(status="error", error=error, code=Code.STAGING)
        self.finished(result, upstream)
