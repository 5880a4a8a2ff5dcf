"""The blob store: content-named, verified on arrival, least recently used out first."""

import os
import subprocess
import sys

import pytest

from computefarm.exceptions import StorageError
from computefarm.storage.cas import BlobStore, digest_bytes, digest_file


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def receive(store, data, digest=None, chunk=3):
    incoming = store.receive(digest or digest_bytes(data), len(data))
    for start in range(0, len(data), chunk):
        incoming.write(data[start:start + chunk])
    return store.commit(incoming)


def test_a_blob_is_stored_under_its_digest_read_only_and_read_back(tmp_path):
    store = BlobStore(tmp_path / "s", limit=1000)
    data = b"int main() { return 0; }\n"
    assert receive(store, data)
    digest = digest_bytes(data)
    assert digest in store and store.size(digest) == len(data)
    assert store.read(digest, 4, 4) == data[4:8]
    assert digest_file(store.path(digest)) == (digest, len(data))
    assert os.stat(store.path(digest)).st_mode & 0o777 == 0o444
    assert os.listdir(tmp_path / "s" / "tmp") == []


def test_content_that_does_not_have_its_digest_is_never_stored(tmp_path):
    store = BlobStore(tmp_path / "s", limit=1000)
    claimed = digest_bytes(b"the real content")
    assert not receive(store, b"the torn content", digest=claimed)
    assert claimed not in store and store.used == 0
    short = store.receive(digest_bytes(b"abcdef"), 6)
    short.write(b"abc")
    assert not store.commit(short)                   # truncated: not stored either
    assert len(store) == 0 and os.listdir(tmp_path / "s" / "tmp") == []
    with pytest.raises(StorageError, match="past its size"):
        store.receive(digest_bytes(b"ab"), 2).write(b"abc")


def test_the_least_recently_used_unpinned_blobs_go_first_and_the_order_survives_a_restart(
        tmp_path):
    clock = Clock()
    store = BlobStore(tmp_path / "s", limit=30, clock=clock)
    blobs = [bytes([65 + i]) * 10 for i in range(3)]      # three of 10 bytes: full
    for data in blobs:
        clock.now += 100
        receive(store, data)
    clock.now += 100
    assert store.use(digest_bytes(blobs[0]))         # A is now the most recent
    store.pin(digest_bytes(blobs[1]))                # B is in use
    receive(store, b"D" * 10)
    assert [digest_bytes(b) in store for b in blobs] == [True, True, False]
    assert store.evicted == 1 and store.used == 30
    store.unpin(digest_bytes(blobs[1]))
    clock.now += 100
    again = BlobStore(tmp_path / "s", limit=30, clock=clock)   # a restarted process
    receive(again, b"E" * 10)                        # B is the least recently used now
    assert digest_bytes(blobs[1]) not in again
    assert digest_bytes(blobs[0]) in again and digest_bytes(b"D" * 10) in again


def test_blobs_a_run_holds_go_only_when_the_others_cannot_make_room(tmp_path):
    clock = Clock()
    store = BlobStore(tmp_path / "s", limit=40, clock=clock)
    a, b, c, d = (bytes([65 + i]) * 10 for i in range(4))
    store.hold(digest_bytes(c))                      # held before it arrives
    for data in (a, b, c, d):                        # oldest first: A, B, C, D
        clock.now += 100
        receive(store, data)
    store.hold(digest_bytes(a))                      # A, the least recently used, is held
    store.pin(digest_bytes(d))                       # D is being read
    receive(store, b"E" * 10)                        # B goes: the oldest nobody holds
    assert [digest_bytes(x) in store for x in (a, b, c, d)] == [True, False, True, True]
    assert (store.evicted, store.evicted_held) == (1, 0)
    receive(store, b"F" * 20)    # E goes, then the held blob least recently used or
    assert [digest_bytes(x) in store for x in (a, c, d, b"E" * 10)] == \
        [True, False, True, False]                   # held: C (held since it came), not A
    assert (store.evicted, store.evicted_held) == (3, 1) and store.used == 40
    store.release(digest_bytes(c))
    store.release(digest_bytes(a))
    assert not store.held and not store.held_order
    receive(store, b"G" * 10)                        # A is an ordinary blob again
    assert digest_bytes(a) not in store


def test_a_blob_larger_than_the_store_is_refused_with_a_clear_error(tmp_path):
    store = BlobStore(tmp_path / "s", limit=10)
    with pytest.raises(StorageError, match="larger than the store's limit"):
        store.receive(digest_bytes(b"x" * 11), 11)


def test_add_file_links_or_copies_and_a_blob_gone_from_disk_is_forgotten(tmp_path):
    store = BlobStore(tmp_path / "s", limit=1 << 20)
    source = tmp_path / "out.o"
    source.write_bytes(b"\x7fELF" + b"\0" * 100)
    digest, size = store.add_file(str(source))
    assert (digest, size) == digest_file(str(source))
    assert os.stat(store.path(digest)).st_ino == os.stat(source).st_ino   # linked
    os.unlink(store.path(digest))
    assert store.read(digest, 0, 10) is None and digest not in store
    assert store.add_bytes(b"abc") == digest_bytes(b"abc") and store.used == 3


def test_a_new_store_removes_what_dead_processes_left_but_not_what_live_ones_write(tmp_path):
    BlobStore(tmp_path / "s")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    left = tmp_path / "s" / "tmp" / ("abcd.%s.1" % dead)
    live = tmp_path / "s" / "tmp" / ("abcd.%d.1" % os.getpid())
    left.write_bytes(b"half")
    live.write_bytes(b"half")
    BlobStore(tmp_path / "s")
    assert not left.exists() and live.exists()
