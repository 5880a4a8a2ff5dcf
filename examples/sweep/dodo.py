"""A parameter sweep of 300 Python tasks: the logistic map x -> r x (1 - x).

For each of 300 values of r in [2.5, 4.0) one task iterates the map, estimates
its Lyapunov exponent (negative: the orbit settles on a cycle; positive:
chaos) and the period of the attractor, and writes ``results/r_NNN.json``.
A ``summary`` task reads all 300 files and writes ``summary.csv`` and
``summary.txt`` (onset of chaos, period doublings, periodic windows).

    doit run          # or: majordomo run  (tasks run on python workers)
    doit clean

Every action is a module-level function (shipped to ``python`` workers).
Output is byte-for-byte deterministic: the orbit uses only IEEE multiply and
subtract (exactly rounded everywhere); the exponent, which sums ``math.log``
values, is rounded to 9 decimals.
"""

import csv
import io
import json
import math
import os

from doit.tools import config_changed

DOIT_CONFIG = {
    "default_tasks": ["summary"],
    "verbosity": 1,
}

HERE = os.path.dirname(os.path.abspath(__file__))

POINTS = 300
R_MIN = 2.5
R_STEP = 0.005            # r = 2.5, 2.505, ..., 3.995
TRANSIENT = 2000          # iterations dropped before measuring
ITERATIONS = 60000        # iterations measured (~15 ms of Python per task)
MAX_PERIOD = 64           # longest cycle looked for
PERIOD_TOLERANCE = 1e-9
MODEL_VERSION = 1         # bump when simulate() changes meaning

RESULTS = "results"
SUMMARY_CSV = "summary.csv"
SUMMARY_TXT = "summary.txt"

PYTHON_META = {"capability": "python", "timeout": 120}


def _path(relative):
    """Absolute path of a file of this project, whatever the process cwd is."""
    return os.path.join(HERE, relative)


def _write_atomically(relative, text):
    """Write the whole file or nothing: a task killed or retried part-way
    never leaves a truncated target, and two attempts never share a temp file."""
    final = _path(relative)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = "%s.tmp.%d" % (final, os.getpid())
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, final)


def r_value(index):
    return round(R_MIN + index * R_STEP, 6)


def result_file(index):
    return "%s/r_%03d.json" % (RESULTS, index)


def simulate(index, r, targets):
    """Iterate the logistic map at ``r``; write one JSON result (the target)."""
    x = 0.5 + 1e-3
    for _ in range(TRANSIENT):
        x = r * x * (1.0 - x)

    total = 0.0
    low = high = x
    tail = []
    for step in range(ITERATIONS):
        slope = abs(r * (1.0 - 2.0 * x))
        total += math.log(slope if slope > 1e-300 else 1e-300)
        x = r * x * (1.0 - x)
        if x < low:
            low = x
        if x > high:
            high = x
        if step >= ITERATIONS - 2 * MAX_PERIOD:
            tail.append(x)

    period = None
    for p in range(1, MAX_PERIOD + 1):
        if all(abs(tail[k + p] - tail[k]) < PERIOD_TOLERANCE for k in range(MAX_PERIOD)):
            period = p
            break

    result = {
        "index": index,
        "r": r,
        "lyapunov": round(total / ITERATIONS, 9),
        "period": period,
        "x_min": round(low, 12),
        "x_max": round(high, 12),
        "iterations": ITERATIONS,
    }
    _write_atomically(targets[0], json.dumps(result, sort_keys=True, indent=1) + "\n")


def task_simulate():
    """One logistic-map simulation per value of r."""
    for index in range(POINTS):
        r = r_value(index)
        yield {
            "name": "r_%03d" % index,
            "actions": [(simulate, [index, r])],
            "targets": [result_file(index)],
            # a python-action has no input file: rerun when its parameters change
            "uptodate": [config_changed({
                "r": r, "transient": TRANSIENT, "iterations": ITERATIONS,
                "max_period": MAX_PERIOD, "version": MODEL_VERSION})],
            "meta": dict(PYTHON_META),
            "clean": True,
        }


def _windows(rows, predicate):
    """Maximal runs of consecutive rows satisfying predicate, as (first, last)."""
    runs, start = [], None
    for row in rows + [None]:
        if row is not None and predicate(row):
            if start is None:
                start = row
            last = row
        elif start is not None:
            runs.append((start, last))
            start = None
    return runs


def summarize(dependencies, targets):
    """Collect every result into summary.csv and describe it in summary.txt."""
    rows = []
    for name in sorted(dependencies):
        with open(_path(name), encoding="utf-8") as handle:
            rows.append(json.load(handle))
    rows.sort(key=lambda row: row["index"])

    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["index", "r", "lyapunov", "period", "x_min", "x_max"])
    for row in rows:
        writer.writerow([row["index"], "%.3f" % row["r"], "%.9f" % row["lyapunov"],
                         row["period"] if row["period"] is not None else "",
                         "%.12f" % row["x_min"], "%.12f" % row["x_max"]])

    chaotic = [row for row in rows if row["lyapunov"] > 0]
    most_chaotic = max(rows, key=lambda row: (row["lyapunov"], -row["index"]))
    most_stable = min(rows, key=lambda row: (row["lyapunov"], row["index"]))
    lines = [
        "logistic map x -> r x (1 - x): %d values of r in [%.3f, %.3f]"
        % (len(rows), rows[0]["r"], rows[-1]["r"]),
        "%d iterations per r after %d transient ones" % (ITERATIONS, TRANSIENT),
        "",
        "chaotic (lyapunov > 0): %d of %d" % (len(chaotic), len(rows)),
        "first chaotic r:        %s" % ("%.3f" % chaotic[0]["r"] if chaotic else "none"),
        "most chaotic:           r = %.3f  lyapunov = %.6f"
        % (most_chaotic["r"], most_chaotic["lyapunov"]),
        "most stable:            r = %.3f  lyapunov = %.6f"
        % (most_stable["r"], most_stable["lyapunov"]),
        "",
        "first r with period p (period doubling):",
    ]
    for p in (1, 2, 4, 8, 16):
        first = next((row for row in rows if row["period"] == p), None)
        lines.append("  p = %-2d  %s" % (p, "r = %.3f" % first["r"] if first else "not seen"))
    lines.append("")
    lines.append("periodic windows inside the chaotic region (r > first chaotic r):")
    onset = chaotic[0]["index"] if chaotic else len(rows)
    windows = _windows([row for row in rows if row["index"] > onset],
                       lambda row: row["lyapunov"] < 0 and row["period"] is not None)
    for first, last in windows:
        periods = sorted({row["period"] for row in rows
                          if first["index"] <= row["index"] <= last["index"]})
        lines.append("  r = %.3f .. %.3f  period %s"
                     % (first["r"], last["r"], "/".join(str(p) for p in periods)))
    if not windows:
        lines.append("  none")

    _write_atomically(targets[0], table.getvalue())
    _write_atomically(targets[1], "\n".join(lines) + "\n")


def task_summary():
    """summary.csv and summary.txt from all the results."""
    return {
        "actions": [summarize],
        "file_dep": [result_file(index) for index in range(POINTS)],
        "targets": [SUMMARY_CSV, SUMMARY_TXT],
        "meta": dict(PYTHON_META, priority=5),
        "clean": True,
    }
