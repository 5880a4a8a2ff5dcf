"""The TaskManager's blob store as its peers see it: FIND, PUT and GET.

Clients upload a task's inputs (FIND which the store lacks, then PUT them in
chunks); workers GET the ones their cache lacks and PUT their outputs; clients
GET those back. Each chunk is answered (STORED, BLOB) and a peer keeps at most
a window of them in flight, so a transfer takes the loop a chunk at a time and
never starves dispatch, heartbeats or logs. A blob is stored only once all of
it arrived and its content has its digest (``cas.BlobStore.commit``).

Writing a chunk and hashing it (about 1.5 ms a MiB) happen in a thread of
their own (``Writer``: file writes and sha256 release the GIL), so the loop
only queues the chunk; the STORED that lets the peer send more goes once the
chunk is written, so a peer never has more than its window queued here.

A FIND may ask the store to hold its blobs (``hold``: a majordomo run's
project files and the outputs it left on the farm, which its later tasks
read): while that peer is here, what it holds is evicted only when nothing else
can make room (``cas.BlobStore.hold``), so another user's uploads do not push a
run's inputs out under it. A peer holds at most ``defaults.HELD_BLOBS``, all
together ``HELD_BLOBS_ALL``: each costs the TaskManager about 200 bytes.

Blobs are shared by everyone the farm lets in: anyone who knows a digest (the
content's hash) may read it, as anyone with the content could.
"""

import collections
import logging
import os
import threading

from .. import defaults
from ..exceptions import StorageError
from ..wire import protocol
from ..wire.protocol import Code, Msg

log = logging.getLogger(__name__)


MAX_PENDING = 2 * defaults.TRANSFER_WINDOW    # chunks of one peer waiting to be written
MAX_BACKLOG = 256 << 20                       # bytes of all peers' chunks waiting
RELEASES_PER_TICK = 20_000    # holds of peers gone let go a tick (~8 ms): no long turn


class Writer(threading.Thread):
    """Writes chunks into their ``cas.Incoming`` and hashes them, in order; each
    done chunk is put in ``done`` and the loop woken (``wakeup``: a pipe's read
    end it polls)."""

    def __init__(self):
        super().__init__(name="blob-writer", daemon=True)
        self.jobs = collections.deque()
        self.done = collections.deque()
        self.ready = threading.Condition()
        self.wakeup, self._wake = os.pipe()
        os.set_blocking(self.wakeup, False)
        os.set_blocking(self._wake, False)

    def put(self, job):
        with self.ready:
            self.jobs.append(job)
            self.ready.notify()

    def run(self):
        while True:
            with self.ready:
                while not self.jobs:
                    self.ready.wait()
                job = self.jobs.popleft()
            if job is None:
                return
            key, incoming, data = job
            try:
                incoming.write(data)
                error = None
            except (StorageError, OSError, ValueError) as exc:
                error = exc
            self.done.append((key, incoming, len(data), error))
            try:
                os.write(self._wake, b"x")
            except (BlockingIOError, OSError):
                pass                        # the pipe is full: the loop is awake anyway

    def stop(self):
        self.put(None)
        self.join(5.0)
        for fd in (self.wakeup, self._wake):
            os.close(fd)


class BlobService:
    """``store`` (a cas.BlobStore) served to peers; ``send(rid, Msg, body)`` replies."""

    def __init__(self, store, send):
        self.store = store
        self.send = send
        self.writer = Writer()
        self.writer.start()
        self.pending = collections.Counter()   # Incoming -> chunks queued for the writer
        self.backlog = 0                       # bytes queued for the writer
        self.incoming = {}          # (routing id, digest) -> cas.Incoming
        self.uploads = {}           # routing id -> blobs it is uploading
        self.holds = {}             # routing id -> the digests it holds
        self.holding = 0            # digests held, all peers together
        self.releasing = collections.deque()   # sets of digests held by peers now gone
        self.overheld = set()       # routing ids whose holds reached the limit (logged)
        self.received = 0           # bytes taken in by PUT
        self.served = 0             # bytes sent by BLOB
        self.corrupt = 0            # blobs refused whose content did not have their digest

    def find(self, rid, body):
        if body.get("hold"):
            self._hold(rid, body["digests"])
        missing = [digest for digest in body["digests"] if not self.store.present(digest)]
        self.send(rid, Msg.FOUND, protocol.found(body["ref"], missing))

    def put(self, rid, body):
        digest, size, offset, data = body["digest"], body["size"], body["offset"], body["data"]
        key = (rid, digest)
        incoming = self.incoming.get(key)
        if incoming is not None and offset == 0:     # sent again from its start (reconnected)
            self._drop(key)
            incoming = None
        if incoming is None and offset == 0:
            if self.store.use(digest):           # someone else's copy got here first
                self.send(rid, Msg.STORED, protocol.stored(digest, size, done=True))
                return
            if self.uploads.get(rid, 0) >= defaults.UPLOADS_PER_PEER:
                self.send(rid, Msg.STORED, protocol.stored(
                    digest, 0, code=Code.TOO_MANY, text="%d blobs are on their way from this "
                    "peer already" % defaults.UPLOADS_PER_PEER))
                return
            try:
                incoming = self.store.receive(digest, size)
            except (StorageError, OSError) as exc:
                self._refuse_full(rid, digest, exc)
                return
            self.incoming[key] = incoming
            self.uploads[rid] = self.uploads.get(rid, 0) + 1
        elif incoming is None or offset != incoming.accepted or size != incoming.size:
            received = incoming.accepted if incoming is not None else 0
            self.send(rid, Msg.STORED, protocol.stored(
                digest, received, code=Code.OUT_OF_ORDER,
                text="a chunk at offset %d of a blob of %d bytes, where %d were received"
                % (offset, size, received)))
            return
        if offset + len(data) > size or self.pending[incoming] >= MAX_PENDING or \
                self.backlog + len(data) > MAX_BACKLOG:
            self._drop(key)
            self.send(rid, Msg.STORED, protocol.stored(
                digest, 0, code=Code.TOO_MANY if offset + len(data) <= size
                else Code.OUT_OF_ORDER, text="a chunk beyond the blob's size, or more "
                "chunks than a window before their answers: the blob is dropped"))
            return
        incoming.accepted += len(data)
        self.pending[incoming] += 1
        self.backlog += len(data)
        self.writer.put((key, incoming, data))

    def completed(self):
        """Answer the chunks the writer has written (the loop calls this each turn)."""
        try:
            while os.read(self.writer.wakeup, 4096):
                pass
        except BlockingIOError:
            pass
        done = self.writer.done
        while done:
            key, incoming, length, error = done.popleft()
            self.backlog -= length
            self.pending[incoming] -= 1
            if self.pending[incoming] <= 0:
                del self.pending[incoming]
            if self.incoming.get(key) is not incoming:     # dropped meanwhile
                if incoming not in self.pending:
                    incoming.abort()
                continue
            self._written(key, incoming, length, error)

    def _written(self, key, incoming, length, error):
        rid, digest = key
        if error is not None:
            self._drop(key)
            self._refuse_full(rid, digest, error)
            return
        self.received += length
        if not incoming.complete:
            self.send(rid, Msg.STORED, protocol.stored(digest, incoming.received))
            return
        self._drop(key, abort=False)
        size = incoming.size
        try:
            stored = self.store.commit(incoming)
        except OSError as exc:
            incoming.abort()
            self._refuse_full(rid, digest, exc)
            return
        if stored:
            self.send(rid, Msg.STORED, protocol.stored(digest, size, done=True))
        else:
            self.corrupt += 1
            log.warning("TaskManager: blob %s from peer %s refused: its content does not "
                        "have its digest", digest[:12], rid.hex())
            self.send(rid, Msg.STORED, protocol.stored(
                digest, 0, code=Code.CORRUPT, text="the %d bytes received do not have the "
                "digest %s" % (size, digest)))

    def get(self, rid, body):
        digest, offset = body["digest"], body["offset"]
        size = self.store.size(digest)
        data = self.store.read(digest, offset, body["length"]) if size is not None else None
        if data is None:
            self.send(rid, Msg.BLOB, protocol.blob(digest, offset, code=Code.MISSING))
            return
        self.store.use(digest)
        self.served += len(data)
        self.send(rid, Msg.BLOB, protocol.blob(digest, offset, size, data))

    def _hold(self, rid, digests):
        held = self.holds.setdefault(rid, set())
        for digest in digests:
            if digest in held:
                continue
            if len(held) >= defaults.HELD_BLOBS or self.holding >= defaults.HELD_BLOBS_ALL:
                if rid not in self.overheld:
                    self.overheld.add(rid)
                    log.warning("TaskManager: peer %s holds %d blobs (all peers %d): no more "
                                "are held for it", rid.hex(), len(held), self.holding)
                return
            held.add(digest)
            self.holding += 1
            self.store.hold(digest)

    def tidy(self, peers):
        """What peers no longer here (``peers``: routing id -> peer) were uploading
        is dropped, and what they held let go (``RELEASES_PER_TICK`` at a time)."""
        for rid in [rid for rid in self.holds if rid not in peers]:
            self.releasing.append(self.holds.pop(rid))
            self.overheld.discard(rid)
        budget = RELEASES_PER_TICK
        while self.releasing and budget:
            held = self.releasing[0]
            count = min(budget, len(held))
            for _ in range(count):
                self.store.release(held.pop())
            self.holding -= count
            budget -= count
            if not held:
                self.releasing.popleft()
        for rid in [rid for rid in self.uploads if rid not in peers]:
            del self.uploads[rid]
            for key in [key for key in self.incoming if key[0] == rid]:
                incoming = self.incoming.pop(key)
                if incoming not in self.pending:
                    incoming.abort()

    def describe(self):
        store = self.store
        return {"blobs": len(store), "bytes": store.used, "limit": store.limit,
                "evicted": store.evicted, "held": len(store.held),
                "evicted_held": store.evicted_held, "uploading": len(self.incoming),
                "received": self.received, "served": self.served, "corrupt": self.corrupt}

    def _drop(self, key, abort=True):
        incoming = self.incoming.pop(key, None)
        left = self.uploads.get(key[0], 1) - 1
        if left > 0:
            self.uploads[key[0]] = left
        else:
            self.uploads.pop(key[0], None)
        if abort and incoming is not None and incoming not in self.pending:
            incoming.abort()            # (else once the writer is done with it)

    def close(self):
        self.writer.stop()
        for incoming in self.incoming.values():
            incoming.abort()
        self.incoming.clear()

    def _refuse_full(self, rid, digest, exc):
        text = str(exc) if isinstance(exc, StorageError) else "the store %s: %s" % (
            self.store.root, exc.strerror or exc)
        log.warning("TaskManager: blob %s from peer %s not stored: %s", digest[:12],
                    rid.hex(), text)
        self.send(rid, Msg.STORED, protocol.stored(digest, 0, code=Code.STORE_FULL, text=text))
