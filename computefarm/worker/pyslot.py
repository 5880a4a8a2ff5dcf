"""A python slot: a long-lived process that runs ``python`` tasks one at a time.

The worker starts one per slot as the leader of its own session and talks to it
over two pipes given on the command line: requests in, results out, each a
4-byte big-endian length and a msgpack map. What the task prints goes to this
process's stdout and stderr, which the worker streams as the task's output.
Only this process ever unpickles a task's callable.

A slot dies with its worker: an idle one would see its request pipe end, but a
busy one would run its task on, unsupervised, beside the task's rerun.
"""

import ctypes
import os
import pickle
import signal
import struct
import sys
import traceback

import cloudpickle
import msgpack

from computefarm import defaults, pickling, tracing
from computefarm.pickling import LoadedFunctions

_LENGTH = struct.Struct("!I")


def read_frame(stream):
    header = _read_exact(stream, _LENGTH.size)
    if header is None:
        return None
    body = _read_exact(stream, _LENGTH.unpack(header)[0])
    return None if body is None else msgpack.unpackb(body, raw=False)


def frame(message):
    body = msgpack.packb(message, use_bin_type=True)
    return _LENGTH.pack(len(body)) + body


def _read_exact(stream, size):
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def set_environment(wanted, base_env, previous):
    """Make os.environ ``base_env`` plus ``wanted``, touching only what differs.

    ``previous`` is what the last task added; returns what this one added.
    """
    for key in previous:
        if key not in wanted:
            if key in base_env:
                os.environ[key] = base_env[key]
            else:
                os.environ.pop(key, None)
    for key, value in wanted.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    return set(wanted)


def run_one(request, base_env, base_cwd, previous_env=(), functions=None):
    """Run one request: ``payload`` (the callable and its arguments pickled
    together), or ``function`` (the callable's pickle, unpickled once per slot
    through ``functions``, a LoadedFunctions) and ``arguments`` ((args, kwargs)),
    either of them possibly a file of the machine's blob cache (``function_path``,
    ``arguments_path``). A pickled result longer than PY_INLINE_MAX is written to
    ``spill`` when the request gives one (the reply then says ``spilled``)."""
    previous_env = set_environment(request.get("env") or {}, base_env, previous_env)
    cwd = request.get("cwd") or base_cwd
    try:
        here = os.getcwd()
    except FileNotFoundError:        # a staged task's scratch folder, removed since
        here = None
    if cwd != here:
        try:
            os.chdir(cwd)
        except OSError as exc:
            return {"status": "failed", "value": None, "error": "cannot run in %s on this "
                    "machine: %s" % (cwd, exc.strerror)}, previous_env
    try:
        if "function" in request or "function_path" in request:
            fn = _function(request, functions)
            if "arguments_path" in request:
                with open(request["arguments_path"], "rb") as stream:
                    args, kwargs = pickle.load(stream)
            else:
                args, kwargs = pickle.loads(request["arguments"])
        else:
            fn, args, kwargs = cloudpickle.loads(request["payload"])
            pickling.restore_origin(fn, request.get("origin"))
        value = fn(*args, **kwargs)
    except BaseException as exc:  # the task's failure is its result, whatever it raised
        error = traceback.format_exc()
        try:
            blob = cloudpickle.dumps(exc)
        except Exception:
            blob = None
        return {"status": "failed", "value": blob, "error": error}, previous_env
    try:
        blob = pickling.dumps(value)
    except Exception as exc:
        return {"status": "failed", "value": None,
                "error": "the result of the task cannot be pickled: %s" % exc}, previous_env
    spill = request.get("spill")
    if len(blob) <= defaults.PY_INLINE_MAX or not spill:
        return {"status": "ok", "value": blob}, previous_env
    try:
        os.makedirs(os.path.dirname(spill), exist_ok=True)
        with open(spill, "wb") as stream:
            stream.write(blob)
    except OSError as exc:
        return {"status": "failed", "value": None, "error": "the result of the task (%d "
                "bytes) cannot be written to %s: %s" % (len(blob), spill, exc.strerror)}, \
            previous_env
    return {"status": "ok", "spilled": spill}, previous_env


def _function(request, functions):
    """The request's callable: from its bytes or its file, loaded once per slot."""
    origin = request.get("origin")
    if "function_path" in request:
        if functions is not None:
            return functions.load_file(request["function_path"], origin)
        with open(request["function_path"], "rb") as stream:
            return pickling.restore_origin(cloudpickle.loads(stream.read()), origin)
    if functions is not None:
        return functions.load(request["function"], origin)
    return pickling.restore_origin(cloudpickle.loads(request["function"]), origin)


PR_SET_PDEATHSIG = 1


def die_with(worker):
    """Have Linux SIGKILL this process when its parent, the worker ``worker``, exits.

    What the task started lives on in the slot's process group; the worker's task
    records name that group, so the next worker or the monitor kills it."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return                                   # not Linux: the request pipe's end only
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != worker:                   # it died before prctl took effect
        os._exit(1)


def main(argv=None):
    argv = sys.argv if argv is None else argv
    if len(argv) > 3:
        die_with(int(argv[3]))
    requests = os.fdopen(int(argv[1]), "rb", buffering=0)
    results = os.fdopen(int(argv[2]), "wb", buffering=0)
    base_env, base_cwd = dict(os.environ), os.getcwd()
    added, functions = set(), LoadedFunctions()
    tracing.through()                            # its worker kills it: marks go at once
    while True:
        request = read_frame(requests)
        if request is None:
            return 0
        if tracing.on:
            tracing.mark("slot-in")
        reply, added = run_one(request, base_env, base_cwd, added, functions)
        sys.stdout.flush()
        sys.stderr.flush()
        reply = frame(reply)
        if tracing.on:
            tracing.mark("slot-out")
        results.write(reply)


if __name__ == "__main__":
    sys.exit(main())
