"""A store of blobs on disk, each named by the sha256 of its content, with a size limit.

Layout: ``ROOT/ab/abcdef...`` (a digest's first two hex digits fan it out) and
``ROOT/tmp/`` for blobs on their way in. A blob is written under ``tmp``, its
digest checked, then renamed into place, so nobody ever reads a torn or corrupt
blob. Stored blobs are read-only. When a new blob would take the store past its
limit, the least recently used blobs go first: never one a process is using
(``pin``), and one a run holds (``hold``: a client that will read it later) only
when the others are not enough, least recently used or held first. Making room
looks at the blobs in that order only until there is enough: held ones it
passes go to the end, so a store full of small blobs takes one in constant time.
The time of last use is the file's access time (set at most every
``TOUCH_EVERY`` seconds), so the order survives a restart. Its mtime is left
alone: a worker tells by it that a task wrote into an input hard-linked from its
cache.

The TaskManager keeps one store (what clients upload, what workers produce);
each worker keeps one as its cache.
"""

import collections
import hashlib
import logging
import os
import re
import shutil
import time

from .. import defaults
from ..exceptions import StorageError

log = logging.getLogger(__name__)

_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
READ_SIZE = 1 << 20
TOUCH_EVERY = 60.0        # s: a blob's atime (its last use) is refreshed at most this often


def location(configured, variable, default):
    """A store's folder: farm.yaml's, else the environment ``variable``'s, else
    ``default`` (~ expanded)."""
    return os.path.abspath(os.path.expanduser(configured or os.environ.get(variable) or
                                              default))


def is_digest(text):
    return isinstance(text, str) and _DIGEST.match(text) is not None


def digest_bytes(data):
    return hashlib.sha256(data).hexdigest()


def digest_file(path):
    """``(digest, size)`` of the file at ``path``, read once."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while True:
            chunk = handle.read(READ_SIZE)
            if not chunk:
                break
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


class Incoming:
    """A blob being received: chunks written in order, its digest checked at the end."""

    __slots__ = ("digest", "size", "received", "accepted", "path", "handle", "hasher")

    def __init__(self, digest, size, path):
        self.digest = digest
        self.size = size
        self.received = 0             # bytes written
        self.accepted = 0             # ... and queued to be (a TaskManager's writer thread)
        self.path = path
        self.handle = open(path, "wb", buffering=0)
        self.hasher = hashlib.sha256()

    @property
    def complete(self):
        return self.received >= self.size

    def write(self, data):
        if self.received + len(data) > self.size:
            raise StorageError("blob %s: %d bytes past its size %d"
                               % (self.digest[:12], self.received + len(data) - self.size,
                                  self.size))
        self.handle.write(data)
        self.hasher.update(data)
        self.received += len(data)

    def restart(self):
        """Empty it, to be received again from the start."""
        self.handle.seek(0)
        self.handle.truncate()
        self.received = self.accepted = 0
        self.hasher = hashlib.sha256()

    def abort(self):
        if not self.handle.closed:
            self.handle.close()
        _unlink(self.path)


class BlobStore:
    """Blobs under ``root``, at most ``limit`` bytes of them."""

    def __init__(self, root, limit=defaults.STORE_SIZE, clock=time.time):
        self.root = os.path.abspath(root)
        self.limit = int(limit)
        self.clock = clock
        self.tmp = os.path.join(self.root, "tmp")
        self.blobs = collections.OrderedDict()    # digest -> size, least recently used first
        self.used = 0                            # bytes of the blobs stored
        self.pins = collections.Counter()        # digest -> holders: never evicted
        self.held = collections.Counter()        # digest -> runs that hold it: evicted last
        self.held_order = collections.OrderedDict()   # those here, least recently used first
        self.touched = {}                        # digest -> when its mtime was last set
        self.evicted = 0                         # blobs removed to make room
        self.evicted_held = 0                    # ... of them, blobs a run held
        self._serial = 0
        try:
            os.makedirs(self.tmp, exist_ok=True)
        except OSError as exc:
            raise StorageError("cannot create the blob store %s: %s"
                               % (self.root, exc.strerror)) from None
        for name in os.listdir(self.tmp):        # blobs a stopped process was receiving
            if not pid_alive(name.split(".")[-2] if name.count(".") >= 2 else ""):
                _unlink(os.path.join(self.tmp, name))
        self._scan()

    def _scan(self):
        found = []
        for fan in os.listdir(self.root):
            folder = os.path.join(self.root, fan)
            if len(fan) != 2 or not os.path.isdir(folder):
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    if is_digest(entry.name) and entry.name[:2] == fan:
                        stat = entry.stat()
                        found.append((stat.st_atime, entry.name, stat.st_size))
        found.sort()
        now = self.clock()
        for used, digest, size in found:
            self.blobs[digest] = size
            self.used += size
            self.touched[digest] = min(used, now)
        if self.used > self.limit:
            self._make_room(0)

    # -- reading -------------------------------------------------------------------
    def __contains__(self, digest):
        return digest in self.blobs

    def __len__(self):
        return len(self.blobs)

    def path(self, digest):
        return os.path.join(self.root, digest[:2], digest)

    def size(self, digest):
        return self.blobs.get(digest)

    def use(self, digest):
        """True when the blob is here; it becomes the most recently used."""
        if digest not in self.blobs:
            return False
        self.blobs.move_to_end(digest)
        if digest in self.held_order:
            self.held_order.move_to_end(digest)
        now = self.clock()
        if now - self.touched.get(digest, 0.0) >= TOUCH_EVERY:
            self.touched[digest] = now
            path = self.path(digest)
            try:
                os.utime(path, ns=(int(now * 1e9), os.stat(path).st_mtime_ns))
            except FileNotFoundError:        # removed behind our back: not here after all
                self._forget(digest)
                return False
            except OSError:
                pass
        return True

    def present(self, digest):
        """``use``, after making sure the file is still on disk (a stat): for the
        answer to FIND, on which a client decides not to send a blob."""
        if digest in self.blobs and not os.path.exists(self.path(digest)):
            self._forget(digest)
        return self.use(digest)

    def read(self, digest, offset, length):
        """Up to ``length`` bytes of the blob from ``offset``; None when it is gone."""
        try:
            with open(self.path(digest), "rb", buffering=0) as handle:
                handle.seek(offset)
                return handle.read(length)
        except FileNotFoundError:
            self._forget(digest)
            return None

    # -- writing -------------------------------------------------------------------
    def receive(self, digest, size):
        """An ``Incoming`` for a blob of ``size`` bytes; StorageError when it cannot fit."""
        if size > self.limit:
            raise StorageError("a blob of %d bytes is larger than the store's limit (%d "
                               "bytes)" % (size, self.limit))
        self._serial += 1
        return Incoming(digest, size, os.path.join(self.tmp, "%s.%d.%d" % (
            digest[:16], os.getpid(), self._serial)))

    def commit(self, incoming):
        """Store a received blob; False (and nothing stored) when its content does not
        have its digest or it is short."""
        incoming.handle.close()
        if incoming.received != incoming.size or incoming.hasher.hexdigest() != incoming.digest:
            _unlink(incoming.path)
            return False
        self._place(incoming.path, incoming.digest, incoming.size)
        return True

    def add_file(self, path, link=True):
        """Store the file at ``path`` (hard-linked when ``link`` and the filesystem
        allows, else copied): ``(digest, size)``."""
        digest, size = digest_file(path)
        if digest in self.blobs:
            self.use(digest)
            return digest, size
        self._serial += 1
        temporary = os.path.join(self.tmp, "add.%d.%d" % (os.getpid(), self._serial))
        try:
            if link:
                try:
                    os.link(path, temporary)
                except OSError:
                    shutil.copyfile(path, temporary)
            else:
                shutil.copyfile(path, temporary)
            if digest_file(temporary)[0] != digest:   # it changed while we read it
                raise StorageError("%s changed while it was being stored" % path)
        except OSError as exc:
            _unlink(temporary)
            raise StorageError("cannot store %s: %s" % (path, exc.strerror)) from None
        except StorageError:
            _unlink(temporary)
            raise
        self._place(temporary, digest, size)
        return digest, size

    def adopt(self, path, digest, size):
        """Move the file at ``path``, of known ``digest`` and ``size`` (hashed by
        its writer or a thread), into the store: no copy, no second reading."""
        if digest in self.blobs:
            self.use(digest)
            _unlink(path)
        else:
            self._place(path, digest, size)

    def add_bytes(self, data):
        """Store ``data``: its digest."""
        digest = digest_bytes(data)
        if not self.use(digest):
            incoming = self.receive(digest, len(data))
            incoming.write(data)
            self.commit(incoming)
        return digest

    def put_named(self, name, data):
        """Store ``data`` under ``name`` (a digest-shaped key, not its content's:
        the action cache's records)."""
        incoming = self.receive(name, len(data))
        incoming.write(data)
        incoming.handle.close()
        self._place(incoming.path, name, len(data))

    def discard(self, digest):
        """Remove a blob (found changed, or no longer wanted), pinned or not."""
        if digest in self.blobs:
            _unlink(self.path(digest))
            self._forget(digest)

    def pin(self, digest):
        self.pins[digest] += 1

    def unpin(self, digest):
        _count_down(self.pins, digest)

    def hold(self, digest):
        """A run will read ``digest`` (here now or arriving later): it goes only
        when the blobs nobody holds are not enough to make room."""
        self.held[digest] += 1
        if digest in self.blobs:
            self.held_order[digest] = None
            self.held_order.move_to_end(digest)

    def release(self, digest):
        _count_down(self.held, digest)
        if digest not in self.held:
            self.held_order.pop(digest, None)

    # -- inside ----------------------------------------------------------------------
    def _place(self, temporary, digest, size):
        self._make_room(size)
        target = self.path(digest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.chmod(temporary, 0o444)
        now = self.clock()
        os.utime(temporary, ns=(int(now * 1e9), os.stat(temporary).st_mtime_ns))
        os.replace(temporary, target)
        if digest not in self.blobs:
            self.used += size
        self.blobs[digest] = size
        self.blobs.move_to_end(digest)
        self.touched[digest] = now
        if digest in self.held:
            self.held_order[digest] = None
            self.held_order.move_to_end(digest)

    def _make_room(self, size):
        need = self.used + size - self.limit
        if need <= 0:
            return
        victims, passed = [], []
        for digest, blob_size in self.blobs.items():     # least recently used first
            if digest in self.held:
                passed.append(digest)
            elif digest not in self.pins:
                victims.append(digest)
                need -= blob_size
                if need <= 0:
                    break
        for digest in passed:        # out of the next search's way (held_order keeps theirs)
            self.blobs.move_to_end(digest)
        unheld = len(victims)
        for digest in self.held_order if need > 0 else ():   # then those runs hold
            if digest not in self.pins:
                victims.append(digest)
                need -= self.blobs[digest]
                if need <= 0:
                    break
        held = len(victims) - unheld
        for digest in victims:
            _unlink(self.path(digest))
            self._forget(digest)
        self.evicted += len(victims)
        if held:
            self.evicted_held += held
            log.warning("blob store %s: %d blob(s) runs hold had to go: its limit (%d "
                        "bytes) is smaller than what the runs using it read", self.root,
                        held, self.limit)
        if need > 0:
            log.warning("blob store %s: %d bytes over its limit of %d (blobs in use)",
                        self.root, need, self.limit)

    def _forget(self, digest):
        size = self.blobs.pop(digest, None)
        if size is not None:
            self.used -= size
        self.touched.pop(digest, None)
        self.held_order.pop(digest, None)


def _count_down(counter, digest):
    """One holder of ``digest`` fewer in ``counter`` (gone at none)."""
    left = counter[digest] - 1
    if left > 0:
        counter[digest] = left
    else:
        counter.pop(digest, None)


def pid_alive(pid):
    """Whether the process whose pid is the text ``pid`` (from a temporary file's
    name: several processes may share a store) still runs."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_file(path):
    """Remove ``path`` if it can be: a file nobody needs any more (a spilled result
    moved on or given up, a downloaded value read)."""
    try:
        os.unlink(path)
    except OSError:
        pass
