"""The wire format: round trips, and every kind of malformed frame refused."""

import msgpack
import pytest

from computefarm import defaults
from computefarm.exceptions import ProtocolError
from computefarm.wire import protocol
from computefarm.wire.protocol import Msg


def test_round_trip_keeps_bytes_opaque():
    task = {"id": "c:1", "capability": "python", "body": b"\x80\x05pickle?", "priority": 3}
    mtype, body = protocol.decode(protocol.encode(Msg.SUBMIT, {"tasks": [task]}))
    assert mtype is Msg.SUBMIT and body["tasks"][0] == task


REPORT = {"machine": "m", "host": "h", "interval": 1.0, "cores": 2, "cpu_percent": 5.0,
          "memory_available": 1 << 30, "owner_cpu": 0.0, "load_avg": [0.5, 0.4, 0.3]}


@pytest.mark.parametrize("frame, error", [
    (b"CF", "shorter than the header"),
    (b"ZZ\x01\x03\x80", "not a ComputeFarm frame"),
    (b"CF\x02\x03\x80", "protocol version 2"),
    (b"CF\x01\xff\x80", "unknown message type 255"),
    (b"CF\x01\x03\xc1", "does not decode"),
    (b"CF\x01\x03" + msgpack.packb([1, 2]), "not a map"),
    (protocol.encode(Msg.SUBMIT, {}), "^SUBMIT: field 'tasks' is missing$"),
    (protocol.encode(Msg.SUBMIT, {"tasks": [{"id": "a", "capability": "x", "body": "str"}]}),
     r"^SUBMIT.tasks\[0\].body: is a str, not bytes$"),
    (protocol.encode(Msg.SUBMIT, {"tasks": [1]}), r"^SUBMIT.tasks\[0\]: is a int, not a map$"),
    (protocol.encode(Msg.RESULT, {"results": [{"id": "a", "attempt": True, "status": "ok"}]}),
     r"^RESULT.results\[0\].attempt: is a bool, not an integer$"),
    (protocol.encode(Msg.HELLO, {"role": "client", "id": "x" * 500, "host": "h", "machine": "m"}),
     r"^HELLO.id: is longer than 200 characters$"),
    # the crashes of the hardening issue's items 1, 2 and 4, refused at the wire
    (protocol.encode(Msg.REPORT, dict(REPORT, load_avg=["x"])),
     r"^REPORT.load_avg\[0\]: is a str, not a number$"),
    (protocol.encode(Msg.REPORT, dict(REPORT, cpu_percent=float("nan"))),
     r"^REPORT.cpu_percent: nan is outside 0\.\.100$"),
    (protocol.encode(Msg.SUBMIT, {"tasks": [{"id": "a", "capability": "x", "body": b"",
                                             "requires": {b"os": "linux", "arch": "x"}}]}),
     r"^SUBMIT.tasks\[0\].requires: key b'os' is a bytes, not a string$"),
    (protocol.encode(Msg.HELLO, {"role": "worker", "id": "w", "host": "h", "machine": "m",
                                 "capabilities": {b"shell": {}}}),
     r"^HELLO.capabilities: key b'shell' is a bytes, not a string$"),
    (protocol.encode(Msg.HELLO, {"role": "worker", "id": "w", "host": "h", "machine": "m",
                                 "capabilities": {"shell": {"os": 1}}}),
     r"^HELLO.capabilities\['shell'\]\['os'\]: is a int, not a string$"),
    (protocol.encode(Msg.HELLO, {"role": "boss", "id": "w", "host": "h", "machine": "m"}),
     r"^HELLO.role: 'boss' is not one of client, logger, monitor, worker$"),
    (protocol.encode(Msg.CANCEL, {"ids": ["a"] * 2001}),
     r"^CANCEL.ids: has 2001 items, more than 2000$"),
    (protocol.encode(Msg.LOG, {"records": [{"logger": "l", "level": "INFO", "msg": "m",
                                            "fields": {"x": b"bytes"}}]}),
     r"^LOG.records\[0\].fields\['x'\]: is a bytes, not plain data$"),
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


def test_batches_keep_every_item_within_the_size_limit():
    ids = ["t%d" % i for i in range(25001)]
    bodies = list(protocol.batches(Msg.CANCEL, ids))
    assert [len(b["ids"]) for b in bodies] == [2000] * 12 + [1001]
    assert sum((b["ids"] for b in bodies), []) == ids
    for body in bodies:
        protocol.decode(protocol.encode(Msg.CANCEL, body))
    assert defaults.LOG_BATCH <= protocol.batch_size(Msg.LOG)
    records = [{"logger": "l", "level": "INFO", "msg": "x" * size}
               for size in (10, 600000, 600000, 2000000, 5)]
    weighed = list(protocol.batches(Msg.LOG, records, protocol.weigh_record))
    assert [len(b["records"]) for b in weighed] == [2, 1, 1, 1]   # ~1 MB each, or one


@pytest.mark.parametrize("mtype, body, error", [
    (Msg.GET, {"digest": "a" * 64, "offset": 0, "length": (1 << 20) + 1},
     r"GET\.length: 1048577 is outside 1\.\.1048576"),
    (Msg.FIND, {"ref": 1, "digests": ["../../etc/passwd" + "a" * 48]},
     r"FIND\.digests\[0\]: .* is not a sha256 digest"),
    (Msg.PUT, {"digest": "A" * 64, "size": 1, "offset": 0, "data": b"x"},
     r"PUT\.digest: .* is not a sha256 digest"),
])
def test_file_messages_that_could_hurt_a_store_are_refused(mtype, body, error):
    """A blob's name becomes a file name in stores; a GET's answer sits in the
    asker's queue: both are bounded by the schema before anything reads them."""
    with pytest.raises(ProtocolError, match=error):
        protocol.decode(protocol.encode(mtype, body))
