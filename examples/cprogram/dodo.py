"""Build and run ``sortcheck``, a C program of 34 modules, one task per step.

    doit run          # or: majordomo run
    doit clean

Tasks:
  compile:NAME   gcc -c src/NAME.c -> build/NAME.o     (capability gcc)
  link           build/*.o -> build/sortcheck           (capability gcc)
  check          build/sortcheck > build/report.txt     (capability shell)
                 (a task cannot be called ``run``: doit reserves command names)

Every command line uses paths relative to this directory, which is where doit
(and majordomo) run them. Header dependencies are found by reading the
``#include "..."`` lines of each source file, transitively.
"""

import glob
import os
import re

from doit.tools import config_changed

DOIT_CONFIG = {
    "default_tasks": ["check"],
    "verbosity": 1,   # show compiler diagnostics (stderr) as they come
}

HERE = os.path.dirname(os.path.abspath(__file__))
CC = "gcc"
CFLAGS = "-O2 -Wall -Wextra -std=c99"
INCLUDE_DIRS = ["include"]
PROGRAM = "build/sortcheck"
REPORT = "build/report.txt"

GCC_META = {"capability": "gcc", "requires": {"version": ">=5"}, "timeout": 300}

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def sources():
    """src/*.c relative to this directory, sorted so the task list is stable."""
    return sorted(os.path.relpath(path, HERE)
                  for path in glob.glob(os.path.join(HERE, "src", "*.c")))


def local_headers(source):
    """Headers a source file includes with quotes, directly or through other
    headers, as paths relative to this directory (system headers excluded)."""
    found, pending = set(), [source]
    while pending:
        current = pending.pop()
        with open(os.path.join(HERE, current), encoding="utf-8") as handle:
            names = _INCLUDE.findall(handle.read())
        for name in names:
            for folder in [os.path.dirname(current)] + INCLUDE_DIRS:
                candidate = os.path.normpath(os.path.join(folder, name))
                if os.path.isfile(os.path.join(HERE, candidate)):
                    if candidate not in found:
                        found.add(candidate)
                        pending.append(candidate)
                    break
    return sorted(found)


def object_of(source):
    return "build/%s.o" % os.path.splitext(os.path.basename(source))[0]


def task_compile():
    """Compile each src/*.c into build/*.o."""
    include_flags = " ".join("-I" + folder for folder in INCLUDE_DIRS)
    for source in sources():
        obj = object_of(source)
        cmd = "mkdir -p build && %s %s %s -c %s -o %s" % (
            CC, CFLAGS, include_flags, source, obj)
        yield {
            "name": os.path.splitext(os.path.basename(source))[0],
            "actions": [cmd],
            "file_dep": [source] + local_headers(source),
            "targets": [obj],
            # recompile when the command line (compiler, flags) changes
            "uptodate": [config_changed(cmd)],
            "meta": dict(GCC_META),
            "clean": True,
        }


def task_link():
    """Link every object file into build/sortcheck."""
    objects = [object_of(source) for source in sources()]
    cmd = "%s %s -o %s %s" % (CC, CFLAGS, PROGRAM, " ".join(objects))
    return {
        "actions": [cmd],
        "file_dep": objects,
        "targets": [PROGRAM],
        "uptodate": [config_changed(cmd)],
        "meta": dict(GCC_META, priority=5),
        "clean": True,
    }


def task_check():
    """Run sortcheck; build/report.txt must end with the line ALL OK."""
    tmp = REPORT + ".tmp.$$"
    return {
        "actions": [
            "./%s > %s && tail -n 1 %s | grep -qx 'ALL OK' && mv -f %s %s"
            " || { rm -f %s; exit 1; }" % (PROGRAM, tmp, tmp, tmp, REPORT, tmp),
        ],
        "file_dep": [PROGRAM],
        "targets": [REPORT],
        "meta": {"capability": "shell", "priority": 5, "timeout": 120},
        "clean": True,
    }
