"""Staged tasks: run where the user's files are not, from the machine's blob cache.

A request with a ``stage`` map comes from a client whose files this machine
may not see::

    {"root": "/home/ann/project",          # the project on the client's machine
     "machine": "...",                     # that machine's id
     "tree": {"digest": ..., "size": ...}, # the project's manifest (storage.trees)
     "files": [{"path", "digest", "size", "exec"}, ...],   # more inputs (over the tree's)
     "outputs": ["build/app", ...]}        # files to bring back (relative to the root)

When this worker sees that very folder (the same machine, device and inode,
whatever ``--machine`` name it was given) or its farm.yaml path_map maps the
root, the task runs in place, as any other. Otherwise a ``StagedRun`` takes the slot:
it fetches the blobs the cache lacks from the TaskManager that sent the task,
lays the tree out in a private scratch folder (hard links from the cache),
runs the plugin's command there with the root's paths rewritten, hashes the
outputs in the worker's hashing thread (``hash_later``: gigabytes of them must
not stop its loop and heartbeats), moves them into the cache, uploads them,
and only then finishes; the scratch folder goes with it.
"""

import concurrent.futures
import logging
import os
import shutil

from .. import defaults
from ..exceptions import PluginError, StorageError
from ..hostinfo import machine_id
from ..storage import trees
from ..storage.cas import BlobStore, digest_file, location, pid_alive
from ..wire.protocol import Code
from .fetching import FetchingRun
from .plugin import PathMap
from .runs import Outcome

log = logging.getLogger(__name__)


class Staging:
    """This worker's cache (shared with the machine's other workers) and scratch."""

    def __init__(self, paths, cache=None, cache_size=defaults.CACHE_SIZE):
        self.machine = machine_id()             # the real one, not a --machine name
        self.paths = paths                      # plugin.PathMap (farm.yaml path_map)
        self.cache_dir = location(cache, defaults.CACHE_ENV, defaults.CACHE_DIR)
        self.cache_size = cache_size
        self.store = None                       # opened at the first staged task
        self.fetching = {}                      # digest -> callbacks waiting for it
        self.serial = 0
        self.spill_dir = None
        self.fetched = 0                        # bytes fetched into the cache
        self.hasher = None                      # the hashing thread (hash_later)

    def in_place(self, stage):
        """Whether a staged request can run where it is (this is its machine, or
        path_map maps its root)."""
        root = stage.get("root")
        if not isinstance(root, str) or stage.get("away"):   # away: inputs not in it
            return False
        if self.paths.path(root) != root:
            return True
        if stage.get("machine") != self.machine:
            return False
        try:
            st = os.stat(root)
        except OSError:
            return False
        return stage.get("root_id") == [st.st_dev, st.st_ino]

    def open(self):
        if self.store is None:
            self.store = BlobStore(self.cache_dir, self.cache_size)
            scratch = os.path.join(self.cache_dir, "scratch")
            os.makedirs(scratch, exist_ok=True)
            for name in os.listdir(scratch):    # what a killed worker left
                if not pid_alive(name.split("-")[0]):
                    shutil.rmtree(os.path.join(scratch, name), ignore_errors=True)
        return self.store

    def hash_later(self, paths):
        """A future of ``[(digest, size)]`` of the files ``paths``, read in this
        worker's hashing thread: gigabytes of outputs must not stop its loop and
        its heartbeats."""
        if self.hasher is None:
            self.hasher = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="hashing")
        return self.hasher.submit(lambda: [digest_file(path) for path in paths])

    def close(self):
        if self.hasher is not None:
            self.hasher.shutdown(wait=False, cancel_futures=True)

    def spill_path(self):
        """Where a task may spill its result (``blobruns``): a name in this worker's
        folder of results, made by whoever writes there first."""
        self.serial += 1
        if self.spill_dir is None:       # named once: a python task asks for one each
            self.spill_dir = os.path.join(self.cache_dir, "scratch",
                                          "%d-results" % os.getpid(), "")
        return "%s%d.pickle" % (self.spill_dir, self.serial)

    def scratch(self):
        self.serial += 1
        path = os.path.join(self.cache_dir, "scratch", "%d-%d" % (os.getpid(), self.serial))
        os.makedirs(path)
        return path

    def fetch(self, digest, size, transfers, done):
        """``done(error)`` once blob ``digest`` is in the cache (at once if it is);
        True when it was there already."""
        if self.store.use(digest):
            done(None)
            return True
        waiting = self.fetching.get(digest)
        if waiting is not None:
            waiting.append(done)
            return False
        self.fetching[digest] = [done]
        try:
            sink = self.store.receive(digest, size)
        except StorageError as exc:
            self._fetched(digest, str(exc))
            return False

        def arrived(error):
            if error is None:
                self.fetched += size
                if not self.store.commit(sink):
                    error = "blob %s arrived corrupt" % digest[:12]
            else:
                sink.abort()
            self._fetched(digest, error)
        transfers.download(digest, size, sink, arrived)
        return False

    def _fetched(self, digest, error):
        for done in self.fetching.pop(digest, ()):
            done(error)


def stage_of(request):
    """The request's ``stage`` map, checked: ``(root, tree or None, Manifest of the
    files, outputs)``; PluginError names what is wrong."""
    stage = request.get("stage")
    try:
        root = stage["root"]
        if not isinstance(root, str) or not root.startswith("/"):
            raise ValueError("root must be an absolute path")
        tree = stage.get("tree")
        if tree is not None and not (isinstance(tree, dict) and
                                     isinstance(tree.get("digest"), str) and
                                     isinstance(tree.get("size"), int)):
            raise ValueError("tree must be {digest, size}")
        manifest = trees.Manifest()
        for entry in stage.get("files") or ():
            manifest.files[trees.safe_path(entry["path"], "stage.files")] = (
                entry["digest"], int(entry["size"]), bool(entry.get("exec")))
        outputs = [trees.safe_path(path, "stage.outputs") for path in stage.get("outputs") or ()]
    except (KeyError, TypeError, ValueError, StorageError) as exc:
        raise PluginError("request: stage is not valid: %s" % (exc,)) from None
    return root, tree, manifest, outputs


class StagedRun(FetchingRun):
    """One staged task: fetching, then running (the plugin's own Run), then
    uploading its outputs."""

    def __init__(self, staging, transfers, plugin, request, task, now):
        super().__init__(staging, transfers, plugin, task, now)
        self.root, tree, self.manifest, self.outputs = stage_of(request)
        # not ``request``: the worker keeps the task's own there (plugin.finish)
        self.call = {key: value for key, value in request.items() if key != "stage"}
        self.linked = {}
        self.directory = None           # the scratch folder
        self.uploaded = None            # None: uploading; else the upload's error or False
        self.timing = {}                # fetched_s, uploading_at, upload_s
        self.found = []                 # its outputs that exist: (path, full, executable)
        self.hashing = None             # the future of their digests (Staging.hash_later)
        if tree is not None:
            self._want(tree["digest"], tree["size"], lambda: self._tree(tree["digest"]))
        else:
            self._want_files()

    def _tree(self, digest):
        try:
            with open(self.store.path(digest), "rb") as handle:
                tree = trees.decode(handle.read(), "the task's tree")
        except (OSError, StorageError) as exc:
            self.error = str(exc)
            return
        tree.files.update(self.manifest.files)       # the task's own files win
        self.manifest = tree
        self._want_files()

    def _want_files(self):
        wanted = {}
        for digest, size, _ in self.manifest.files.values():
            wanted[digest] = size
        for digest, size in wanted.items():
            self._want(digest, size)

    # -- running -------------------------------------------------------------------
    def _start(self, now):
        self.timing["fetched_s"] = now - self.started
        self.directory = self.staging.scratch()
        self.linked = trees.lay_out(self.manifest, self.store, self.directory)
        for path in self.outputs:            # as on the user's machine: their folders exist
            os.makedirs(os.path.dirname(os.path.join(self.directory, path)), exist_ok=True)
        request = PathMap({self.root: self.directory}).apply(self.call)
        if isinstance(request.get("cwd"), str):
            os.makedirs(request["cwd"], exist_ok=True)
        self._begin(request, now)

    def poll(self, now):
        if self.inner is None:
            if self.stopping is not None:
                return Outcome(self.stopping[0], error=self.stopping[1])
            if self.error is not None:
                return Outcome("error", error="staging: %s" % self.error, code=Code.STAGING)
            if self.waiting or self.suspended_at is not None:
                return None
            try:
                self._start(now)
            except (OSError, StorageError, PluginError) as exc:
                text = exc.strerror if isinstance(exc, OSError) else str(exc)
                return Outcome("error", error="staging: %s" % text, code=Code.STAGING)
            return None
        if self.outcome is None:
            outcome = self.inner.poll(now)
            if outcome is None:
                return None
            outcome.duration = now - self.started
            for digest in trees.changed_inputs(self.store, self.linked):
                log.warning("task %s wrote into an input: blob %s leaves the cache",
                            self.task_id, digest[:12])
                self.store.discard(digest)
            if outcome.status != "ok" or not self.outputs or self.stopping is not None:
                return self._finish(outcome)
            try:
                self.found = trees.existing(self.directory, self.outputs)
            except (OSError, StorageError) as exc:
                return self._finish(Outcome("error", error="storing the outputs: %s" % exc,
                                            code=Code.STAGING))
            self.outcome = outcome
            self.timing["uploading_at"] = now
            self.hashing = self.staging.hash_later([full for _, full, _ in self.found])
            return None
        if self.stopping is not None:
            return Outcome(self.stopping[0], error=self.stopping[1])
        if self.hashing is not None:
            return self._hashed() if self.hashing.done() else None
        if self.uploaded is None:
            return None
        if self.uploaded:
            return self._finish(Outcome("error", error="uploading the outputs: %s"
                                        % self.uploaded, code=Code.STAGING))
        self.timing["upload_s"] = now - self.timing["uploading_at"]
        return self._finish(self.outcome)

    def _hashed(self):
        """The outputs are hashed: into the store (moved: the scratch folder goes
        anyway), then uploaded."""
        outputs = []
        try:
            for (path, full, executable), (digest, size) in zip(self.found,
                                                                self.hashing.result()):
                self.store.adopt(full, digest, size)
                outputs.append({"path": path, "digest": digest, "size": size,
                                "exec": executable})
        except (OSError, StorageError) as exc:
            return self._finish(Outcome("error", error="storing the outputs: %s" % exc,
                                        code=Code.STAGING))
        finally:
            self.hashing = None
        self.outcome.outputs = outputs
        self.transfers.upload([(f["digest"], f["size"], self.store.path(f["digest"]))
                               for f in outputs], self._uploaded)
        return None

    def busy(self):
        return self.hashing is not None or super().busy()

    def _uploaded(self, error):
        self.uploaded = error or False

    def _finish(self, outcome):
        outcome.staging = {"fetch_s": round(self.timing.get("fetched_s", 0.0), 6),
                           "upload_s": round(self.timing.get("upload_s", 0.0), 6),
                           "files": len(self.manifest.files),
                           "bytes": sum(size for _, size, _ in self.manifest.files.values()),
                           "fetched": self.fetched}
        return outcome

    def release(self):
        super().release()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
