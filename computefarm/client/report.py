"""A run's report: one self-contained HTML file to open in any browser.

No script, no style sheet or font from elsewhere, no network: the page is
HTML with its CSS inline and the Gantt chart drawn as inline SVG (a rectangle
per action, a row per slot, grouped by machine; hovering one shows its name,
host, attempt, time queued and run time; a suspension for the machine's owner
is drawn over it in amber). Above it the run's totals; below it
the critical path, the machines' summary and the failures with the last lines
they printed.

The **critical path** is the chain of tasks that decided when the run ended:
from the task that ended last, back through the dependency (``task_dep``,
implicit ones from ``file_dep`` on targets, ``setup``; through tasks that ran
nothing, such as groups) that ended last before it, until a task with none.
Its actions are outlined in the chart.
"""

import html
import os
import time

WIDTH = 960          # px of the chart's time axis
LABEL = 230          # px of the slot names left of it
ROW = 18             # px of a slot's row
TAIL = 12            # output lines shown for a failure


def critical_path(spans, graph):
    """``spans``: task name -> (start, end) of the tasks that ran; ``graph``: task
    name -> the names it depends on. The chain, first task first."""
    if not spans:
        return []

    def ran_before(name):
        found, seen, todo = [], {name}, list(graph.get(name, ()))
        while todo:
            dep = todo.pop()
            if dep in seen:
                continue
            seen.add(dep)
            if dep in spans:
                found.append(dep)
            else:
                todo.extend(graph.get(dep, ()))
        return found

    current = max(spans, key=lambda name: (spans[name][1], name))
    chain, seen = [current], {current}
    while True:
        deps = [d for d in ran_before(current) if d not in seen]
        if not deps:
            return chain[::-1]
        current = max(deps, key=lambda name: (spans[name][1], name))
        chain.append(current)
        seen.add(current)


def render(timeline, graph, title, wall_time=None):
    """The page for ``timeline`` (a ``timeline.Timeline``) of a run of the doit
    tasks in ``graph`` (name -> dependencies)."""
    placed = timeline.placed()
    hits = timeline.hits()
    spans = {}
    for name, start, run, *_ in placed:
        first, last = spans.get(name, (start, start + run))
        spans[name] = (min(first, start), max(last, start + run))
    chain = critical_path(spans, graph) if graph else []   # a batch: no dependencies
    critical = set(chain)
    end = max((start + run for _, start, run, *_ in placed), default=0.0)
    first = min((start for _, start, *_ in placed), default=0.0)
    wall, span = max(end, 1e-3), max(end - first, 1e-3)
    busy = sum(p[2] for p in placed)
    suspended = sum(_stopped(p) for p in placed)
    tracks = sorted({(p[3], p[4]) for p in placed})
    failed = [p for p in placed if p[5].status != "ok"]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall_time or timeline.began))
    parts = [_HEAD % {"title": _e(title)}, "<h1>%s</h1>" % _e(title),
             "<p class=when>%s</p>" % _e(stamp)]
    parts.append(_table("totals", ["", ""], [
        ("actions run", "%d (%d tasks)" % (len(placed), len(spans))),
        ("failed", "%d" % len(failed)),
        ("from the run's start to the last end", "%s (the first action started at %s)"
         % (_seconds(end), _seconds(first))),
        ("busy slot time", "%s (%s of it suspended for machines' owners)" % (
            _seconds(busy), _seconds(suspended))),
        ("slots used", "%d on %d machine(s), busy %s of the time from the first start" % (
            len(tracks), len({m for m, _ in tracks}),
            _percent(busy / (span * len(tracks))) if tracks else "-")),
        ("critical path", "%d task(s), %s of run time" % (
            len(chain), _seconds(sum(spans[n][1] - spans[n][0] for n in chain)))),
        ("stragglers' copies", "%d started on another machine, %d finished first" % (
            sum(p[5].copies == 2 for p in placed),
            sum(p[5].copies == 2 and p[5].winner == 2 for p in placed))),
        ("from the action cache", "%d action(s) not run: their outputs came from earlier "
         "runs (%s of run time saved)" % (len(hits), _seconds(sum(
             h[2].duration or 0.0 for h in hits)))),
        ("staged", "%s of inputs laid out, %s of them fetched into the machines' caches" % (
            byte_size(sum(p[5].staging.get("bytes") or 0 for p in placed)),
            byte_size(sum(p[5].staging.get("fetched") or 0 for p in placed))))]))
    parts.append("<h2>Timeline</h2>")
    parts.append(_gantt(placed, tracks, wall, critical))
    parts.append("<h2>Critical path</h2>")
    if not graph:
        parts.append("<p>The tasks did not depend on one another.</p>")
    elif chain:
        parts.append("<ol class=critical>%s</ol>" % "".join(
            "<li>%s <span class=time>%s to %s</span></li>" % (
                _e(name), _seconds(spans[name][0]), _seconds(spans[name][1]))
            for name in chain))
    else:
        parts.append("<p>No task ran on the farm.</p>")
    parts.append("<h2>Machines</h2>")
    parts.append(_table("machines", ["machine", "slots", "actions", "busy", "busy %",
                                     "suspended", "failed", "fetched", "cache hits"],
                        _machines(placed, tracks, span, hits)))
    parts.append("<h2>Failures</h2>")
    if not failed:
        parts.append("<p>None.</p>")
    for name, start, run, machine, _, result, _, _ in failed:
        lines = (result.stdout + result.stderr)[-TAIL:]
        parts.append("<div class=failure><h3>%s</h3><p>%s on %s (%s), attempt %s, after "
                     "%s: %s</p><pre>%s</pre></div>" % (
                         _e(name), _e(result.status), _e(result.host or "-"),
                         _e(machine), _e(str(result.attempt)), _seconds(run),
                         _e(reason(result.error) or "exit code %s" % result.exit_code),
                         _e("\n".join(lines))))
    parts.append("</body></html>\n")
    return "".join(parts)


def write(timeline, graph, title, path):
    """Write the report to ``path`` (a temporary name, then renamed)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as stream:
        stream.write(render(timeline, graph, title))
    os.replace(partial, path)
    return path


def reason(error):
    """The line of an error text that says what went wrong: a Python traceback's
    last line (``ZeroDivisionError: division by zero``), else its first."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback (most recent call last)"):
        return lines[-1]
    return lines[0]


def _gantt(placed, tracks, wall, critical):
    y, row_of, machine_rows = 20, {}, []
    for machine, track in tracks:
        if not machine_rows or machine_rows[-1][0] != machine:
            machine_rows.append((machine, y))
            y += ROW
        row_of[(machine, track)] = y
        y += ROW
    height = y + 4
    scale = WIDTH / wall
    out = ['<svg class=gantt xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d">' % (LABEL + WIDTH + 10, height, LABEL + WIDTH + 10, height)]
    for tick in _ticks(wall):
        x = LABEL + tick * scale
        out.append('<line class=tick x1="%.1f" y1="14" x2="%.1f" y2="%d"/><text class=axis '
                   'x="%.1f" y="11">%s</text>' % (x, x, height, x, _e(_seconds(tick))))
    for machine, top in machine_rows:
        out.append('<text class=machine x="2" y="%d">machine %s</text>' % (top + 13,
                                                                         _e(machine)))
    labels = {}
    for name, start, run, machine, track, result, queued, pauses in placed:
        labels[(machine, track)] = "%s slot %d" % (result.worker, track[1] + 1)
    for key, label in labels.items():
        out.append('<text class=slot x="12" y="%d">%s</text>' % (row_of[key] + 13,
                                                                _e(label[-34:])))
    for name, start, run, machine, track, result, queued, pauses in placed:
        kind = "ok" if result.status == "ok" else "failed"
        if name in critical:
            kind += " critical"
        out.append('<rect class="task %s" x="%.2f" y="%d" width="%.2f" height="%d">'
                   '<title>%s\n%s on %s, attempt %s\nqueued %s, ran %s</title></rect>' % (
                       kind, LABEL + start * scale, row_of[(machine, track)] + 2,
                       max(2.0, run * scale), ROW - 4, _e(name), _e(result.status),
                       _e(result.host or "-"), _e(str(result.attempt)), _seconds(queued),
                       _seconds(run)))
        for begin, end in pauses:          # suspended for the machine's owner
            out.append('<rect class=suspended x="%.2f" y="%d" width="%.2f" height="%d">'
                       '<title>%s suspended %s: its machine\'s owner was back</title></rect>'
                       % (LABEL + begin * scale, row_of[(machine, track)] + 2,
                          max(2.0, (end - begin) * scale), ROW - 4, _e(name),
                          _seconds(end - begin)))
    out.append("</svg>")
    return "".join(out)


def _machines(placed, tracks, wall, hits=()):
    """A row per machine; its cache hits are the actions answered from runs it
    made earlier."""
    rows = []
    reused = {}
    for _, _, result in hits:
        machine = result.machine or result.host or "-"
        reused[machine] = reused.get(machine, 0) + 1
    for machine in sorted({m for m, _ in tracks} | set(reused)):
        mine = [p for p in placed if p[3] == machine]
        slots = len({t for m, t in tracks if m == machine})
        busy = sum(p[2] for p in mine)
        rows.append((machine, "%d" % slots, "%d" % len(mine), _seconds(busy),
                     _percent(busy / (wall * slots)) if slots else "-",
                     _seconds(sum(map(_stopped, mine))),
                     "%d" % sum(p[5].status != "ok" for p in mine),
                     byte_size(sum(p[5].staging.get("fetched") or 0 for p in mine)),
                     "%d" % reused.get(machine, 0)))
    return rows


def byte_size(count):
    """``count`` bytes as people read them: '512 bytes', '3.4 MiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return ("%d %s" if unit == "bytes" else "%.1f %s") % (count, unit)
        count /= 1024.0


def _stopped(placed):
    """The seconds an action spent suspended for its machine's owner."""
    return sum(end - begin for begin, end in placed[7])


def _table(css, heads, rows):
    head = "".join("<th>%s</th>" % _e(h) for h in heads) if any(heads) else ""
    body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % _e(str(c)) for c in row)
                   for row in rows)
    return "<table class=%s>%s%s</table>" % (css, "<tr>%s</tr>" % head if head else "", body)


def _ticks(wall):
    step = next((s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120,
                             300, 600, 1800, 3600) if wall / s <= 10), 7200)
    count = int(wall / step) + 1
    return [i * step for i in range(count)]


def _seconds(value):
    if value < 1:
        return "%.0f ms" % (value * 1000)
    if value < 120:
        return "%.1f s" % value
    return "%d min %02d s" % divmod(int(round(value)), 60)


def _percent(value):
    return "%.0f%%" % (100 * value)


def _e(text):
    return html.escape(str(text), quote=True)


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%(title)s</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0; } .when { color: #666; margin-top: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { padding: 2px 10px; text-align: left; border-bottom: 1px solid #ddd; }
svg.gantt { border: 1px solid #ccc; background: #fafafa; }
rect.task { stroke: #fff; stroke-width: 0.5; }
rect.ok { fill: #4a7fb5; } rect.failed { fill: #c62828; }
rect.critical { stroke: #111; stroke-width: 2; }
rect.suspended { fill: #f2b233; opacity: 0.85; }
line.tick { stroke: #e2e2e2; } text.axis { font-size: 10px; fill: #666; }
text.machine { font-size: 12px; font-weight: bold; } text.slot { font-size: 11px; fill: #444; }
.time { color: #666; } pre { background: #f4f4f4; padding: 0.5em; overflow-x: auto; }
</style></head><body>
"""
