"""Blobs moving between a peer (a client, a worker) and the TaskManager's store.

``Transfers`` lives in the thread that owns the peer's link and is pumped by
its loop: ``upload`` makes sure the store has some files (FIND which it lacks,
then PUT those in chunks), ``download`` fetches a blob into a sink
(``cas.Incoming``) and checks its digest. At most ``window`` chunks are in
flight at once, each answered by the TaskManager (STORED, BLOB), so a large
transfer never fills a queue or holds the TaskManager's loop. Callbacks run in
the loop's thread.
"""

import collections
import itertools
import logging
import os

from .. import defaults
from ..wire import protocol
from ..wire.protocol import Code, Msg
from ..wire.schemas import MAX_BATCH

log = logging.getLogger(__name__)

DOWNLOAD_TRIES = 2           # a blob that arrives corrupt is fetched once more


class _Batch:
    """One ``upload`` call: the files, and those the store does not have yet; or
    one ``missing`` call (a probe: nothing is sent, ``lacking`` is the answer)."""

    __slots__ = ("files", "remaining", "done", "error", "lacking", "hold")

    def __init__(self, files, done, probe=False, hold=False):
        self.files = {digest: (size, source) for digest, size, source in files}
        self.remaining = set(self.files)
        self.done = done
        self.error = None
        self.lacking = set() if probe else None   # a probe only asks: what the store lacks
        self.hold = hold                          # the store holds them for this peer


class _Put:
    __slots__ = ("digest", "size", "source", "batches", "sent", "handle")

    def __init__(self, digest, size, source, batch):
        self.digest, self.size, self.source = digest, size, source
        self.batches = [batch]    # the uploads waiting for it
        self.sent = None          # bytes sent so far (None: not begun)
        self.handle = None        # the source file, while it is read

    def chunk(self, offset, length):
        if isinstance(self.source, bytes):
            return self.source[offset:offset + length]
        if self.handle is None:
            self.handle = open(self.source, "rb", buffering=0)
        return os.pread(self.handle.fileno(), length, offset)

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class _Get:
    __slots__ = ("digest", "size", "sink", "done", "requested", "tries")

    def __init__(self, digest, size, sink, done):
        self.digest, self.size, self.sink, self.done = digest, size, sink, done
        self.requested = 0
        self.tries = 1


class Transfers:
    """The transfers of one peer over one link (``pump(link, now)`` sends)."""

    def __init__(self, window=defaults.TRANSFER_WINDOW, chunk=defaults.CHUNK_SIZE,
                 stall=defaults.TRANSFER_STALL):
        self.window, self.chunk, self.stall = window, chunk, stall
        self.finding = collections.deque()   # (batch, digests) to ask FIND about
        self.asked = {}                      # FIND ref -> (batch, the digests it asked about)
        self.puts = collections.deque()      # _Put not fully sent, in order
        self.putting = {}                    # digest -> _Put queued or sent, not stored yet
        self.gets = collections.deque()      # _Get waiting to begin
        self.getting = {}                    # digest -> _Get under way
        self.in_flight = 0                   # chunks sent or asked for, not answered
        self.progress_at = None              # when an answer last came
        self.sent_bytes = 0
        self.received_bytes = 0
        self.held = set()                    # digests the store holds for this peer
        self._refs = itertools.count(1)

    @property
    def busy(self):
        return bool(self.finding or self.asked or self.puts or self.putting or self.gets or
                    self.getting)

    def upload(self, files, done, hold=False):
        """Make sure the store has ``files`` (``(digest, size, source)``, the source a
        path or bytes); ``done(error)`` once it has every one (error None), or
        with a one-line error. ``hold``: the store keeps them while this peer is
        there (blobs nobody holds are evicted first; see ``cas.BlobStore.hold``)."""
        self._ask(_Batch(files, done, hold=hold))

    def missing(self, digests, done, hold=False):
        """Ask which of ``digests`` the store lacks, sending no blob; ``done(error,
        lacking)`` with that set (error None), or with a one-line error."""
        batch = _Batch([(digest, 0, None) for digest in digests], None, probe=True, hold=hold)
        batch.done = lambda error: done(error, batch.lacking)
        self._ask(batch)

    def rehold(self):
        """A TaskManager that welcomed this peer again (perhaps one started since)
        is asked to hold again what the store held for it."""
        if self.held:
            self._ask(_Batch([(digest, 0, None) for digest in self.held],
                             lambda error: None, probe=True, hold=True))

    def _ask(self, batch):
        """FIND about ``batch``'s digests, MAX_BATCH at a time."""
        if batch.hold:
            self.held.update(batch.remaining)
        if not batch.remaining:
            batch.done(None)
            return
        digests = sorted(batch.remaining)
        for start in range(0, len(digests), MAX_BATCH):
            self.finding.append((batch, digests[start:start + MAX_BATCH]))

    def download(self, digest, size, sink, done):
        """Fetch blob ``digest`` (``size`` bytes) into ``sink`` (a cas.Incoming);
        ``done(error)`` once it is all there with its digest (error None), or with
        a one-line error (``Code.MISSING`` in it when the store lacks it)."""
        self.gets.append(_Get(digest, size, sink, done))

    # -- the link's loop ---------------------------------------------------------
    def pump(self, link, now):
        """Send what the window allows; resend what went unanswered too long."""
        if not link.ready:
            return
        if self.in_flight and self.progress_at is not None and now - self.progress_at > \
                self.stall:
            log.warning("transfers: no answer for %gs to %d chunk(s): sending again",
                        self.stall, self.in_flight)
            self.reset()
        while self.finding:
            batch, digests = self.finding[0]
            ref = next(self._refs)
            if not link.send(Msg.FIND, protocol.find(ref, digests, batch.hold), now):
                return
            self.finding.popleft()
            self.asked[ref] = (batch, digests)
        while self.in_flight < self.window:
            moved = False
            for send in (self._send_put, self._send_get):
                if self.in_flight >= self.window:
                    break
                outcome = send(link, now)
                if outcome is None:          # the link's queue is full: next turn
                    return
                moved = moved or outcome
            if not moved:
                return

    def _send_put(self, link, now):
        """True when a chunk went (or a put ended), False when there is none to
        send, None when the link could not take it."""
        if not self.puts:
            return False
        put = self.puts[0]
        offset = put.sent or 0
        try:
            data = put.chunk(offset, self.chunk)
        except OSError as exc:
            self._fail_put(put, "cannot read %s: %s" % (put.source, exc.strerror))
            return True
        if len(data) != min(self.chunk, put.size - offset):
            self._fail_put(put, "%s changed while it was being sent (its size differs)"
                           % put.source)
            return True
        if not link.send(Msg.PUT, protocol.put(put.digest, put.size, offset, data), now):
            return None
        self._sent(now)
        self.sent_bytes += len(data)
        put.sent = offset + len(data)
        if put.sent >= put.size:
            self.puts.popleft()
            put.close()
        return True

    def _send_get(self, link, now):
        """As ``_send_put``, for the next chunk to ask for."""
        get = next((g for g in self.getting.values() if _unasked(g)), None)
        if get is None:
            for index, waiting in enumerate(self.gets):   # the same blob: one at a time
                if waiting.digest not in self.getting:
                    del self.gets[index]
                    self.getting[waiting.digest] = get = waiting
                    break
        if get is None:
            return False
        length = min(self.chunk, get.size - get.requested) or 1
        if not link.send(Msg.GET, protocol.get(get.digest, get.requested, length), now):
            return None
        self._sent(now)
        get.requested += length
        return True

    def _sent(self, now):
        if self.in_flight == 0:
            self.progress_at = now
        self.in_flight += 1

    def handle(self, mtype, body, now):
        """Take a transfer message (FOUND, STORED, BLOB); False for other types."""
        if mtype == Msg.STORED:
            self._answered(now)
            self._stored(body)
        elif mtype == Msg.BLOB:
            self._answered(now)
            self._blob(body)
        elif mtype == Msg.FOUND:
            self._found(body)
        else:
            return False
        return True

    def _answered(self, now):
        self.in_flight = max(0, self.in_flight - 1)
        self.progress_at = now

    def _found(self, body):
        """The answer to one FIND: of its digests (a batch may need several FINDs),
        those the store lacks are sent, the others are there."""
        batch, digests = self.asked.pop(body["ref"], (None, ()))
        if batch is None or batch.error is not None:
            return
        missing = set(body["missing"])
        for digest in digests:
            if digest not in batch.remaining:
                continue
            if batch.lacking is not None:        # a probe
                if digest in missing:
                    batch.lacking.add(digest)
                batch.remaining.discard(digest)
                continue
            put = self.putting.get(digest)
            if put is not None:                  # on its way for another upload
                put.batches.append(batch)
            elif digest in missing:
                size, source = batch.files[digest]
                self.putting[digest] = put = _Put(digest, size, source, batch)
                self.puts.append(put)
            else:
                batch.remaining.discard(digest)
        self._maybe_done(batch)

    def _stored(self, body):
        put = self.putting.get(body["digest"])
        if put is None:
            return
        code = body.get("code")
        if code == Code.TOO_MANY:                # tried again after the others
            self._unqueue(put)
            put.sent = None
            self.puts.append(put)
        elif code is not None:
            self._fail_put(put, "%s could not be stored: %s" % (
                put.source if isinstance(put.source, str) else "blob " + put.digest[:12],
                body.get("text") or code))
        elif body.get("done"):
            self.putting.pop(put.digest, None)
            self._unqueue(put)
            for batch in put.batches:
                batch.remaining.discard(put.digest)
                self._maybe_done(batch)

    def _unqueue(self, put):
        put.close()
        try:
            self.puts.remove(put)
        except ValueError:
            pass

    def _fail_put(self, put, error):
        self.putting.pop(put.digest, None)
        self._unqueue(put)
        for batch in put.batches:
            self._fail_batch(batch, error)

    def _blob(self, body):
        get = self.getting.get(body["digest"])
        if get is None:
            return
        code = body.get("code")
        if code is not None:
            self._end_get(get, "blob %s: the TaskManager's store says %s" % (get.digest[:12],
                                                                            code))
            return
        data, sink = body["data"], get.sink
        if body["offset"] != sink.received or body.get("size") != get.size:
            self._end_get(get, "blob %s: a chunk at offset %d where %d bytes were received"
                          % (get.digest[:12], body["offset"], sink.received))
            return
        try:
            sink.write(data)
        except (OSError, ValueError) as exc:
            self._end_get(get, "blob %s: cannot be written: %s" % (get.digest[:12], exc))
            return
        self.received_bytes += len(data)
        if sink.received < get.size:
            return
        if sink.hasher.hexdigest() == get.digest:
            self._end_get(get, None)
        elif get.tries < DOWNLOAD_TRIES:
            log.warning("transfers: blob %s arrived corrupt: fetching it again", get.digest[:12])
            sink.restart()
            get.requested = 0
            get.tries += 1
        else:
            self._end_get(get, "blob %s: arrived corrupt %d times (%s)"
                          % (get.digest[:12], get.tries, Code.CORRUPT))

    def _end_get(self, get, error):
        self.getting.pop(get.digest, None)
        get.done(error)

    def _maybe_done(self, batch):
        if not batch.remaining and batch.error is None:
            batch.error = False
            batch.done(None)

    def _fail_batch(self, batch, error):
        if batch.error is not None:
            return
        batch.error = error
        for put in list(self.putting.values()):
            if batch in put.batches:
                put.batches.remove(batch)
                if not put.batches and put in self.puts and not put.sent:
                    self.putting.pop(put.digest)
                    self._unqueue(put)
        batch.done(error)

    def abandon(self):
        """Give up every download (the link is gone for good): their partial
        files are removed. Uploads only read; they just stop."""
        for get in list(self.getting.values()) + list(self.gets):
            get.sink.abort()
        self.getting.clear()
        self.gets.clear()

    def reset(self):
        """The link reconnected (or went silent): what was in flight is lost; ask
        again from what is known to have arrived."""
        self.in_flight = 0
        self.progress_at = None
        for batch, digests in self.asked.values():
            self.finding.append((batch, [d for d in digests if d in batch.remaining]))
        self.asked.clear()
        queued = set(map(id, self.puts))
        for put in self.putting.values():       # a partial blob: sent again from its start
            put.close()
            put.sent = None
            if id(put) not in queued:
                self.puts.appendleft(put)
        for get in self.getting.values():
            get.requested = get.sink.received


def _unasked(get):
    """Whether part of ``get`` is still to be asked for (an empty blob: once)."""
    return get.requested < get.size or get.requested == 0
