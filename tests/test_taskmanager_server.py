"""The TaskManager service in this process: real sockets, a fake clock.

``TaskManager`` is bound to ``tcp://127.0.0.1:0`` without keys and without a log
forwarder, and driven by calling ``loop(now)`` with the time a ``FakeClock`` says;
peers are pyzmq DEALERs speaking the wire protocol through ``wire.protocol``. Real
time is only spent in short socket polls, each wait bounded by a deadline; the
TaskManager's notion of time (heartbeats, expiry) moves only when a test advances
the clock.
"""

import gc
import time

import pytest
import zmq

from computefarm import localkeys
from computefarm.config import TaskManagerConfig
from computefarm.taskmanager.peers import scope
from computefarm.taskmanager.server import TaskManager
from computefarm.wire import protocol
from computefarm.wire.protocol import Code, Msg

INTERVAL = 0.5                  # heartbeat interval of the TaskManager (fake seconds)
LIVENESS = 3
TIMEOUT = INTERVAL * LIVENESS   # silence after which a peer is dropped
DEADLINE = 10.0                 # real seconds any expected message may take
SHELL = {"shell": {"platform": "linux-x86_64"}}


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Peer:
    """A DEALER that speaks the wire protocol and keeps what it has not yet looked at."""

    def __init__(self, context, endpoint, name):
        self.name = name
        self.rid = name.encode()
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, self.rid)
        self.socket.setsockopt(zmq.LINGER, 0)
        # a TaskManager on loopback without keys takes this user's local keys only
        (self.socket.curve_publickey, self.socket.curve_secretkey,
         self.socket.curve_serverkey) = localkeys.peer_curve(endpoint)
        self.socket.connect(endpoint)
        self.inbox = []          # (Msg, body) received, not yet taken

    def send(self, mtype, body):
        self.socket.send(protocol.encode(mtype, body))

    def receive(self):
        while self.socket.poll(0):
            frames = self.socket.recv_multipart()
            assert len(frames) == 1, frames
            self.inbox.append(protocol.decode(frames[0]))

    def take(self, mtype, where=lambda body: True):
        """The first message of type ``mtype`` (or one of them) ``where`` accepts."""
        kinds = mtype if isinstance(mtype, tuple) else (mtype,)
        for index, (kind, body) in enumerate(self.inbox):
            if kind in kinds and where(body):
                return self.inbox.pop(index)[1]
        return None

    def kinds(self):
        return [kind.name for kind, _ in self.inbox if kind != Msg.HEARTBEAT]

    def close(self):
        self.socket.close(0)


class Farm:
    """The TaskManager under test, its fake clock and the peers of one test."""

    def __init__(self, taskmanager, clock, context):
        self.tm, self.clock, self.context = taskmanager, clock, context
        self.peers = []

    def peer(self, name):
        peer = Peer(self.context, self.tm.endpoint, name)
        self.peers.append(peer)
        return peer

    def turn(self):
        """One iteration of the service at the fake time (while it runs), then what
        peers received."""
        if self.tm.socket is not None:
            self.tm.loop(self.clock())
        else:
            time.sleep(0.01)
        for peer in self.peers:
            peer.receive()

    def expect(self, peer, mtype, where=lambda body: True, what=None):
        """Loop the service until ``peer`` receives ``mtype`` (matching ``where``)."""
        deadline = time.monotonic() + DEADLINE
        while True:
            body = peer.take(mtype, where)
            if body is not None:
                return body
            if time.monotonic() > deadline:
                raise AssertionError("%s got no %s%s within %.0f s; it got %s" % (
                    peer.name, "/".join(k.name for k in (
                        mtype if isinstance(mtype, tuple) else (mtype,))),
                    " (%s)" % what if what else "", DEADLINE, peer.kinds()))
            self.turn()

    def settle(self, turns=5):
        """A few iterations, for what is in flight to arrive (assertions that nothing came)."""
        for _ in range(turns):
            self.turn()

    def hello(self, peer, role, **extra):
        peer.send(Msg.HELLO, protocol.hello(role, peer.name, "host-" + peer.name,
                                            "machine-" + peer.name, 1, **extra))
        return self.expect(peer, Msg.WELCOME, what="after HELLO")

    def worker(self, name, slots=1, capabilities=SHELL, running=()):
        peer = self.peer(name)
        self.hello(peer, "worker", slots=slots, capabilities=capabilities,
                   running=list(running), version="test")
        return peer

    def client(self, name):
        peer = self.peer(name)
        self.hello(peer, "client")
        return peer

    def status(self, client):
        client.send(Msg.STATUS, {})
        return self.expect(client, Msg.STATE)["status"]

    def heard_from(self, *peers):
        """Each peer sends a HEARTBEAT, handled at the current fake time (which must
        have moved since they last sent anything)."""
        for peer in peers:
            peer.send(Msg.HEARTBEAT, {})
        now, deadline = self.clock(), time.monotonic() + DEADLINE
        while any(self.tm.state.peers[p.rid].last_seen != now for p in peers):
            assert time.monotonic() < deadline, "heartbeats not handled"
            self.turn()


def scoped(task_id):
    """The id the TaskManager and workers know a task by: the submitting key's
    scope (here the user's local key, as every test peer's) before its own id."""
    return scope(localkeys.peer_curve("tcp://127.0.0.1:1")[0]) + task_id


def dispatched(body):
    """(id, attempt) of each task: the id its client gave it (without its scope)."""
    return [(t["id"].split("/", 1)[-1], t["attempt"]) for t in body["tasks"]]


def acked(farm, worker, task_id):
    """The TaskManager's ACK of a result: riding on a DISPATCH, or on its own at a
    heartbeat round (at most an interval of fake time later)."""
    farm.settle()
    farm.clock.advance(INTERVAL)
    return farm.expect(worker, (Msg.ACK, Msg.DISPATCH),
                       lambda b: task_id in b.get("ids", b.get("acks", ())), what="ACK")


def task(task_id, capability="shell", **extra):
    return dict({"id": task_id, "capability": capability,
                 "body": protocol.pack_body({"cmd": "true"})}, **extra)


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def farm(context):
    threshold = gc.get_threshold()      # initialize() turns automatic full collections off
    clock = FakeClock()
    config = TaskManagerConfig(heartbeat_interval=INTERVAL, heartbeat_liveness=LIVENESS,
                               recovery_grace=0.5)
    tm = TaskManager(config, bind="tcp://127.0.0.1:0", context=context, clock=clock,
                     logging_config=None)
    tm.initialize()
    farm = Farm(tm, clock, context)
    try:
        yield farm
    finally:
        tm.shutdown()
        for peer in farm.peers:
            peer.close()
        gc.set_threshold(*threshold)


def test_a_task_goes_from_submit_to_dispatch_to_result(farm):
    worker = farm.worker("w1")
    client = farm.client("c1")
    client.send(Msg.SUBMIT, {"tasks": [task("t1", label="first")]})
    body = farm.expect(worker, Msg.DISPATCH, what="of t1")
    assert dispatched(body) == [("t1", 1)]
    assert body["tasks"][0]["body"] == protocol.pack_body({"cmd": "true"})
    worker.send(Msg.RESULT, {"results": [protocol.result_item(scoped("t1"), 1, "ok", exit_code=0)]})
    assert acked(farm, worker, scoped("t1"))
    result = farm.expect(client, Msg.RESULT)["results"]
    assert [(r["id"], r["attempt"], r["status"], r["exit_code"]) for r in result] == [
        ("t1", 1, "ok", 0)]
    assert (result[0]["worker"], result[0]["host"], result[0]["machine"]) == (
        "w1", "host-w1", "machine-w1")
    status = farm.status(client)
    assert status["running"] == [] and status["queues"] == {}
    assert farm.tm.state.tasks == {}
    farm.tm.shutdown()                  # BYE to every peer
    assert farm.expect(worker, Msg.BYE) and farm.expect(client, Msg.BYE)


def test_a_silent_worker_expires_after_interval_times_liveness_and_its_task_moves(farm):
    lost = farm.worker("w1")
    client = farm.client("c1")
    client.send(Msg.SUBMIT, {"tasks": [task("t1")]})
    assert dispatched(farm.expect(lost, Msg.DISPATCH)) == [("t1", 1)]
    spare = farm.worker("w2")
    farm.settle()
    last_heard = farm.tm.state.peers[b"w1"].last_seen   # w1 says nothing from here on
    assert last_heard == farm.clock()
    expired_at = None
    while expired_at is None:
        farm.clock.advance(INTERVAL / 2)
        farm.heard_from(spare, client)
        farm.settle(2)
        if b"w1" not in farm.tm.state.peers:
            expired_at = farm.clock()
        assert farm.clock() - last_heard < TIMEOUT + 2 * INTERVAL, "w1 never expired"
    assert expired_at - last_heard > TIMEOUT, "expired after %.2f s of silence, not %.2f" % (
        expired_at - last_heard, TIMEOUT)
    assert b"w2" in farm.tm.state.peers and b"c1" in farm.tm.state.peers
    assert dispatched(farm.expect(spare, Msg.DISPATCH, what="of t1 again")) == [("t1", 2)]
    spare.send(Msg.RESULT, {"results": [protocol.result_item(scoped("t1"), 2, "ok", exit_code=0)]})
    result = farm.expect(client, Msg.RESULT)["results"]
    assert [(r["id"], r["attempt"], r["status"], r["worker"]) for r in result] == [
        ("t1", 2, "ok", "w2")]
    status = farm.status(client)
    assert status["expired"] == {"worker": 1}
    assert sorted(w["name"] for w in status["workers"]) == ["w2"]


def test_a_hello_as_another_role_is_refused_and_the_first_registration_stays(farm):
    worker = farm.worker("w1")
    worker.send(Msg.HELLO, protocol.hello("client", "w1", "host-w1", "machine-w1", 1))
    error = farm.expect(worker, Msg.ERROR)
    assert error["code"] == Code.ROLE_FIXED
    assert farm.tm.state.peers[b"w1"].role == "worker"
    assert list(farm.tm.state.workers) == [b"w1"] and not farm.tm.state.clients
    client = farm.client("c1")          # it still gets work as a worker
    client.send(Msg.SUBMIT, {"tasks": [task("t1")]})
    assert dispatched(farm.expect(worker, Msg.DISPATCH)) == [("t1", 1)]
    worker.send(Msg.SUBMIT, {"tasks": [task("t2")]})
    assert farm.expect(worker, Msg.ERROR)["code"] == Code.NOT_ALLOWED


def test_a_repeated_hello_of_the_same_role_changes_nothing(farm):
    worker = farm.worker("w1", slots=2)
    client = farm.client("c1")
    client.send(Msg.SUBMIT, {"tasks": [task("t1")]})
    assert dispatched(farm.expect(worker, Msg.DISPATCH)) == [("t1", 1)]
    for _ in range(2):
        farm.hello(worker, "worker", slots=2, capabilities=SHELL, version="test",
                   running=[{"id": scoped("t1"), "attempt": 1, "capability": "shell"}])
    state = farm.tm.state
    assert len(state.peers) == 2 and list(state.workers) == [b"w1"]
    assert list(state.workers[b"w1"].running) == [scoped("t1")]
    task_record = state.tasks[scoped("t1")]
    assert task_record.worker is state.workers[b"w1"] and task_record.attempt == 1
    farm.settle()
    assert worker.take(Msg.CANCEL) is None and worker.take(Msg.DISPATCH) is None
    status = farm.status(client)
    assert [(w["name"], w["used"]) for w in status["workers"]] == [("w1", 1)]
    worker.send(Msg.RESULT, {"results": [protocol.result_item(scoped("t1"), 1, "ok", exit_code=0)]})
    assert [r["status"] for r in farm.expect(client, Msg.RESULT)["results"]] == ["ok"]


def test_a_message_type_a_role_may_not_send_is_refused(farm):
    client = farm.client("c1")
    monitor = farm.peer("mon1")
    farm.hello(monitor, "monitor")
    client.send(Msg.RESULT, {"results": [protocol.result_item("t1", 1, "ok")]})
    monitor.send(Msg.SUBMIT, {"tasks": [task("t1")]})
    assert farm.expect(client, Msg.ERROR)["code"] == Code.NOT_ALLOWED
    assert farm.expect(monitor, Msg.ERROR)["code"] == Code.NOT_ALLOWED
    assert farm.tm.state.tasks == {}
    assert farm.status(client)["refused_messages"] == 2


def test_a_malformed_frame_is_refused_and_the_loop_goes_on(farm):
    client = farm.client("c1")
    client.socket.send(b"not a frame")
    assert farm.expect(client, Msg.ERROR)["code"] == Code.MALFORMED
    client.send(Msg.SUBMIT, {"tasks": [{"id": "t1", "capability": "shell"}]})   # no body
    assert farm.expect(client, Msg.ERROR)["code"] == Code.MALFORMED
    stranger = farm.peer("stranger")
    stranger.socket.send_multipart([b"", b"two frames"])
    assert farm.expect(stranger, Msg.ERROR)["code"] == Code.MALFORMED
    worker = farm.worker("w1")          # the service still works
    client.send(Msg.SUBMIT, {"tasks": [task("t1")]})
    assert dispatched(farm.expect(worker, Msg.DISPATCH)) == [("t1", 1)]
    assert farm.status(client)["refused_messages"] == 3


def test_a_stranger_is_asked_to_say_hello(farm):
    stranger = farm.peer("stranger")
    stranger.send(Msg.SUBMIT, {"tasks": [task("t1")]})
    assert "hello" in farm.expect(stranger, Msg.RECONNECT)["reason"]
    assert farm.tm.state.tasks == {} and not farm.tm.state.peers


def test_a_task_nobody_can_run_gets_a_no_capability_notice(farm):
    farm.worker("w1")
    client = farm.client("c1")
    client.send(Msg.SUBMIT, {"tasks": [task("g1", capability="gcc"), task("s1")]})
    notice = farm.expect(client, Msg.NOTICE)
    assert (notice["code"], notice["level"], notice["ids"]) == (Code.NO_CAPABILITY, "warning",
                                                                 ["g1"])
    assert "gcc" in notice["text"]
    client.send(Msg.SUBMIT, {"tasks": [task("g2", capability="gcc")]})
    farm.settle()
    assert client.take(Msg.NOTICE) is None      # told once per reason
    status = farm.status(client)
    assert status["queues"] == {"gcc": 2}


def test_state_reports_the_loop_and_expiries(farm):
    client = farm.client("c1")
    farm.settle(3)
    status = farm.status(client)
    assert status["loop"]["iterations"] >= 3
    assert isinstance(status["loop"]["longest_ms"], float) and status["loop"]["longest_ms"] >= 0
    assert status["expired"] == {}
    silent = farm.client("c2")
    for _ in range(int(TIMEOUT / INTERVAL) + 3):
        farm.clock.advance(INTERVAL)
        farm.heard_from(client)
        farm.settle(1)
    assert farm.status(client)["expired"] == {"client": 1}
    silent.send(Msg.HEARTBEAT, {})
    assert "hello" in farm.expect(silent, Msg.RECONNECT)["reason"]
