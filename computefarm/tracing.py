"""Timestamps of a task's way through the farm's processes (bench/roundtrip_bench.py).

Off unless the environment names a folder in ``COMPUTEFARM_TRACE`` when the
process starts: then each process appends ``<time> <event>`` lines to a file
named by its pid in that folder (CLOCK_MONOTONIC nanoseconds, one clock for
every process of the machine). Services keep their marks in memory and write
them when they exit or every ``KEEP`` marks; a python slot, which its worker
kills, writes each at once (``through``). Off, a mark costs the test of one
module attribute: that is why this is process-wide module state, as ``logging``
is, and not an object handed to every loop and codec that marks.

Events: ``poll`` and ``wake`` (a loop waits, its poll returned), ``recv N``
(message type N decoded), ``send N`` (about to be sent), ``request`` and
``reply`` (a worker wrote a task to a python slot, read its answer), ``slot-in``
and ``slot-out`` (the slot has the task, has its answer), and whatever a
benchmark marks itself.
"""

import atexit
import os
import time

FOLDER = os.environ.get("COMPUTEFARM_TRACE") or None
on = FOLDER is not None
KEEP = 100000

_marks = []
_through = None               # the file's descriptor, once marks are written at once


def mark(event):
    if _through is not None:
        os.write(_through, b"%d %s\n" % (time.monotonic_ns(), event.encode()))
        return
    _marks.append((time.monotonic_ns(), event))
    if len(_marks) >= KEEP:
        write()


def through():
    """Write every mark at once from now on (a process that may be killed)."""
    global _through
    if on:
        write()
        _through = os.open(_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def start(folder):
    """Mark from now on into ``folder`` (a process started before it was set)."""
    global FOLDER, on
    FOLDER, on = folder, True
    atexit.register(write)


def stop():
    """Write what is kept, and mark no more."""
    global FOLDER, on
    write()
    atexit.unregister(write)
    FOLDER, on = None, False


def write():
    if _marks:
        with open(_path(), "a") as stream:
            stream.writelines("%d %s\n" % pair for pair in _marks)
        del _marks[:]


def _path():
    return os.path.join(FOLDER, str(os.getpid()))


if on:
    start(FOLDER)
