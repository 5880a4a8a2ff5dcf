"""Files over the port: staged builds against a shared filesystem, and the wire.

    python bench/files_bench.py [--only build|wire|python|holds ...] [--files 40] [--rounds 3]
        [--workers 3] [--slots 2] [--gib 1.0] [--tcp-rounds 3] [--mib 500]

  build  A generated C project of --files sources (each a few hundred lines for
         gcc -O2) and one link, built by `majordomo run` on a real TaskManager
         with --workers workers of --slots slots on this machine, alternately:
           shared  the workers see the project (they run in place: a shared
                   filesystem), and
           staged  each worker runs in a mount namespace where the project is
                   an empty tmpfs: every file goes through the TaskManager's
                   store, and each worker has a cache of its own.
         Each round removes build/ and doit's database first. Printed: each
         round's wall time, the medians and their ratio (goal: staged/shared
         <= 1.2); the first staged round (cold caches) apart. Then one source
         file changes and the staged build runs again: the bytes put into the
         store and moved in all against that file and the outputs that depend
         on it (goal: at most 2x, see README). Between the two, the staged
         build with the action cache on: once to record, then --rounds clean
         builds of the unchanged tree (goal: every action a hit, >= 10x faster).
         Last, clean staged builds asked for the link only, --download all
         against toplevel (the objects stay in the store): the bytes served.
         (The rounds above set meta cache False: they measure staging.)
  wire   One --gib GiB file through the port (a Client's upload, then its
         download) against a plain TCP copy of the same file on loopback in the
         same run (socket.sendfile into a receiver writing a file) and a bare
         pair of ZeroMQ sockets with CURVE on (no farm: the ceiling of any
         design over the encrypted port), alternated --tcp-rounds times; meanwhile a second client runs no-op tasks one
         after the other: their round trip p50/p99 against an idle farm's.
  python FarmExecutor with --mib MiB (default 500) of arguments, then of
         result: both travel as blobs (no message may carry them); and a
         function holding 1 MiB sent with 200 tasks: the bytes uploaded.
  holds  What the store's holds cost the TaskManager: its RSS before and after
         a client holds 200,000 digests (the most one peer may); then a store
         of 20 MB full of 1 KB blobs takes 5,000 more, once with none held and
         once with the older half held (each new blob's room is made past
         them): the uploads' rate and the TaskManager's longest loop turn.
"""

import argparse
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from hosts import Elsewhere  # noqa: E402
from support import Farm  # noqa: E402

from computefarm.defaults import CHUNK_SIZE  # noqa: E402
from computefarm.storage.cas import digest_file  # noqa: E402

SOURCE = """#include "common.h"
static double table_%(n)d[%(size)d];
double unit_%(n)d(int rounds) {
    double sum = 0.0;
    for (int r = 0; r < rounds; r++) {
%(body)s
    }
    return sum;
}
"""
LINE = "        table_%(n)d[(r + %(i)d) %% %(size)d] += sum * %(i)d.5 + r;" \
       " sum += table_%(n)d[(r * %(i)d) %% %(size)d] / (1.0 + %(i)d);"

DODO = """
import glob
import os
SOURCES = sorted(glob.glob("src/unit_*.c"))
META = {"cache": os.environ.get("BENCH_CACHE") == "1"}

def task_compile():
    for source in SOURCES:
        obj = "build/" + source[4:-2] + ".o"
        yield {"name": obj, "actions": ["gcc -O2 -Isrc -c %s -o %s" % (source, obj)],
               "file_dep": [source, "src/common.h"], "targets": [obj], "meta": META}

def task_link():
    objects = ["build/" + s[4:-2] + ".o" for s in SOURCES] + ["build/main.o"]
    return {"actions": ["gcc -O2 " + " ".join(objects) + " -o build/app -lm"],
            "file_dep": objects, "targets": ["build/app"], "meta": META}

def task_main():
    return {"actions": ["gcc -O2 -Isrc -c src/main.c -o build/main.o"],
            "file_dep": ["src/main.c", "src/common.h"], "targets": ["build/main.o"],
            "meta": META}
"""


def make_project(folder, files, lines=120):
    (folder / "src").mkdir(parents=True)
    (folder / "build").mkdir()
    decls = "".join("double unit_%d(int);\n" % n for n in range(files))
    (folder / "src" / "common.h").write_text("#include <math.h>\n" + decls)
    for n in range(files):
        body = "\n".join(LINE % {"n": n, "i": i, "size": 64} for i in range(1, lines))
        (folder / "src" / ("unit_%d.c" % n)).write_text(SOURCE % {"n": n, "size": 64,
                                                                   "body": body})
    calls = " + ".join("unit_%d(3)" % n for n in range(files))
    (folder / "src" / "main.c").write_text(
        '#include <stdio.h>\n#include "common.h"\nint main(void) { printf("%%f\\n", '
        + calls + '); return 0; }\n')
    (folder / "dodo.py").write_text(DODO)


def majordomo(farm, project, cache=False, extra=()):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "computefarm.majordomo", "run",
                           "--taskmanager", farm.address] + list(extra), cwd=str(project),
                          capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, BENCH_CACHE="1" if cache else "0"))
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit("majordomo failed:\n%s%s" % (done.stdout[-3000:], done.stderr[-3000:]))
    if cache:
        return elapsed, done.stderr
    return elapsed


def clean(project):
    shutil.rmtree(project / "build")
    (project / "build").mkdir()
    for name in os.listdir(project):
        if name.startswith(".doit.db"):
            os.unlink(project / name)


def farm_with_workers(folder, project, workers, slots, hidden):
    folder.mkdir()
    farm = Farm(folder, store=str(folder / "store"))
    farm.start_taskmanager()
    for index in range(workers):
        name = "b%d" % (index + 1)
        cache = folder / name
        cache.mkdir()
        config = folder / ("%s.yaml" % name)
        config.write_text("machines:\n  %s:\n    cache: %s\n" % (name, cache))
        farm.start_worker("shell", slots=slots, machine=name, config=config,
                          host=Elsewhere(project.parent) if hidden else None)
    return farm


def bench_build(args, folder):
    project = folder / "laptop" / "project"
    make_project(project, args.files)
    farms = {kind: farm_with_workers(folder / kind, project, args.workers, args.slots,
                                     kind == "staged") for kind in ("shared", "staged")}
    try:
        times = {"shared": [], "staged": []}
        clean(project)
        first = majordomo(farms["staged"], project)      # cold: empty store and caches
        clean(project)
        majordomo(farms["shared"], project)              # the page cache warmed alike
        for round_ in range(args.rounds):
            for kind in (("shared", "staged") if round_ % 2 else ("staged", "shared")):
                clean(project)
                times[kind].append(majordomo(farms[kind], project))
                print("  round %d %-6s %.2f s" % (round_, kind, times[kind][-1]), flush=True)
        shared, staged = statistics.median(times["shared"]), statistics.median(times["staged"])
        print("build of %d sources + link, %d workers x %d slots:" % (args.files + 1,
                                                                       args.workers, args.slots))
        print("  shared filesystem  median %.2f s" % shared)
        print("  staged             median %.2f s   (first, cold caches: %.2f s)"
              % (staged, first))
        print("  staged / shared    %.2f   (goal <= 1.2)" % (staged / shared))

        clean(project)
        cold, _ = majordomo(farms["staged"], project, cache=True)   # records every action
        warm, said = [], ""
        for _ in range(args.rounds):
            clean(project)
            elapsed, said = majordomo(farms["staged"], project, cache=True)
            warm.append(elapsed)
        line = next((line for line in said.splitlines() if "task(s) done" in line), said)
        print("clean build again on an unchanged tree, the action cache on (staged):")
        print("  first %.2f s (recording), then median %.2f s: %.1fx faster (goal >= 10x)"
              % (cold, statistics.median(warm), cold / statistics.median(warm)))
        print("  %s" % line.strip())

        client = farms["staged"].client()
        before = client.status()["store"]
        source = project / "src" / "unit_3.c"
        source.write_text(source.read_text().replace("sum += table_3", "sum -= table_3", 1))
        majordomo(farms["staged"], project)
        after = client.status()["store"]
        outputs = [project / "build" / "unit_3.o", project / "build" / "app"]
        changed = os.path.getsize(source) + sum(map(os.path.getsize, outputs))
        put = after["received"] - before["received"]
        moved = put + after["served"] - before["served"]
        print("rebuild after one source changed (%d bytes; it and its outputs: %d bytes):"
              % (os.path.getsize(source), changed))
        print("  into the store %d bytes = %.2fx; moved in all (to the store, to workers, "
              "back) %d bytes = %.2fx" % (put, put / changed, moved, moved / changed))

        served = {"all": [], "toplevel": []}
        for round_ in range(args.rounds):             # building without the bytes
            for mode in (("all", "toplevel") if round_ % 2 else ("toplevel", "all")):
                clean(project)
                before = client.status()["store"]["served"]
                majordomo(farms["staged"], project, extra=("--download", mode, "link"))
                served[mode].append(client.status()["store"]["served"] - before)
                if mode == "all":
                    objects = sum(os.path.getsize(p) for p in (project / "build").glob("*.o"))
        print("clean staged build asked for the link only, bytes the store served (to "
              "workers and this machine), medians:")
        print("  --download all %d, --download toplevel %d (the objects stay on the farm: "
              "%d bytes here)" % (statistics.median(served["all"]),
                                  statistics.median(served["toplevel"]), objects))
    finally:
        for farm in farms.values():
            farm.close()


def tcp_copy(path, destination):
    """Seconds to copy ``path`` over a loopback TCP connection into ``destination``."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    done = threading.Event()

    def receive():
        connection, _ = server.accept()
        with connection, open(destination, "wb") as out:
            while True:
                data = connection.recv(1 << 20)
                if not data:
                    break
                out.write(data)
        done.set()
    thread = threading.Thread(target=receive)
    thread.start()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sender, open(path, "rb") as source:
        sender.sendfile(source)
    done.wait()
    elapsed = time.monotonic() - started
    thread.join()
    server.close()
    return elapsed


def curve_copy(path, destination):
    """Seconds to stream ``path`` through a bare pair of ZeroMQ sockets with CURVE
    on (PUSH to PULL on loopback, CHUNK_SIZE frames, the receiver writing a
    file): what any design over the one encrypted port can reach at most."""
    import zmq
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.curve_server, pull.curve_secretkey = True, server_secret
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = context.socket(zmq.PUSH)
    push.curve_serverkey, push.curve_publickey = server_public, client_public
    push.curve_secretkey = client_secret
    push.connect("tcp://127.0.0.1:%d" % port)

    def receive():
        with open(destination, "wb") as out:
            while True:
                frame = pull.recv(copy=False)
                if not len(frame):
                    break
                out.write(frame.buffer)
    thread = threading.Thread(target=receive)
    thread.start()
    started = time.monotonic()
    with open(path, "rb") as source:
        while True:
            chunk = source.read(CHUNK_SIZE)
            push.send(chunk, copy=False)
            if not chunk:
                break
    thread.join()
    elapsed = time.monotonic() - started
    push.close(linger=0)
    pull.close(linger=0)
    context.term()
    return elapsed


def round_trips(client, stop, trips):
    while not stop.is_set():
        started = time.monotonic()
        client.submit("shell", {"argv": ["true"]}).result(60)
        trips.append(time.monotonic() - started)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_wire(args, folder):
    farm = Farm(folder, store=str(folder / "store"))
    farm.start_taskmanager()
    farm.start_worker("shell", slots=1)
    try:
        size = int(args.gib * (1 << 30))
        path = folder / "big"
        with open(path, "wb") as out:
            for _ in range(size >> 24):
                out.write(os.urandom(1 << 24))
        hashed_at = time.monotonic()
        digest, size = digest_file(str(path))
        hashing = time.monotonic() - hashed_at
        mover, prober = farm.client(), farm.client()
        idle = []
        stop = threading.Event()
        timer = threading.Timer(3.0, stop.set)
        timer.start()
        round_trips(prober, stop, idle)
        tcp, curve, up, down, busy = [], [], [], [], []
        for round_ in range(args.tcp_rounds):
            tcp.append(tcp_copy(path, folder / "tcp-copy"))
            os.unlink(folder / "tcp-copy")
            curve.append(curve_copy(path, folder / "curve-copy"))
            os.unlink(folder / "curve-copy")
            stop = threading.Event()
            probe = threading.Thread(target=round_trips, args=(prober, stop, busy))
            probe.start()
            started = time.monotonic()
            mover.upload([(digest, size, str(path))]).result(600)
            up.append(time.monotonic() - started)
            started = time.monotonic()
            mover.download(digest, size, folder / "back").result(600)
            down.append(time.monotonic() - started)
            stop.set()
            probe.join()
            os.unlink(folder / "back")
            farm.stop(farm.taskmanager)
            shutil.rmtree(folder / "store")   # the next upload moves it all again
            farm.start_taskmanager(bind=farm.address)
            print("  round %d: tcp %.2f s, bare CURVE %.2f s, upload %.2f s, download %.2f s"
                  % (round_, tcp[-1], curve[-1], up[-1], down[-1]), flush=True)
        mib = size / (1 << 20)
        tcp_rate = mib / statistics.median(tcp)
        print("%.0f MiB through the port (sha256 of it: %.2f s, %.0f MiB/s):" % (
            mib, hashing, mib / hashing))
        print("  plain TCP copy     %6.0f MiB/s" % tcp_rate)
        curve_rate = mib / statistics.median(curve)
        print("  bare ZeroMQ CURVE  %6.0f MiB/s = %.0f%% of TCP (two sockets, no farm: the "
              "ceiling over the port)" % (curve_rate, 100 * curve_rate / tcp_rate))
        for name, times in (("upload", up), ("download", down)):
            rate = mib / statistics.median(times)
            print("  %-18s %6.0f MiB/s = %.0f%% of TCP (goal >= 50%%), %.0f%% of bare CURVE"
                  % (name, rate, 100 * rate / tcp_rate, 100 * rate / curve_rate))
        print("  no-op round trip   idle p50 %.2f ms p99 %.2f ms; during transfers p50 %.2f "
              "ms p99 %.2f ms (goal p99 < 10 ms), %d tasks" % (
                  1000 * percentile(idle, 0.5), 1000 * percentile(idle, 0.99),
                  1000 * percentile(busy, 0.5), 1000 * percentile(busy, 0.99), len(busy)))
    finally:
        farm.close()


def bench_python(args, folder):
    """FarmExecutor with --mib MiB of arguments, then of result (more than a
    message may carry: both go as blobs), and a function holding 1 MiB sent
    with 200 tasks (it crosses the port once)."""
    from computefarm.client import FarmExecutor
    farm = Farm(folder, store=str(folder / "store"))
    farm.start_taskmanager()
    farm.start_worker("python", slots=1)
    size = int(args.mib * (1 << 20))
    try:
        with FarmExecutor(farm.address) as executor:
            data = os.urandom(size)
            started = time.monotonic()
            assert executor.submit(len, data).result(900) == size
            up = time.monotonic() - started
            started = time.monotonic()
            back = executor.submit(os.urandom, size).result(900)
            down = time.monotonic() - started
            assert len(back) == size
            del data, back
            table = os.urandom(1 << 20)
            sent = executor.client.files.transfers.sent_bytes
            started = time.monotonic()
            futures = [executor.submit(lambda n: table[n], n) for n in range(200)]
            assert [f.result(300) for f in futures] == list(table[:200])
            many = time.monotonic() - started
            sent = executor.client.files.transfers.sent_bytes - sent
        print("FarmExecutor, %d MiB: as arguments %.2f s (%.0f MiB/s), as a result %.2f s "
              "(%.0f MiB/s)" % (size >> 20, up, args.mib / up, down, args.mib / down))
        print("a function holding 1 MiB, 200 tasks: %.2f s, %.1f MiB uploaded (inline: 200 MiB)"
              % (many, sent / (1 << 20)))
    finally:
        farm.close()


def bench_holds(args, folder):
    import psutil

    from computefarm import defaults
    from computefarm.storage.cas import digest_bytes
    farm = Farm(folder, store=str(folder / "store"))
    farm.start_taskmanager()
    try:
        manager = psutil.Process(farm.taskmanager.pid)
        client = farm.client()
        before = manager.memory_info().rss
        digests = [digest_bytes(b"held %d" % i) for i in range(defaults.HELD_BLOBS)]
        started = time.monotonic()
        client.missing(digests, hold=True).result(300)
        took = time.monotonic() - started
        held = client.status()["store"]["held"]
        after = manager.memory_info().rss
        print("%d digests held: %.2f s to ask; TaskManager RSS %.1f -> %.1f MB (%.0f bytes "
              "a digest)" % (held, took, before / 1e6, after / 1e6, (after - before) / held))
    finally:
        farm.close()
    for hold in (False, True):
        part = folder / ("held" if hold else "none")
        part.mkdir()
        farm = Farm(part, store=str(part / "store"), store_size=20 << 20)
        farm.start_taskmanager()
        try:
            client = farm.client()
            blobs = [os.urandom(1024) for _ in range(20 * 1024)]
            old = [(digest_bytes(data), len(data), data) for data in blobs]
            client.upload(old[:len(old) // 2], hold=hold).result(300)
            client.upload(old[len(old) // 2:]).result(300)
            new = [(digest_bytes(data), len(data), data)
                   for data in (os.urandom(1024) for _ in range(5000))]
            started = time.monotonic()
            client.upload(new).result(300)
            took = time.monotonic() - started
            status = client.status()
            print("store full of 20,480 blobs of 1 KB, %s held: 5,000 more in %.2f s (%.0f "
                  "blobs/s), %d evicted (%d held), longest loop turn %.1f ms" % (
                      "the older half" if hold else "none", took, 5000 / took,
                      status["store"]["evicted"], status["store"]["evicted_held"],
                      status["loop"]["longest_ms"]))
        finally:
            farm.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=("build", "wire", "python", "holds"))
    parser.add_argument("--mib", type=float, default=500.0,
                        help="python: MiB of arguments and of result")
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--tcp-rounds", type=int, default=3)
    args = parser.parse_args()
    parts = args.only or ["build", "wire", "python", "holds"]
    if os.geteuid() != 0 and "build" in parts:
        raise SystemExit("the build part needs root (mount namespaces for the staged workers)")
    with tempfile.TemporaryDirectory(prefix="files-bench-") as folder:
        for env, name in (("COMPUTEFARM_STORE", "store"), ("COMPUTEFARM_CACHE", "cache"),
                          ("COMPUTEFARM_DIGESTS", "digests"), ("COMPUTEFARM_RUNS", "runs")):
            os.environ[env] = os.path.join(folder, name)
        for part in parts:
            (pathlib.Path(folder) / part).mkdir()
            {"build": bench_build, "wire": bench_wire, "python": bench_python,
             "holds": bench_holds}[part](
                args, pathlib.Path(folder) / part)


if __name__ == "__main__":
    main()
