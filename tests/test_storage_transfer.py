"""Blobs through the one port: a real TaskManager's store, real clients."""

import os
import signal
import subprocess
import sys
import time

import pytest
from support import Farm, wait_until

from computefarm.client.staging import ProjectFiles
from computefarm.exceptions import StorageError
from computefarm.storage import trees
from computefarm.storage.cas import digest_bytes, digest_file
from computefarm.wire.schemas import MAX_BATCH


@pytest.fixture
def stored(tmp_path):
    """A farm whose TaskManager has a store of its own (``tmp_path/store``)."""
    farm = Farm(tmp_path, store=str(tmp_path / "store"))
    farm.start_taskmanager()
    try:
        yield farm
    finally:
        farm.close()


def write(path, data):
    path.write_bytes(data)
    return digest_file(str(path)) + (str(path),)


def test_blobs_of_every_size_go_up_once_and_come_back_whole(stored, tmp_path):
    client = stored.client()
    sizes = [0, 1, 1 << 20, (1 << 20) + 1, 3_500_000]
    files = [write(tmp_path / ("f%d" % size), os.urandom(size)) for size in sizes]
    small = [(digest_bytes(b"small %d" % i), len(b"small %d" % i), b"small %d" % i)
             for i in range(300)]
    assert client.upload(files + small).result(30) is None
    sent = client.files.transfers.sent_bytes
    assert sent == sum(sizes) + sum(size for _, size, _ in small)
    assert client.upload(files + small).result(30) is None
    assert client.files.transfers.sent_bytes == sent        # the store has them: nothing sent
    for index, (digest, size, _) in enumerate(files):
        target = tmp_path / "back" / ("copy%d" % index)
        mode = 0o755 if index % 2 else 0o644
        assert client.download(digest, size, target, mode).result(30) == str(target)
        assert digest_file(str(target)) == (digest, size)
        assert os.stat(target).st_mode & 0o777 == mode
    assert [p.name for p in (tmp_path / "back").iterdir() if p.name.startswith(".")] == []
    store = client.status()["store"]
    assert store["blobs"] == len(files) + len(small) and store["corrupt"] == 0


def test_an_upload_of_more_blobs_than_one_find_asks_about_sends_every_missing_one(stored):
    """Over MAX_BATCH digests go in several FINDs: each answer speaks for its own
    digests only (the first once passed the others as stored)."""
    client = stored.client()
    blobs = [(digest_bytes(b"blob %d" % i), len(b"blob %d" % i), b"blob %d" % i)
             for i in range(MAX_BATCH + 500)]
    blobs.sort()
    early = blobs[:10]                      # the store has these: the first FIND finds some
    assert client.upload(early).result(30) is None
    assert client.upload(blobs).result(60) is None
    assert client.files.transfers.sent_bytes == sum(size for _, size, _ in blobs)
    assert client.status()["store"]["blobs"] == len(blobs)
    absent = [digest_bytes(b"absent %d" % i) for i in range(MAX_BATCH + 1)]
    asked = [digest for digest, _, _ in blobs] + absent
    assert client.missing(asked).result(30) == set(absent)     # sending nothing
    assert client.files.transfers.sent_bytes == sum(size for _, size, _ in blobs)


def test_content_that_is_not_its_digest_is_refused_and_never_stored(stored, tmp_path):
    client = stored.client()
    claimed = digest_bytes(b"what the file held when it was hashed")
    with pytest.raises(StorageError, match="do not have the digest"):
        client.upload([(claimed, 24, b"what it holds now: other")]).result(30)
    target = tmp_path / "never"
    with pytest.raises(StorageError, match="missing"):
        client.download(claimed, 24, target).result(30)
    assert not target.exists() and os.listdir(tmp_path) .count("never") == 0
    store = client.status()["store"]
    assert store["corrupt"] == 1 and store["blobs"] == 0
    assert os.listdir(tmp_path / "store" / "tmp") == []


def test_tasks_keep_their_pace_while_a_large_blob_moves(stored, tmp_path):
    """The transfer goes a window of chunks at a time, each answered: the loop
    takes no-op tasks between chunks (the figure is bench/files_bench.py's)."""
    stored.start_worker("shell", slots=1)
    client = stored.client()
    big = write(tmp_path / "big", os.urandom(256 << 20))
    assert client.submit("shell", {"argv": ["true"]}).result(30).ok   # warm
    upload = client.upload([big])
    trips = []
    while not upload.done():
        started = time.monotonic()
        assert client.submit("shell", {"argv": ["true"]}).result(30).ok
        trips.append(time.monotonic() - started)
    upload.result()
    upload_time = sum(trips)
    assert len(trips) >= 5, "the upload took %.2fs: too fast to measure" % upload_time
    assert max(trips) < max(0.5, upload_time / 4), trips


UPLOADER = """
import os, sys, time
from computefarm.client import Client
from computefarm.storage.cas import digest_file
client = Client(sys.argv[1])
digest, size = digest_file(sys.argv[2])
client.upload([(digest, size, sys.argv[2])])
print("uploading", flush=True)
time.sleep(60)
"""


def test_what_a_killed_client_was_uploading_is_dropped(stored, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(os.urandom(512 << 20))
    proc = subprocess.Popen([sys.executable, "-c", UPLOADER, stored.address, str(big)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "uploading"
        temporary = tmp_path / "store" / "tmp"
        wait_until(lambda: os.listdir(temporary), what="the upload begun")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    wait_until(lambda: not os.listdir(temporary), what="the partial blob dropped")
    assert stored.client().status()["store"]["blobs"] == 0


def test_an_upload_goes_on_after_the_taskmanager_restarts(stored, tmp_path):
    client = stored.client()
    big = write(tmp_path / "big", os.urandom(384 << 20))
    upload = client.upload([big])
    wait_until(lambda: os.listdir(tmp_path / "store" / "tmp") or upload.done(),
               what="the upload begun")
    address = stored.address
    assert stored.stop(stored.taskmanager) == 0
    assert not upload.done()
    stored.start_taskmanager(bind=address)
    assert upload.result(60) is None
    target = tmp_path / "back"
    assert client.download(big[0], big[1], target).result(60) == str(target)
    assert digest_file(str(target))[0] == big[0]


def test_what_a_client_holds_is_held_again_by_a_restarted_taskmanager_and_let_go_with_it(
        stored):
    """Holds live in the TaskManager's memory: a client asks again when it is
    welcomed, here by the TaskManager started on the same port; over MAX_BATCH
    digests, some not in the store yet, and a hold asked twice counts once."""
    client = stored.client()
    blobs = [(digest_bytes(b"held %d" % i), len(b"held %d" % i), b"held %d" % i)
             for i in range(MAX_BATCH + 10)]
    later = [digest_bytes(b"later %d" % i) for i in range(5)]
    assert client.upload(blobs, hold=True).result(30) is None
    assert client.missing(later, hold=True).result(30) == set(later)
    assert client.missing(later[:2], hold=True).result(30) == set(later[:2])
    assert client.upload(blobs[:3]).result(30) is None           # not held: no change
    held = len(blobs) + len(later)
    assert client.status()["store"]["held"] == held
    address = stored.address
    assert stored.stop(stored.taskmanager) == 0
    stored.start_taskmanager(bind=address)
    wait_until(lambda: client.status()["store"]["held"] == held, timeout=30,
               what="the holds asked again")
    client.close()
    other = stored.client()
    wait_until(lambda: other.status()["store"]["held"] == 0, timeout=30,
               what="the holds let go with the client")


def test_a_snapshot_whose_file_is_not_what_its_digest_says_reads_it_again(stored, tmp_path):
    """A file rewritten in place keeping its size, mtime and inode (or one that
    changed while it was read) reaches the store as content that is not its
    digest: refused, and the snapshot reads every file again."""
    project = tmp_path / "project"
    project.mkdir()
    source = project / "main.c"
    source.write_text("int main() { return 0; }\n")
    old = time.time() - 60
    os.utime(source, (old, old))
    cache = str(tmp_path / "digests")
    stale = trees.DigestCache(cache)
    st = os.stat(source)
    stale.entries[str(source)] = [st.st_size, st.st_mtime_ns, st.st_ino,
                                  digest_bytes(b"int main() { return 1; }\n")]
    stale.changed = True
    stale.save()
    client = stored.client()
    files = ProjectFiles(client, project, cache_path=cache)
    files.snapshot()
    digest = digest_file(str(source))[0]
    assert files.manifest.files["main.c"][0] == digest
    store = client.status()["store"]
    assert store["corrupt"] == 1 and os.path.exists(tmp_path / "store" / digest[:2] / digest)
    assert trees.DigestCache(cache).entries[str(source)][3] == digest
