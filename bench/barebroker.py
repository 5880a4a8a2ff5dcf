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
"""

import collections
import multiprocessing
import time

import msgpack
import zmq

PIPELINED = 64       # tasks a worker may hold at once (what its pipe keeps busy)


def _broker(port_out, ready):
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
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


def _worker(port, credit):
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.connect("tcp://127.0.0.1:%d" % port)
    sock.send(msgpack.packb({"kind": "ready", "credit": credit}))
    while True:                       # until terminated
        message = msgpack.unpackb(sock.recv())
        sock.send(msgpack.packb({"kind": "result", "id": message["id"], "status": "ok"}))


class BareBroker:
    """The broker and its two workers as child processes; ``throughput`` and
    ``latency`` from a client DEALER in this process."""

    def __init__(self, payload, credit=PIPELINED):
        self.payload = payload
        fork = multiprocessing.get_context("fork")
        port, ready = fork.Value("i", 0), fork.Event()
        self.broker = fork.Process(target=_broker, args=(port, ready), daemon=True)
        self.broker.start()
        ready.wait(30)
        self.port = port.value
        self.workers = [fork.Process(target=_worker, args=(self.port, credit), daemon=True)
                        for _ in range(2)]
        for worker in self.workers:
            worker.start()
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.connect("tcp://127.0.0.1:%d" % self.port)
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
        for _ in range(count):
            self._send()
        for _ in range(count):
            self._receive()
        return count / (time.perf_counter() - started)

    def latency(self, count):
        """(p50, p99) round trip in ms, one task in flight."""
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            self._send()
            self._receive()
            samples.append(time.perf_counter() - started)
        samples.sort()
        return samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000

    def close(self):
        self.sock.close(0)
        self.context.term()
        for proc in self.workers + [self.broker]:
            proc.terminate()                 # SIGTERM to its pid
            proc.join(10)
