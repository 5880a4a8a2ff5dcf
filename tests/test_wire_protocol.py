"""The wire format: round trips, and every kind of malformed frame refused."""

import msgpack
import pytest

from computefarm.exceptions import ProtocolError
from computefarm.wire import protocol
from computefarm.wire.protocol import Msg


def test_round_trip_keeps_bytes_opaque():
    task = {"id": "c:1", "capability": "python", "body": b"\x80\x05pickle?", "priority": 3}
    mtype, body = protocol.decode(protocol.encode(Msg.SUBMIT, {"tasks": [task]}))
    assert mtype is Msg.SUBMIT and body["tasks"][0] == task


@pytest.mark.parametrize("frame, error", [
    (b"CF", "shorter than the header"),
    (b"ZZ\x01\x03\x80", "not a ComputeFarm frame"),
    (b"CF\x02\x03\x80", "protocol version 2"),
    (b"CF\x01\xff\x80", "unknown message type 255"),
    (b"CF\x01\x03\xc1", "does not decode"),
    (b"CF\x01\x03" + msgpack.packb([1, 2]), "not a map"),
    (protocol.encode(Msg.SUBMIT, {}), "missing field 'tasks'"),
    (protocol.encode(Msg.SUBMIT, {"tasks": [{"id": "a", "capability": "x", "body": "str"}]}),
     "field 'body' is a str"),
    (protocol.encode(Msg.SUBMIT, {"tasks": [1]}), "is not a map"),
    (protocol.encode(Msg.RESULT, {"results": [{"id": "a", "attempt": True, "status": "ok"}]}),
     "field 'attempt' is a bool"),
    (protocol.encode(Msg.HELLO, {"role": "client", "id": "x" * 500, "host": "h", "machine": "m"}),
     "id longer than"),
])
def test_malformed_frames_are_refused(frame, error):
    with pytest.raises(ProtocolError, match=error):
        protocol.decode(frame)


def test_unknown_fields_are_ignored():
    mtype, body = protocol.decode(protocol.encode(Msg.HEARTBEAT, {"future": 1}))
    assert mtype is Msg.HEARTBEAT and body == {"future": 1}


def test_random_bytes_never_raise_anything_but_protocol_error():
    import random
    rng = random.Random(7)
    valid = protocol.encode(Msg.SUBMIT, {"tasks": [{"id": "a", "capability": "c", "body": b""}]})
    for _ in range(5000):
        frame = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        try:
            protocol.decode(bytes(frame))
        except ProtocolError:
            pass
