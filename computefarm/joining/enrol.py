"""The new machine's side of enrolment: one ENROL over CURVE, one answer.

The key pair is made here and its secret half never leaves this process (the
caller writes it 0600). The TaskManager is known by the public key in the
token, so the secret is only ever sent, encrypted, to the real one.
"""

import socket
import time

import zmq

from .. import defaults
from ..exceptions import AccessRefused, FarmError, FarmUnreachable, ProtocolError
from ..wire import protocol
from ..wire.link import HANDSHAKES
from ..wire.protocol import Code, Msg


def enrol(address, server_public, secret, name=None, timeout=defaults.ENROL_TIMEOUT,
          context=None, clock=time.monotonic):
    """``(public, secret key, ENROLLED body)``; AccessRefused when the TaskManager
    says no, FarmUnreachable when it does not answer within ``timeout``."""
    context = context or zmq.Context.instance()
    public, secret_key = zmq.curve_keypair()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret_key
    monitor = sock.get_monitor_socket(HANDSHAKES)
    try:
        sock.connect(address)
        protocol.send(sock, Msg.ENROL, protocol.enrol(secret, socket.gethostname(), name))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        deadline = clock() + timeout
        while clock() < deadline:
            ready = dict(poller.poll(max(0.0, deadline - clock()) * 1000))
            if monitor in ready:
                _handshake(protocol.recv_monitor_event(monitor, zmq.NOBLOCK), address)
            if sock in ready:
                answer = _answer(sock, address)
                if answer is not None:
                    return public, secret_key, answer
        raise FarmUnreachable(
            "no answer from the TaskManager at %s within %.0f s: is it running, and does "
            "this machine reach it (the token names that address and its key)?"
            % (address, timeout))
    finally:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)


def _handshake(event, address):
    if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        raise AccessRefused(
            "the TaskManager at %s refused this machine: no invitation is open there "
            "(expired, used up or revoked), or this address failed too often recently"
            % address)
    if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        raise AccessRefused("the TaskManager at %s does not speak CURVE with the key in "
                            "this invitation" % address)


def _answer(sock, address):
    try:
        mtype, body = protocol.recv_dealer(sock)
    except zmq.Again:
        return None
    except ProtocolError as exc:
        raise FarmError("the TaskManager at %s answered something unreadable: %s"
                        % (address, exc)) from None
    if mtype == Msg.ENROLLED:
        return body
    if mtype == Msg.ERROR:
        if body.get("code") == Code.ENROL_REFUSED:
            raise AccessRefused("the TaskManager at %s refused the invitation: %s"
                                % (address, body["text"].partition(": ")[2] or body["text"]))
        raise AccessRefused("the TaskManager at %s refused: %s" % (address, body["text"]))
    return None
