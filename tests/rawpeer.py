"""A hostile peer for the tests: sends frames as they are, run inside a test host.

    python rawpeer.py ADDRESS FRAMES_FILE [--no-read] [--linger S]

FRAMES_FILE is msgpack: a list of ``[count, frame]`` (each frame sent ``count``
times, as it is). The CURVE keys, if any, come in RAWPEER_CURVE (public, secret
and server public key, z85, space separated). It prints one JSON line: how many
frames it sent and the types of the replies it read (unless --no-read), then
closes its socket without waiting (what a peer that vanishes does).
"""

import argparse
import json
import os
import time

import msgpack
import zmq


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("frames")
    parser.add_argument("--no-read", action="store_true")
    parser.add_argument("--linger", type=float, default=1.0,
                        help="seconds to keep reading replies after the last send")
    parser.add_argument("--identity")
    options = parser.parse_args()
    with open(options.frames, "rb") as stream:
        program = msgpack.unpackb(stream.read(), raw=False)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 1000 if options.no_read else 0)
    if options.identity:
        sock.setsockopt(zmq.IDENTITY, options.identity.encode())
    curve = os.environ.get("RAWPEER_CURVE")
    if curve:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = \
            [key.encode() for key in curve.split()]
    sock.connect(options.address)
    sent, replies = 0, {}

    def read():
        while not options.no_read and sock.poll(0):
            frame = sock.recv()
            kind = frame[3] if len(frame) > 3 else -1
            replies[kind] = replies.get(kind, 0) + 1

    for count, frame in program:
        for _ in range(count):
            sock.send(frame)
            sent += 1
            if sent % 100 == 0:
                read()
    deadline = time.monotonic() + options.linger
    while time.monotonic() < deadline:
        read()
        time.sleep(0.01)
    print(json.dumps({"sent": sent, "replies": {str(k): v for k, v in replies.items()}}),
          flush=True)
    sock.close(0)


if __name__ == "__main__":
    main()
