"""A run's timeline in the Chrome trace event format (Perfetto, chrome://tracing).

Every action of every task that reached a worker is one complete event (``ph``
``X``) named by its doit task, on the track of the machine (a process) and of
the slot (a thread) it ran in, with its attempt, host, worker, status, queue
wait, run time and time suspended in ``args``; each suspension for its
machine's owner (the NOTICEs ``suspended`` and ``resumed``) is one more event,
``suspended: NAME``, on the same track. Slots are not on the wire: each worker's actions
are packed into lanes, the lowest lane free at an action's start, so the lanes
of a worker are never more than the tasks it ran at once (its slots). Times
are the client's: an action's start is its worker's (RESULT ``started``) moved
by that worker's clock offset (the least gap between a result's arrival and
its run's end there), and it lasts its ``duration``.

``majordomo run`` writes one per run, with its HTML report beside it
(``report.py``; ``--report PATH``, else in the user's cache,
``runs/<project>-<hash>/``); ``majordomo timeline`` prints the last paths.
"""

import hashlib
import json
import os
import time

from .. import defaults
from ..exceptions import ConfigError
from ..wire.protocol import Code

LANE_SLACK = 0.002   # s: a run starting this much before its lane's last one ended is
#                      drawn after it (a task sent ahead starts as the one before ends)


class Timeline:
    def __init__(self, clock=time.time):
        self.clock = clock
        self.began = clock()
        self.actions = []        # (name, submitted, ended, result)
        self.graph = {}          # doit task name -> the names it depends on (the report's)
        self.paused = {}         # task id (the client's) -> [[suspended, resumed or None]]

    def add(self, name, submitted, result):
        """An action of task ``name`` sent at ``submitted`` (wall time) ended with
        ``result`` (a client TaskResult), which arrived now."""
        self.actions.append((name, submitted, self.clock(), result))

    def notice(self, code, ids):
        """A NOTICE about tasks ``ids`` (the client's ids): suspensions for the owner
        of their machine begin (``suspended``) and end (``resumed``) now."""
        if code not in (Code.SUSPENDED, Code.RESUMED):
            return
        now = self.clock()
        for task_id in ids:
            spans = self.paused.setdefault(task_id, [])
            if code == Code.SUSPENDED and (not spans or spans[-1][1] is not None):
                spans.append([now, None])
            elif code == Code.RESUMED and spans and spans[-1][1] is None:
                spans[-1][1] = now

    def _pauses(self, task_id, submitted, ended):
        """Its suspensions that fell within [submitted, ended], as (start, end)."""
        return [(max(begin, submitted), min(ended if end is None else end, ended))
                for begin, end in self.paused.get(task_id, ())
                if begin < ended and (end is None or end > submitted)]

    def placed(self):
        """Every action that reached a worker, in start order: ``(name, start, run,
        machine, track, result, queued, pauses)`` with ``start`` in seconds from the
        run's beginning, ``run`` its time in the slot (suspensions included),
        ``track`` ``(worker index, lane)`` (the slot it ran in), ``queued`` the
        seconds from its submission to its start, ``pauses`` its suspensions
        ((start, end), from the run's beginning)."""
        lanes, workers, placed = {}, {}, []
        offsets = self._offsets()
        started = sorted(((self._start(action, offsets), action) for action in self.actions),
                         key=lambda pair: pair[0])
        for start, (name, submitted, ended, result) in started:
            if result.machine is None and result.host is None or \
                    result.code == Code.CACHE_HIT:
                continue                          # never reached a worker (or not now)
            machine = result.machine or result.host
            pauses = self._pauses(result.id, submitted, ended)
            stopped = sum(end - begin for begin, end in pauses)
            start = max(submitted, start - stopped)   # the worker's duration leaves them out
            run = max(0.0, min((result.duration or 0.0) + stopped, ended - start))
            queued = start - submitted
            start -= self.began            # from here on as drawn: lanes and events alike
            worker_lanes = lanes.setdefault((machine, result.worker), [])
            index = workers.setdefault((machine, result.worker), len(workers))
            lane = next((i for i, free in enumerate(worker_lanes)
                         if free <= start + LANE_SLACK), None)
            if lane is None:
                lane = len(worker_lanes)
                worker_lanes.append(float("-inf"))
            elif worker_lanes[lane] > start:   # one started as the other ended, its
                end = start + run              # clock read a moment apart: drawn after it
                start = worker_lanes[lane]
                run = max(0.0, end - start)
            worker_lanes[lane] = start + run
            placed.append((name, start, run, machine, (index, lane), result, queued,
                           [(begin - self.began, end - self.began) for begin, end in pauses]))
        return placed

    def hits(self):
        """Actions answered from the action cache (run before, not now): ``(name,
        when, result)``, ``when`` in seconds from the run's beginning; the result
        names the machine and time of the run it reuses."""
        return [(name, ended - self.began, result) for name, _, ended, result in self.actions
                if result.code == Code.CACHE_HIT]

    def events(self):
        """The trace events: metadata naming machines and slots, then the actions
        (a staged one with its inputs' fetching and its outputs' upload inside it),
        then the cache hits, as instants on a track of their own."""
        machines, tracks, events = {}, {}, []
        for name, start, run, machine, track, result, queued, pauses in self.placed():
            pid = machines.setdefault(machine, len(machines) + 1)
            tid = _tid(*track)
            tracks[(pid, tid)] = "%s slot %d" % (result.worker, track[1] + 1)
            events += [{"name": "suspended: %s" % name, "cat": "suspended", "ph": "X",
                        "pid": pid, "tid": tid, "ts": round(begin * 1e6),
                        "dur": round((end - begin) * 1e6), "args": {"id": result.id}}
                       for begin, end in pauses]
            events.append({
                "name": name, "cat": "task", "ph": "X", "pid": pid, "tid": tid,
                "ts": round(start * 1e6),        # the end rounded too: runs that touch
                "dur": round((start + run) * 1e6) - round(start * 1e6),   # never overlap
                "args": {"attempt": result.attempt, "host": result.host,
                         "worker": result.worker, "machine": machine,
                         "status": result.status, "queued_s": round(queued, 6),
                         "run_s": round(run, 6), "id": result.id,
                         "copies": result.copies, "winner": result.winner,
                         "suspended_s": round(sum(e - b for b, e in pauses), 6),
                         **_staged(result.staging)}})
            events += _phases(name, pid, tid, start, run, result.staging)
        meta = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                 "args": {"name": "machine %s" % machine}} for machine, pid in machines.items()]
        hits = self.hits()
        if hits:
            pid = len(machines) + 1
            meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                         "args": {"name": "action cache"}})
            events += [{"name": "cache hit: %s" % name, "cat": "cache", "ph": "i", "s": "t",
                        "pid": pid, "tid": 1, "ts": round(when * 1e6),
                        "args": {"id": result.id, "machine": result.machine,
                                 "host": result.host, "run_s": result.duration}}
                       for name, when, result in hits]
        meta += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                  "args": {"name": label}} for (pid, tid), label in sorted(tracks.items())]
        return meta + events

    def _offsets(self):
        """Per worker, its clock's offset to ours: the least (result here - run's
        end there) of its actions, its clock's skew plus the quickest delivery."""
        offsets = {}
        for _, _, ended, result in self.actions:
            if result.started is not None:
                gap = ended - (result.started + (result.duration or 0.0))
                key = result.worker
                offsets[key] = min(offsets.get(key, gap), gap)
        return offsets

    @staticmethod
    def _start(action, offsets):
        """When an action started, on our clock: its worker's start plus that
        worker's offset (its runs keep their order and never overlap in a slot);
        without one, its end here less its run time."""
        _, submitted, ended, result = action
        if result.started is not None and result.worker in offsets:
            return max(submitted, result.started + offsets[result.worker])
        return ended - (result.duration or 0.0)

    def write(self, path):
        """Write the trace to ``path`` (a temporary name, then renamed)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        partial = path + ".partial"
        with open(partial, "w") as stream:    # dumps: json.dump never uses the C encoder
            stream.write(json.dumps({"traceEvents": self.events(), "displayTimeUnit": "ms",
                                     "otherData": {"began": self.began, "tool": "majordomo"}}))
        os.replace(partial, path)
        return path




def _staged(staging):
    """A staged action's own figures, for its event's ``args``."""
    if not staging:
        return {}
    return {"fetch_s": staging.get("fetch_s"), "upload_s": staging.get("upload_s"),
            "files": staging.get("files"), "input_bytes": staging.get("bytes"),
            "fetched_bytes": staging.get("fetched")}


def _phases(name, pid, tid, start, run, staging):
    """Its inputs' fetching at the start of a staged action, and its outputs'
    upload at the end: slices inside its own."""
    phases = []
    fetch, upload = (staging or {}).get("fetch_s") or 0.0, (staging or {}).get("upload_s") or 0.0
    if fetch > 0:
        phases.append({"name": "stage in: %s" % name, "cat": "staging", "ph": "X", "pid": pid,
                       "tid": tid, "ts": round(start * 1e6), "dur": round(min(fetch, run) * 1e6),
                       "args": {"fetched_bytes": staging.get("fetched")}})
    if upload > 0:
        upload = min(upload, run)
        phases.append({"name": "upload: %s" % name, "cat": "staging", "ph": "X", "pid": pid,
                       "tid": tid, "ts": round((start + run - upload) * 1e6),
                       "dur": round(upload * 1e6), "args": {}})
    return phases


def _tid(worker_index, lane):
    return worker_index * 1000 + lane + 1


def runs_folder(project):
    """Where the timelines of runs in ``project`` (a directory) go."""
    digest = hashlib.blake2s(os.path.abspath(project).encode(), digest_size=4).hexdigest()
    return os.path.join(os.path.expanduser(os.environ.get(defaults.RUNS_ENV) or
                                           defaults.RUNS_DIR),
                        "%s-%s" % (os.path.basename(os.path.abspath(project)), digest))


def prune(project, keep):
    """Delete all but the newest ``keep`` runs' timelines and reports in the
    project's runs folder: a build run a thousand times must not leave a
    thousand reports behind."""
    folder = runs_folder(project)
    runs = {}                               # run (its stamp and pid) -> its files
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        for prefix, ending in (("timeline-", ".json"), ("report-", ".html")):
            if name.startswith(prefix) and name.endswith(ending):
                runs.setdefault(name[len(prefix):-len(ending)], []).append(name)
    for stamp in sorted(runs, key=_run_order, reverse=True)[keep:]:
        for name in runs[stamp]:
            try:
                os.unlink(os.path.join(folder, name))
            except FileNotFoundError:
                pass                        # another run of the project pruned it


def _run_order(stamp):
    """``YYYYmmdd-HHMMSS-PID``: by time, then pid (two runs in one second)."""
    day, _, rest = stamp.partition("-")
    second, _, pid = rest.partition("-")
    return day, second, int(pid) if pid.isdigit() else 0


def runs_keep():
    """Runs of a project kept in its runs folder: $COMPUTEFARM_RUNS_KEEP, else RUNS_KEEP."""
    text = os.environ.get(defaults.RUNS_KEEP_ENV)
    if text is None:
        return defaults.RUNS_KEEP
    try:
        keep = int(text)
    except ValueError:
        keep = -1
    if keep < 1:
        raise ConfigError("$%s=%r: the number of runs to keep, at least 1"
                          % (defaults.RUNS_KEEP_ENV, text))
    return keep


def new_path(project, wall_time=None):
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(wall_time or time.time()))
    return os.path.join(runs_folder(project), "timeline-%s-%d.json" % (stamp, os.getpid()))


def paths(report, project):
    """``(trace, html report)`` of a run: ``--report PATH`` names one (the HTML
    report when it ends in .html), the other goes beside it with its own ending;
    without it, both go in the project's runs folder."""
    if report is None:
        trace = new_path(project)
        folder, name = os.path.split(trace)
        return trace, os.path.join(folder, "report" + name[len("timeline"):-5] + ".html")
    root, ending = os.path.splitext(report)
    if ending.lower() in (".html", ".htm"):
        return root + ".json", report
    return report, root + ".html"


def last_report(project):
    """The newest HTML report of ``project``, or None."""
    return _newest(project, "report-", ".html")


def last_path(project):
    """The newest timeline of ``project``, or None."""
    return _newest(project, "timeline-", ".json")


def _newest(project, prefix, ending):
    folder = runs_folder(project)
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(ending)]
    except FileNotFoundError:
        return None
    if not names:
        return None
    return max((os.path.join(folder, n) for n in names), key=os.path.getmtime)
