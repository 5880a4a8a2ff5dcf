"""blobruns.py: a python task's big function, arguments and result go by digest,
through the TaskManager's store, not inside messages."""

import hashlib
import os
import pickle
import re
import shutil
import time

import cloudpickle
import pytest
import yaml
from support import Farm, wait_until

from computefarm import defaults, pickling
from computefarm.client import FarmExecutor
from computefarm.exceptions import RemoteError, UsageError
from computefarm.storage.cas import digest_bytes
from computefarm.wire.protocol import Code

BIG = defaults.MAX_MESSAGE_SIZE + (16 << 20)       # more than any one message may carry


def test_arguments_and_a_result_bigger_than_a_message_travel_as_blobs(farm):
    farm.start_worker("python")
    data = os.urandom(1 << 20) * (BIG >> 20)
    with FarmExecutor(farm.address) as executor:
        future = executor.submit(lambda blob: (hashlib.sha256(blob).hexdigest(), blob[::-1]),
                                 data)
        digest, reversed_ = future.result(240)
        assert digest == hashlib.sha256(data).hexdigest()
        assert reversed_ == data[::-1]
        # both crossed the port in chunks: the arguments up, the result down
        transfers = executor.client.files.transfers
        assert transfers.sent_bytes >= len(data) and transfers.received_bytes >= len(data)
        assert executor.submit(len, b"small").result(30) == 5     # small ones stay inline
        spool = executor.client.files.spool
        assert os.listdir(spool) == []                 # the result's file: read and removed
    assert not os.path.exists(spool)                   # the folder went with the client


def test_a_big_function_crosses_the_port_once_and_each_slot_loads_it_once(farm, tmp_path):
    farm.start_worker("python", slots=2)

    def loaded(path):                   # nested: cloudpickle sends it by value
        with open(path, "a") as stream:
            stream.write("loaded\n")
        return path

    class Loads:                        # unpickling one: a line in the file
        def __init__(self, path):
            self.path = path

        def __reduce__(self):
            return (loaded, (self.path,))
    marker = Loads(str(tmp_path / "loads"))
    table = os.urandom(defaults.FUNCTION_INLINE_MAX * 4)          # carried by the closure

    def look(n):
        return marker is not None and table[n]
    blob = pickling.FunctionPickles().dumps(look)
    assert len(blob) > defaults.FUNCTION_INLINE_MAX
    with FarmExecutor(farm.address) as executor:
        futures = [executor.submit(look, n) for n in range(40)]
        assert [f.result(60) for f in futures] == [table[n] for n in range(40)]
        sent = executor.client.files.transfers.sent_bytes
        assert len(blob) <= sent < 2 * len(blob)                  # uploaded once
    loads = (tmp_path / "loads").read_text().splitlines()
    assert 1 <= len(loads) <= 2                                    # once per slot at most


def test_a_blob_the_store_lacks_fails_the_task_with_a_clear_error(farm):
    farm.start_worker("python")
    client = farm.client()
    function = pickling.FunctionPickles().dumps(len)
    missing = {"digest": "ab" * 32, "size": 10}
    result = client.submit("python", {"function": function,
                                      "blobs": {"arguments": missing}}).result(60)
    assert result.status == "error" and result.code == Code.STAGING
    assert "fetching the task's blobs" in result.error and "abababab" in result.error
    bad = client.submit("python", {"function": function, "arguments": pickle.dumps(((), {})),
                                   "blobs": {"arguments": {"digest": "../x", "size": 1}}})
    result = bad.result(60)
    assert result.status == "error"
    assert "blob 'arguments' must be {digest: a sha256, size: bytes}" in result.error
    # the worker is unharmed: the next task runs
    ok = client.submit("python", {"function": function,
                                  "arguments": pickle.dumps((("abc",), {}))}).result(60)
    assert ok.ok and pickle.loads(ok.value) == 3


def test_a_500_mb_result_arrives_and_its_worker_never_misses_a_heartbeat(farm):
    """The worker hashes a spilled result in a thread: with the tests' heartbeats
    (taken for dead after 0.6 s) a 500 MB result, whose hashing alone takes
    longer, arrives from its first attempt."""
    farm.start_worker("python")
    size = 500 << 20

    def make(n):
        blob = os.urandom(n)
        return hashlib.sha256(blob).hexdigest(), blob
    future = farm.client().submit("python", {"payload": cloudpickle.dumps((make, (size,), {}))})
    result = future.result(300)
    assert result.ok and result.attempt == 1, (result.status, result.error)
    assert result.value_blob["size"] > size
    digest, value = pickle.loads(result.value)
    assert len(value) == size and hashlib.sha256(value).hexdigest() == digest
    # (the client may be: this test's own thread holds the GIL to unpickle 500 MB)
    assert not re.search(r"worker \S+ on host \S+ stopped answering",
                         farm.taskmanager.log.read_text())


def test_big_arguments_from_a_future_s_callback_are_refused_clearly(farm):
    """A callback runs in the client's thread, which does the uploads: waiting
    for one there would wait for ever, so submit says why instead."""
    farm.start_worker("python")
    seen = []

    def again(_):
        try:
            executor.submit(len, b"x" * (defaults.PY_INLINE_MAX + 1))
        except Exception as exc:           # what submit raised in the callback
            seen.append(exc)
    with FarmExecutor(farm.address) as executor:
        first = executor.submit(time.sleep, 0.3)     # still running when the callback is added
        first.add_done_callback(again)
        assert first.result(60) is None
        wait_until(lambda: seen, timeout=10, what="the callback's submit")
        assert isinstance(seen[0], UsageError)
        assert "cannot be sent from a future's callback" in str(seen[0])
        assert executor.submit(len, b"x" * (defaults.PY_INLINE_MAX + 1)).result(60) == \
            defaults.PY_INLINE_MAX + 1                   # from the caller's thread: fine


def test_a_function_the_store_lost_is_sent_again_by_the_next_task(tmp_path):
    """The executor remembers which blobs the store has; when the store loses one
    (evicted, wiped), the task that needed it fails saying so, and the next one
    uploads it again instead of failing the same way for ever."""
    store = tmp_path / "tm-store"
    farm = Farm(tmp_path, store=str(store))
    try:
        farm.start_taskmanager()
        first = farm.start_worker("python", machine="m1", config=cache_config(tmp_path, "m1"))
        payload = os.urandom(4 * defaults.FUNCTION_INLINE_MAX)

        def big():                 # nested: pickled by value, with its payload
            return len(payload)
        with FarmExecutor(farm.address) as executor:
            assert executor.submit(big).result(60) == len(payload)
            for folder in store.iterdir():                  # the store lost every blob
                if folder.name != "tmp":
                    shutil.rmtree(folder)
            farm.stop(first)        # a worker whose cache is empty must fetch it
            farm.start_worker("python", machine="m2", config=cache_config(tmp_path, "m2"))
            with pytest.raises(RemoteError, match=Code.MISSING):
                executor.submit(big).result(60)
            assert executor.submit(big).result(60) == len(payload)   # sent again
    finally:
        farm.close()


def test_a_function_outlasts_other_uploads_while_its_executor_is_connected(tmp_path):
    """An executor's function blobs are held in the store: another client filling
    it evicts its own blobs, and the next task's worker (an empty cache) still
    finds the function there, first time."""
    store = tmp_path / "tm-store"
    farm = Farm(tmp_path, store=str(store), store_size=1_000_000)
    try:
        farm.start_taskmanager()
        first = farm.start_worker("python", machine="m1", config=cache_config(tmp_path, "m1"))
        payload = os.urandom(300_000)

        def big():                 # nested: pickled by value, with its payload
            return len(payload)
        with FarmExecutor(farm.address) as executor:
            assert executor.submit(big).result(60) == len(payload)
            other = farm.client()
            fillers = [os.urandom(300_000) for _ in range(3)]
            other.upload([(digest_bytes(data), len(data), data) for data in fillers]).result(60)
            store = other.status()["store"]
            assert store["evicted"] >= 1 and store["evicted_held"] == 0 and store["held"] == 1
            farm.stop(first)        # a worker whose cache is empty must fetch it
            farm.start_worker("python", machine="m2", config=cache_config(tmp_path, "m2"))
            assert executor.submit(big).result(60) == len(payload)
    finally:
        farm.close()


def cache_config(tmp_path, machine):
    config = tmp_path / ("%s.yaml" % machine)
    config.write_text(yaml.safe_dump({"machines": {machine: {"cache": str(tmp_path / machine)}}}))
    return config
