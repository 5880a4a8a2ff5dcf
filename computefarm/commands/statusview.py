"""What farm-status shows: the TaskManager's STATE as text, for a terminal or a file.

``render`` makes the lines: a heading with the time, then machines (state, a
CPU bar on a terminal), workers (used/slots), what is queued (per capability),
the blob store (its size, what runs hold in it, what it evicted) and the action
cache, users (running, queued, fair-share usage, weight, share of the slots), the
batches under way (farm-run), the running tasks by name with their age, and the recent failures
with the line of their error that says what went wrong (a traceback's last
line, not its first). ``Screen`` redraws them in place on a terminal: the
cursor goes home, each line overwrites the last drawing's and clears the rest of
its row, and what is left below is cleared, so nothing flickers or scrolls.
"""

import time

from ..client.report import byte_size, reason

BAR = 10            # characters of a CPU bar


def render(status, address, wall_time=None, width=100, bars=False):
    """The lines of one view of ``status`` (a STATE body), cut to ``width``."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall_time or time.time()))
    lines = ["ComputeFarm  %s  %s  (placement %s, %d client(s))" % (
        address, stamp, status["placement"], status["clients"]), ""]
    lines.append("MACHINES  %-22s %-13s %s %6s %7s %10s" % (
        "id", "state", "cpu".ljust(BAR + 7 if bars else 6), "load1", "owner%", "mem free"))
    for m in status["machines"]:
        lines.append("          %-22s %-13s %s %6s %7s %10s" % (
            m["id"][:22], m["state"], _cpu(m["cpu_percent"], bars),
            _num((m["load_avg"] or [None])[0]), _num(m["owner_cpu"]),
            _mib(m["memory_available"])))
    lines += ["", "WORKERS   %-28s %-16s %-12s %10s  %s" % ("name", "host", "machine",
                                                          "used/slots", "capabilities")]
    for w in status["workers"]:
        serves = w.get("serves") or ()
        waiting = w["used"] - w["slots"]     # pipelined: sent ahead, waiting for a slot
        if w.get("draining"):                # a pilot leaving: takes no more work
            note = "  (draining: %s)" % w["draining"]
        elif len(serves) > 1:                # slots lent by a worker serving several
            note = "  (serves %d TaskManagers: %s)" % (len(serves), ", ".join(serves))
        else:
            note = "  (+%d waiting there)" % waiting if waiting > 0 else ""
        lines.append("          %-28s %-16s %-12s %10s  %s%s" % (
            w["name"][:28], w["host"][:16], w["machine"][:12],
            "%d/%d" % (min(w["used"], w["slots"]), w["slots"]), ", ".join(w["capabilities"]),
            note))
    queues = ", ".join("%s %d" % item for item in sorted(status["queues"].items()))
    lines += ["", "QUEUED    by capability: %s" % (queues or "none")]
    for row in status.get("demand") or ():   # what pilots would be started for
        lines.append("          %-30s %6d waiting, %d slot(s) could take them, %d free" % (
            row["capability"] + "".join(" %s=%s" % item for item in
                                        sorted(row["requires"].items())),
            row["queued"], row["slots"], row["free"]))
    store, cache = status.get("store"), status.get("action_cache")
    if store:
        lines += ["", "STORE     %d blob(s), %s of %s; %d held by runs; evicted %d (%d held)%s"
                  % (store["blobs"], byte_size(store["bytes"]), byte_size(store["limit"]),
                     store.get("held", 0), store["evicted"], store.get("evicted_held", 0),
                     "; action cache: %d entries, %d hits, %d misses" % (
                         cache["entries"], cache["hits"], cache["misses"]) if cache else "")]
    factories = status.get("factories") or []
    if factories:
        lines += ["", "FACTORIES %-20s %-8s %8s %8s %8s  %s" % (
            "name", "backend", "pending", "running", "started", "last error")]
    for f in factories:
        lines.append("          %-20s %-8s %8d %8d %8d  %s" % (
            str(f.get("factory"))[:20], str(f.get("backend"))[:8], f.get("pending") or 0,
            f.get("running") or 0, f.get("started") or 0, f.get("error") or "-"))
    users = status.get("users") or {}
    if users:
        lines += ["", "USERS     %-20s %8s %8s %12s %7s %6s" % (
            "user", "running", "queued", "usage (s)", "weight", "share")]
    for user, u in sorted(users.items(), key=lambda item: -item[1]["running"]):
        lines.append("          %-20s %8d %8d %12s %7s %5.0f%%" % (
            (user or "-")[:20], u["running"], u["queued"], _num(u.get("usage")),
            _num(u.get("weight")), 100 * u["share"]))
    batches = status.get("batches") or []
    if batches:
        lines += ["", "BATCHES   %-12s %-10s %-12s %8s %8s %7s %8s %8s  %s" % (
            "id", "user", "state", "tasks", "ok", "failed", "running", "queued", "label")]
    for b in batches:
        lines.append("          %-12s %-10s %-12s %8d %8d %7d %8d %8d  %s" % (
            b["id"], (b["user"] or "-")[:10], b["state"], b["tasks"], b["ok"], b["failed"],
            b["running"], b["queued"], b["label"]))
    copies = status.get("speculation") or {}
    if copies.get("copies"):
        lines += ["", "COPIES    %d of stragglers started on another machine, %d finished "
                  "first" % (copies["copies"], copies["won"])]
    others = status.get("others_running", 0)
    lines += ["", "RUNNING   %d%s" % (len(status["running"]), ", and %d of other users"
                                      % others if others else "")]
    if status["running"]:
        lines.append("          %-40s %-10s %-16s %8s" % ("task", "capability", "host", "age"))
    for t in sorted(status["running"], key=lambda t: -t["age"])[:20]:
        lines.append("          %-40s %-10s %-16s %7.1fs%s" % (
            (t.get("label") or t["id"])[:40], t["capability"][:10], t["host"][:16], t["age"],
            "  suspended" if t["suspended"] else ""))
    others = status.get("others_failures", 0)
    lines += ["", "FAILED    %d recently%s" % (len(status["failures"]), ", and %d of other "
                                               "users" % others if others else "")]
    if status["failures"]:
        lines.append("          %-40s %-8s %-16s %s" % ("task", "status", "host", "why"))
    for f in status["failures"][-10:]:
        lines.append("          %-40s %-8s %-16s %s" % (
            (f.get("label") or f["id"])[:40], f["status"], (f["host"] or "-")[:16],
            reason(f.get("error"))))
    return [line[:width].rstrip() for line in lines]


class Screen:
    """Draws views in place on a terminal."""

    def __init__(self, out):
        self.out = out
        self.first = True

    def draw(self, lines):
        parts = ["\033[2J" if self.first else "", "\033[H"]
        parts += [line + "\033[K\n" for line in lines]
        parts.append("\033[J")
        self.first = False
        self.out.write("".join(parts))
        self.out.flush()


def _cpu(percent, bars):
    if percent is None:
        return "-".ljust(BAR + 7 if bars else 6)
    if not bars:
        return ("%.1f" % percent).rjust(6)
    filled = int(round(BAR * min(100.0, percent) / 100.0))
    return "[%s%s] %4.0f%%" % ("#" * filled, "." * (BAR - filled), percent)


def _num(value):
    return "-" if value is None else "%.1f" % value


def _mib(value):
    return "-" if value is None else "%d MiB" % (value // (1024 * 1024))
