"""Identities own things (hardening items 9 to 11): routing ids are never shown and
cannot be taken over, task ids belong to the key that submitted them, a monitor
key speaks for its own machine only, and other users' tasks are counts."""

import json
import re
import signal

import pytest
import zmq
from support import running_secure_farm, wait_until

from computefarm.wire import protocol
from computefarm.wire.protocol import Code, Msg

PEERS = (("w1", "worker"), ("c1", "client"), ("c2", "client"), ("spare1", "monitor"),
         ("boss", "admin"))


@pytest.fixture
def secure(tmp_path):
    with running_secure_farm(tmp_path, PEERS) as farm:
        yield farm


def raw(farm, key, identity=None):
    peer = zmq.Context.instance().socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        peer.setsockopt(zmq.IDENTITY, identity)
    peer.curve_publickey, peer.curve_secretkey, peer.curve_serverkey = farm.curve(key)
    peer.connect(farm.address)
    return peer


def send(peer, mtype, body):
    peer.send(protocol.encode(mtype, body))


def expect(peer, *types, timeout=10.0):
    """The next message of one of ``types`` (others skipped), within ``timeout``;
    heartbeats go meanwhile, as a live peer's would."""
    def arrived():
        send(peer, Msg.HEARTBEAT, {})
        while peer.poll(0):
            mtype, body = protocol.recv_dealer(peer)
            if mtype in types:
                return mtype, body
        return None
    return wait_until(arrived, timeout=timeout, what="one of %s" % (types,))


def hello(role, machine="spare1", **extra):
    return protocol.hello(role, "%s-test" % role, "h", machine, 1, **extra)


def test_status_shows_no_routing_ids_and_only_counts_of_other_users_tasks(secure):
    secure.start_worker("shell", config=secure.peer_config("w1"))
    owner = secure.secure_client("c1")
    future = owner.submit("shell", {"cmd": "sleep 30"}, label="the-build")
    mine = wait_until(lambda: owner.status()["running"], what="the task running")
    assert mine[0]["id"] == future.task_id and mine[0]["label"] == "the-build"
    other = secure.secure_client("c2").status()
    text = json.dumps(other)
    assert other["running"] == [] and other["others_running"] == 1
    assert future.task_id not in text and "the-build" not in text
    assert not re.search(r"[0-9a-f]{32}", text), "a routing id is shown"
    assert secure.secure_client("boss").status()["running"][0]["id"] == future.task_id
    owner.cancel(future)
    assert future.result(30).status == "cancelled"


def test_a_routing_id_cannot_be_taken_by_another_key(secure):
    """A connection with the routing id of a live worker, under another key, gets
    nothing: the worker keeps its connection and its tasks."""
    identity = b"worker-victim-0123456789abcdef"
    victim = raw(secure, "w1", identity)
    send(victim, Msg.HELLO, hello("worker", slots=1, capabilities={"secret": {}}))
    expect(victim, Msg.WELCOME)
    thief = raw(secure, "spare1", identity)
    send(thief, Msg.HELLO, hello("monitor"))
    client = secure.secure_client("c1")
    futures = [client.submit("secret", {"cmd": "true"})]
    _, dispatch = expect(victim, Msg.DISPATCH)
    send(thief, Msg.HEARTBEAT, {})
    send(victim, Msg.RESULT, {"results": [protocol.result_item(
        dispatch["tasks"][0]["id"], dispatch["tasks"][0]["attempt"], "ok", exit_code=0)]})
    assert futures[0].result(30).status == "ok"
    futures.append(client.submit("secret", {"cmd": "true"}))
    expect(victim, Msg.DISPATCH)
    assert not thief.poll(500), "the thief received %r" % (protocol.recv_dealer(thief),)
    for peer in (victim, thief):
        peer.close(0)


def test_task_ids_belong_to_the_key_that_submitted_them(secure):
    """Another key that uses a victim's next ids, and cancels them, touches only
    tasks of its own; the victim's run is unharmed."""
    secure.start_worker("shell", config=secure.peer_config("w1"), slots=2)
    victim = secure.secure_client("c1")
    ids = ["%s:%d" % (victim.identity, n) for n in (1, 2)]
    thief = raw(secure, "c2")
    send(thief, Msg.HELLO, hello("client"))
    expect(thief, Msg.WELCOME)
    send(thief, Msg.SUBMIT, {"tasks": [
        {"id": task_id, "capability": "shell", "body": protocol.pack_body(
            {"cmd": "sleep 30"})} for task_id in ids]})
    futures = [victim.submit("shell", {"cmd": "echo %d" % n}) for n in (1, 2)]
    assert [f.task_id for f in futures] == ids
    send(thief, Msg.CANCEL, {"ids": ids})
    assert [f.result(30).stdout for f in futures] == [["1"], ["2"]]
    send(thief, Msg.CANCEL, {"ids": ids})          # its own two, still running: stopped
    _, results = expect(thief, Msg.RESULT, timeout=30)
    assert {r["id"] for r in results["results"]} <= set(ids)
    assert all(r["status"] == "cancelled" for r in results["results"])
    thief.close(0)


def test_after_a_restart_another_key_cannot_claim_a_running_task(secure, tmp_path):
    """A TaskManager restarted under a running task: another key resubmits the
    task's id before its owner does, and gets neither the task nor its output."""
    secure.start_worker("shell", config=secure.peer_config("w1"))
    owner = secure.secure_client("c1")
    marker = tmp_path / "go"
    future = owner.submit("shell", {"cmd": "while [ ! -e %s ]; do sleep 0.05; done; "
                                           "echo private" % marker})
    wait_until(lambda: owner.status()["running"], what="the task running")
    address = secure.address
    secure.stop(secure.taskmanager, signal.SIGKILL)
    thief = raw(secure, "c2")
    secure.start_taskmanager(bind=address)
    send(thief, Msg.HELLO, hello("client"))
    expect(thief, Msg.WELCOME)
    send(thief, Msg.SUBMIT, {"tasks": [{"id": future.task_id, "capability": "shell",
                                        "resume": True, "body": protocol.pack_body(
                                            {"cmd": "echo thief"})}]})
    marker.write_text("")
    assert future.result(60).stdout == ["private"]
    mtype, body = expect(thief, Msg.RESULT, Msg.NOTICE, timeout=30)
    assert "private" not in json.dumps(body, default=repr)
    thief.close(0)


def test_a_monitor_key_reports_for_its_own_machine_only(secure):
    peer = raw(secure, "spare1")
    send(peer, Msg.HELLO, hello("monitor", machine="someone-elses"))
    _, error = expect(peer, Msg.ERROR)
    assert error["code"] == Code.MACHINE_BOUND
    assert "speaks for machine 'spare1' only" in error["text"]
    send(peer, Msg.HELLO, hello("monitor", machine="spare1"))
    expect(peer, Msg.WELCOME)
    peer.close(0)
