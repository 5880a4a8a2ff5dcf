"""Hypothesis fuzzing of the port with structurally valid messages of every type.

Authenticated peers of each role (their keys are authorized) send messages
made from the wire's own schemas (tests/wirefuzz.py, seeded by Hypothesis):
right shapes, but fields of the wrong type, out of range, NaN, oversized, bytes
keys, or simply valid and large (up to about 2 MB). Meanwhile a legitimate client runs a
build of 200 tasks. The TaskManager must never exit, never meet a bug
(``internal_errors``), keep its longest loop iteration and its memory bounded,
and the build must finish with every result right.

What bounds one iteration is what one message costs to decode: about 30 ms per
MB of small items, more for some shapes (a fuzzed RESULT of 2 MB took three
times a reference RESULT of small items of that size). The loop bound is set
from the costliest of the largest frames actually sent, decoded again here. The
fuzzer's messages stay within a few MB; a message near
``taskmanager.max_message_size`` (64 MiB) of tiny items would still take
seconds, until large payloads travel in chunks and the limit can come down.
"""

import heapq
import random
import time

import psutil
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SecureFarm
from wirefuzz import Fuzzer

from computefarm.exceptions import ProtocolError
from computefarm.wire.protocol import decode

PEERS = (("w1", "worker"), ("c1", "client"), ("fc", "client"), ("fw", "worker"),
         ("fm", "monitor"))
KEYS = {"client": "fc", "worker": "fw", "monitor": "fm"}
KEEP = 20                           # largest frames sent, kept to measure the loop bound
BUILD = 200
LOOP_BOUND_MS = 100
RSS_BOUND = 200 * 1024 * 1024
QUEUED_BYTES = 32 * 1024 * 1024     # what one client may hold queued (farm.yaml)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    farm = SecureFarm(tmp_path_factory.mktemp("fuzz"), peers=PEERS,
                      max_queued_bytes_per_client=QUEUED_BYTES)
    farm.start_taskmanager()
    farm.start_worker("shell", slots=2, config=farm.peer_config("w1"))
    client = farm.secure_client("c1", on_notice=lambda *args: None)
    build = [client.submit("shell", {"cmd": "sleep 0.02; echo %d" % i}) for i in range(BUILD)]
    peers = {role: farm.raw_peer(farm.curve(key)) for role, key in KEYS.items()}
    largest = []                    # (size, n, frame): a heap of the KEEP largest sent
    try:
        yield farm, client, build, peers, psutil.Process(farm.taskmanager.pid), largest
    finally:
        for peer in peers.values():
            peer.close()
        farm.close()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 64),
       role=st.sampled_from(sorted(KEYS)), bad=st.sampled_from([0.0, 0.02, 0.2]))
def test_fuzzed_messages_of_every_type_never_hurt_the_farm(fuzzed, seed, role, bad):
    farm, _, _, peers, manager, largest = fuzzed
    fuzzer = Fuzzer(random.Random(seed), bad=bad)
    peer = peers[role]
    for _ in range(40):
        frame = fuzzer.message(role)[1]
        try:
            peer.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            continue
        entry = (len(frame), seed, frame)
        if len(largest) < KEEP:
            heapq.heappush(largest, entry)
        elif entry > largest[0]:
            heapq.heapreplace(largest, entry)
        while peer.poll(0):             # a peer that reads is not cut off
            peer.recv()
    assert farm.taskmanager.poll() is None
    assert manager.memory_info().rss < RSS_BOUND


def decode_ms(frame):
    """CPU ms this process takes to decode and check ``frame``: the median of three
    (a frame the wire refuses costs what it took to find out)."""
    times = []
    for _ in range(3):
        started = time.thread_time()
        try:
            decode(frame)
        except ProtocolError:
            pass
        times.append(time.thread_time() - started)
    return 1000 * sorted(times)[1]


def test_after_fuzzing_the_build_is_right_and_the_loop_stayed_short(fuzzed):
    farm, client, build, _, manager, largest = fuzzed
    if not largest:                  # run alone (-k): the fuzzing first, as in the module
        test_fuzzed_messages_of_every_type_never_hurt_the_farm(fuzzed=fuzzed)
    results = [future.result(120) for future in build]
    assert [r.status for r in results] == ["ok"] * BUILD
    assert [r.stdout for r in results] == [[str(i)] for i in range(BUILD)]
    status = client.status()
    assert status["internal_errors"] == 0
    assert status["refused_messages"] > 0
    # the work of one iteration, in CPU time: on a busy shared host the clock also
    # counts the time other processes had the CPU (the bench gives the clock's figure).
    # One iteration may have to decode one of the largest messages sent: the bound
    # grows with what the costliest of them takes to decode on this machine, here
    # (the TaskManager also checks and handles it, after up to DRAIN_TIME of other
    # messages). Three times: on two busy cores the same decode's CPU time varies by
    # a fifth, and this process measures it at another moment.
    assert len(largest) == KEEP
    bound = max(LOOP_BOUND_MS, 3 * max(decode_ms(frame) for _, _, frame in largest))
    assert status["loop"]["longest_cpu_ms"] < bound, (status["loop"], bound)
    assert manager.memory_info().rss < RSS_BOUND
