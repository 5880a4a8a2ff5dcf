"""The TaskManager's blob service on its own: what peers hold and its bounds."""

import pytest

from computefarm import defaults
from computefarm.storage.cas import BlobStore, digest_bytes
from computefarm.taskmanager import blobs as blobs_module
from computefarm.taskmanager.blobs import BlobService
from computefarm.wire import protocol
from computefarm.wire.protocol import Msg


@pytest.fixture
def service(tmp_path):
    sent = []
    blobs = BlobService(BlobStore(tmp_path / "store", limit=1000),
                        lambda rid, mtype, body: sent.append((rid, mtype, body)))
    try:
        yield blobs, sent
    finally:
        blobs.close()


def test_a_peer_holds_at_most_its_share_and_all_peers_theirs(service, monkeypatch, caplog):
    monkeypatch.setattr(defaults, "HELD_BLOBS", 5)
    monkeypatch.setattr(defaults, "HELD_BLOBS_ALL", 8)
    blobs, sent = service
    digests = [digest_bytes(b"%d" % i) for i in range(12)]
    blobs.find(b"a", protocol.find(1, digests[:7], hold=True))
    blobs.find(b"a", protocol.find(2, digests[7:9], hold=True))       # said once
    blobs.find(b"b", protocol.find(3, digests[:2] + digests[9:12], hold=True))
    blobs.find(b"c", protocol.find(4, digests[:3]))                     # asks only
    assert [len(blobs.holds[rid]) for rid in (b"a", b"b")] == [5, 3]
    assert blobs.holding == 8 and sorted(blobs.store.held.values()) == [1] * 4 + [2] * 2
    assert [m for _, m, _ in sent] == [Msg.FOUND] * 4                   # each answered
    assert sent[0][2]["missing"] == digests[:7]
    warned = [r.getMessage() for r in caplog.records if "no more are held" in r.getMessage()]
    assert len(warned) == 2 and "peer 61 holds 5 blobs" in warned[0]
    monkeypatch.setattr(blobs_module, "RELEASES_PER_TICK", 3)     # a few a tick
    blobs.tidy({b"b": object()})                        # a left: what it held goes
    assert b"a" not in blobs.holds and blobs.holding == 5
    blobs.tidy({b"b": object()})
    assert blobs.holding == 3 and not blobs.releasing
    assert sorted(blobs.store.held) == sorted(digests[:2] + digests[9:10])
    blobs.tidy({})
    assert blobs.holding == 0 and not blobs.store.held and not blobs.overheld
