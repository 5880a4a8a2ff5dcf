"""The action cache: a task already done is not run again, its outputs are reused.

A client names a task's *action* by a digest of everything that decides its
outcome (client/staging.py: capability, command, environment, working folder
relative to the project, the digests of its inputs, its outputs and
constraints). The result of a successful run is recorded under that digest and
the *profile* of the worker that ran it: the attributes its plugin declares
relevant (``WorkerPlugin.cache_attributes``: platform, shell or compiler
version). A later task of the same action is answered at once, without a
worker, when a worker that could run it now (its capability, matching its
constraints) has a profile some entry was made with, and every output blob is
still in the store; otherwise it simply runs.

Entries are small records in a ``cas.BlobStore`` of their own beside the
blobs (``STORE/actions``), named by their key: they survive restarts and the
least recently used go first past the limit. The cache is the farm's: one
trust domain, like its store.
"""

import hashlib
import logging
import time

import msgpack

from ..constraints import matches
from ..exceptions import StorageError
from ..storage.cas import BlobStore
from ..wire import protocol
from ..wire.protocol import Code

log = logging.getLogger(__name__)

ENTRIES_SIZE = 1 << 30          # bytes of entries kept (each a few hundred bytes)


def profile(attributes):
    """The digest of a worker capability's relevant attributes, or None when its
    plugin declares none (its results are not cached)."""
    names = attributes.get(protocol.CACHE_ATTRIBUTES)
    if not names:
        return None
    relevant = sorted((name, attributes.get(name, "")) for name in names.split(","))
    return hashlib.sha256(msgpack.packb(relevant)).hexdigest()


def live_profiles(workers, capability, requires):
    """The profiles of the ``workers`` that could run a task of ``capability``
    with ``requires`` now."""
    found = set()
    for worker in workers:
        attrs = worker.capabilities.get(capability)
        if attrs is not None and matches(attrs, requires):
            found.add(profile(attrs))
    found.discard(None)
    return sorted(found)


class ActionCache:
    def __init__(self, root, blobs, limit=ENTRIES_SIZE):
        self.entries = BlobStore(root, limit)
        self.blobs = blobs              # the blob store the outputs are in
        self.hits = 0
        self.misses = 0
        self.recorded = 0

    @staticmethod
    def key(action, worker_profile):
        return hashlib.sha256(("%s:%s" % (action, worker_profile)).encode()).hexdigest()

    def answered(self, specs, workers, known, reply):
        """The SUBMIT ``specs`` left to run: each whose action the cache holds a
        result of, made by a worker like one of ``workers`` that could run it now,
        is answered instead (``reply(RESULT item)``). Resubmissions and tasks
        already ``known`` (spec -> bool) are left alone."""
        profiles, left = {}, []
        for spec in specs:
            action = spec.get("action")
            if action is None or spec.get("resume") or known(spec):
                left.append(spec)
                continue
            requires = spec.get("requires") or {}
            where = (spec["capability"], tuple(sorted(requires.items())))
            if where not in profiles:
                profiles[where] = live_profiles(workers, spec["capability"], requires)
            entry = self.lookup(action, profiles[where])
            if entry is None:
                left.append(spec)
            else:
                reply(self.answer(spec["id"], entry))
        return left

    def lookup(self, action, profiles):
        """The recorded result of ``action`` made by a worker of one of
        ``profiles`` whose outputs are all in the store, else None."""
        for worker_profile in profiles:
            key = self.key(action, worker_profile)
            if not self.entries.present(key):
                continue
            data = self.entries.read(key, 0, self.entries.size(key))
            try:
                entry = msgpack.unpackb(data, raw=False) if data is not None else None
                outputs = entry["outputs"]
            except (ValueError, KeyError, TypeError, msgpack.UnpackException):
                log.warning("action cache: entry %s does not decode: dropped", key[:12])
                self.entries.discard(key)
                continue
            if all(self.blobs.present(o["digest"]) for o in outputs):
                self.hits += 1
                return entry
        self.misses += 1
        return None

    def record(self, action, worker_profile, result):
        """Keep a successful result (its outputs are in the store already)."""
        entry = {"outputs": result.get("outputs") or [], "exit_code": result.get("exit_code"),
                 "output": result.get("output") or [], "duration": result.get("duration", 0.0),
                 "host": result.get("host"), "machine": result.get("machine"),
                 "recorded": time.time()}
        key = self.key(action, worker_profile)
        try:
            self.entries.put_named(key, msgpack.packb(entry, use_bin_type=True))
        except (OSError, StorageError) as exc:
            log.warning("action cache: cannot record %s: %s", key[:12], exc)
            return
        self.recorded += 1

    def answer(self, task_id, entry):
        """A RESULT item for a task answered from ``entry``."""
        return protocol.result_item(
            task_id, 0, "ok", exit_code=entry.get("exit_code"), code=Code.CACHE_HIT,
            outputs=entry["outputs"], output=entry.get("output") or [],
            duration=entry.get("duration") or 0.0, host=entry.get("host") or "",
            machine=entry.get("machine") or "", worker="action cache")

    def describe(self):
        return {"entries": len(self.entries), "hits": self.hits, "misses": self.misses,
                "recorded": self.recorded}
