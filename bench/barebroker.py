"""The wire's limit on this machine: a bare pyzmq broker, for core_bench.py to compare with.

A ROUTER broker process, two DEALER worker processes and a DEALER client (the
caller), all on 127.0.0.1, every message msgpack-encoded and decoded by whoever
receives it. The client sends ``{id, body}``; the broker hands tasks to the
workers as their credit allows (each says how many it takes at once, and each
result gives one back), the worker decodes the task and answers ``{id, status}``,
the broker sends that to the client. No authentication, no validation, no
state beyond a queue: what any task farm built on ZeroMQ and msgpack pays at least.

``credit``: tasks a worker holds at once. 64 keeps its pipe busy (the wire's
limit); 1 is ZeroMQ's guide's load-balancing broker, each worker asking for its
next task with the last one's result: the setup the FarmExecutor issue's table
measured (12,800 to 14,200 tasks/s there, the same round trip).

``farm_hops``: the same broker with the hops a FarmExecutor round trip takes and
no work beyond decoding: every connection CURVE-encrypted, each worker handing
the task over a pipe to a slot process of its own and polling for its answer,
and the caller handing each task to a client thread (a queue and a wake-up
pipe) that owns the socket and resolves a Future. Its round trip is the least
those hops cost on this machine: what is left for the farm's own work.
"""

import collections
import multiprocessing
import os
import queue
import threading
import time
from concurrent.futures import Future

import msgpack
import zmq

PIPELINED = 64       # tasks a worker may hold at once (what its pipe keeps busy)


def _secure(sock, keys, server):
    """CURVE on ``sock`` when ``keys`` (the broker's (public, secret)) are given."""
    if keys is None:
        return
    if server:
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = keys
    else:
        sock.curve_serverkey = keys[0]
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()


def _broker(port_out, ready, keys):
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    _secure(sock, keys, server=True)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    port_out.value = port
    ready.set()
    queue = collections.deque()
    credit = {}                       # worker id -> tasks it may still take
    client = None
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while True:
        poller.poll(100)
        while True:
            try:
                sender, frame = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            message = msgpack.unpackb(frame)
            kind = message["kind"]
            if kind == "task":
                client = sender
                queue.append(message)
            elif kind == "ready":
                credit[sender] = message["credit"]
            elif kind == "result":
                credit[sender] += 1
                sock.send_multipart([client, msgpack.packb(message)])
        for worker in credit:
            while queue and credit[worker] > 0:
                credit[worker] -= 1
                sock.send_multipart([worker, msgpack.packb(queue.popleft())])


def _worker(port, credit, keys, slot):
    if slot:
        to_slot, from_slot = _start_slot()
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    _secure(sock, keys, server=False)
    sock.connect("tcp://127.0.0.1:%d" % port)
    sock.send(msgpack.packb({"kind": "ready", "credit": credit}))
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    if slot:
        poller.register(from_slot, zmq.POLLIN)
    while True:                       # until terminated
        if slot:
            poller.poll()
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                continue
            _write_frame(to_slot, frame)
            poller.poll()             # until the slot answers
            message = msgpack.unpackb(_read_frame(from_slot))
        else:
            message = msgpack.unpackb(sock.recv())
        sock.send(msgpack.packb({"kind": "result", "id": message["id"], "status": "ok"}))


def _start_slot():
    """A child that decodes each task sent down a pipe and answers up another;
    it ends when the worker's end of its pipe closes. (to_slot, from_slot) fds."""
    task_r, task_w = os.pipe()
    answer_r, answer_w = os.pipe()
    if os.fork() == 0:
        os.close(task_w)
        os.close(answer_r)
        while True:
            try:
                frame = _read_frame(task_r)
            except EOFError:
                os._exit(0)
            message = msgpack.unpackb(frame)
            _write_frame(answer_w, msgpack.packb({"id": message["id"], "status": "ok"}))
    os.close(task_r)
    os.close(answer_w)
    return task_w, answer_r


def _write_frame(fd, data):
    os.write(fd, len(data).to_bytes(4, "big") + data)


def _read_frame(fd):
    size = int.from_bytes(_read_exact(fd, 4), "big")
    return _read_exact(fd, size)


def _read_exact(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class _ClientThread:
    """The caller's side of a client library: tasks handed to a thread that owns
    the socket, results handed back through Futures."""

    def __init__(self, sock):
        self.sock = sock
        self.inbox = queue.SimpleQueue()
        self.futures = {}
        self.wake_r, self.wake_w = os.pipe()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def submit(self, message):
        future = Future()
        self.inbox.put((message, future))
        os.write(self.wake_w, b"x")
        return future

    def _run(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        while self.running:
            ready = dict(poller.poll(100))
            if self.wake_r in ready:
                os.read(self.wake_r, 4096)
                while True:
                    try:
                        message, future = self.inbox.get_nowait()
                    except queue.Empty:
                        break
                    self.futures[message["id"]] = future
                    self.sock.send(msgpack.packb(message))
            if self.sock in ready:
                while True:
                    try:
                        message = msgpack.unpackb(self.sock.recv(zmq.NOBLOCK))
                    except zmq.Again:
                        break
                    self.futures.pop(message["id"]).set_result(message)

    def close(self):
        self.running = False
        self.thread.join(5)
        os.close(self.wake_r)
        os.close(self.wake_w)


class BareBroker:
    """The broker and its two workers as child processes; ``throughput`` and
    ``latency`` from a client DEALER in this process."""

    def __init__(self, payload, credit=PIPELINED, farm_hops=False):
        self.payload = payload
        keys = zmq.curve_keypair() if farm_hops else None
        fork = multiprocessing.get_context("fork")
        port, ready = fork.Value("i", 0), fork.Event()
        self.broker = fork.Process(target=_broker, args=(port, ready, keys), daemon=True)
        self.broker.start()
        ready.wait(30)
        self.port = port.value
        self.workers = [fork.Process(target=_worker, args=(self.port, credit, keys, farm_hops),
                                     daemon=True)
                        for _ in range(2)]
        for worker in self.workers:
            worker.start()
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.DEALER)
        _secure(self.sock, keys, server=False)
        self.sock.connect("tcp://127.0.0.1:%d" % self.port)
        self.client = _ClientThread(self.sock) if farm_hops else None
        self.next_id = 0

    def _send(self):
        self.next_id += 1
        self.sock.send(msgpack.packb({"kind": "task", "id": self.next_id, "body": self.payload}))

    def _receive(self):
        message = msgpack.unpackb(self.sock.recv())
        assert message["status"] == "ok"

    def throughput(self, count):
        """Tasks a second with all ``count`` in flight (sent, then awaited)."""
        started = time.perf_counter()
        if self.client is not None:
            futures = []
            for _ in range(count):
                self.next_id += 1
                futures.append(self.client.submit(
                    {"kind": "task", "id": self.next_id, "body": self.payload}))
            for future in futures:
                assert future.result(60)["status"] == "ok"
            return count / (time.perf_counter() - started)
        for _ in range(count):
            self._send()
        for _ in range(count):
            self._receive()
        return count / (time.perf_counter() - started)

    def _round_trip(self):
        if self.client is None:
            self._send()
            self._receive()
            return
        self.next_id += 1
        message = self.client.submit({"kind": "task", "id": self.next_id, "body": self.payload})
        assert message.result(30)["status"] == "ok"

    def latency(self, count):
        """(p50, p99) round trip in ms, one task in flight."""
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            self._round_trip()
            samples.append(time.perf_counter() - started)
        samples.sort()
        return samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000

    def close(self):
        if self.client is not None:
            self.client.close()
        self.sock.close(0)
        self.context.term()
        for proc in self.workers + [self.broker]:
            proc.terminate()                 # SIGTERM to its pid
            proc.join(10)
