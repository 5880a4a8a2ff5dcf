"""Hypothesis fuzzing of the port with structurally valid messages of every type.

Authenticated peers of each role (their keys are authorized) send messages
made from the wire's own schemas (tests/wirefuzz.py, seeded by Hypothesis):
right shapes, but fields of the wrong type, out of range, NaN, oversized, bytes
keys, or simply valid and large (up to about 2 MB). Meanwhile a legitimate client runs a
build of 200 tasks. The TaskManager must never exit, never meet a bug
(``internal_errors``), keep its longest loop iteration and its memory bounded,
and the build must finish with every result right.

What bounds one iteration is what one message costs to decode: about 30 ms per
MB of small items. The fuzzer's messages stay within a few MB; a message near
``taskmanager.max_message_size`` (64 MiB) of tiny items would still take
seconds, until large payloads travel in chunks and the limit can come down.
"""

import random
import time

import psutil
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SecureFarm
from wirefuzz import Fuzzer

from computefarm.wire.protocol import Msg, decode, encode

PEERS = (("w1", "worker"), ("c1", "client"), ("fc", "client"), ("fw", "worker"),
         ("fm", "monitor"))
KEYS = {"client": "fc", "worker": "fw", "monitor": "fm"}
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
    try:
        yield farm, client, build, peers, psutil.Process(farm.taskmanager.pid)
    finally:
        for peer in peers.values():
            peer.close()
        farm.close()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 64),
       role=st.sampled_from(sorted(KEYS)), bad=st.sampled_from([0.0, 0.02, 0.2]))
def test_fuzzed_messages_of_every_type_never_hurt_the_farm(fuzzed, seed, role, bad):
    farm, _, _, peers, manager = fuzzed
    fuzzer = Fuzzer(random.Random(seed), bad=bad)
    peer = peers[role]
    for _ in range(40):
        try:
            peer.send(fuzzer.message(role)[1], zmq.NOBLOCK)
        except zmq.Again:
            pass
        while peer.poll(0):             # a peer that reads is not cut off
            peer.recv()
    assert farm.taskmanager.poll() is None
    assert manager.memory_info().rss < RSS_BOUND


def reference_decode_ms():
    """CPU ms this process takes to decode and check a RESULT of about 2 MiB of small
    items (the fuzzer's budget for one message): the median of five."""
    body = {"results": [{"id": "t%d" % i, "attempt": 1, "status": "ok",
                         "output": [{"stream": "stdout", "lines": ["x" * 8] * 120}]}
                        for i in range(2000)]}
    frame = encode(Msg.RESULT, body)
    times = []
    for _ in range(5):
        started = time.thread_time()
        decode(frame)
        times.append(time.thread_time() - started)
    return 1000 * sorted(times)[2]


def test_after_fuzzing_the_build_is_right_and_the_loop_stayed_short(fuzzed):
    farm, client, build, _, manager = fuzzed
    results = [future.result(120) for future in build]
    assert [r.status for r in results] == ["ok"] * BUILD
    assert [r.stdout for r in results] == [[str(i)] for i in range(BUILD)]
    status = client.status()
    assert status["internal_errors"] == 0
    assert status["refused_messages"] > 0
    # the work of one iteration, in CPU time: on a busy shared host the clock also
    # counts the time other processes had the CPU (the bench gives the clock's figure).
    # One iteration may have to decode one of the largest messages a peer may send:
    # the bound grows with what that costs on this machine (on the machine where the
    # hardening was measured, 100 ms was 4 times it). Three times: the reference is
    # measured in this process at another moment, and on two busy cores the same
    # decode's CPU time varies by a fifth (a turn of 2.55 times it failed 2.5).
    bound = max(LOOP_BOUND_MS, 3 * reference_decode_ms())
    assert status["loop"]["longest_cpu_ms"] < bound, (status["loop"], bound)
    assert manager.memory_info().rss < RSS_BOUND
