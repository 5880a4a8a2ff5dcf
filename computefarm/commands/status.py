"""farm-status: the TaskManager's view of the farm, as text or JSON."""

import argparse
import json
import sys
import time

from .. import defaults
from ..client import Client
from .common import add_common_options, run_command, setup


def show(address, watch=False, as_json=False, out=None, curve=None):
    out = out or sys.stdout
    with Client(address, connect_timeout=5.0, curve=curve) as client:
        while True:
            status = client.status()
            if as_json:
                out.write(json.dumps(status, indent=2, sort_keys=True) + "\n")
            else:
                if watch:
                    out.write("\033[H\033[2J")
                out.write(render(status, address))
            out.flush()
            if not watch:
                return 0
            try:
                time.sleep(defaults.WATCH_INTERVAL)
            except KeyboardInterrupt:
                return 0


def render(status, address):
    lines = ["TaskManager %s (placement: %s, %d client(s))" % (
        address, status["placement"], status["clients"]), "", "MACHINES"]
    lines.append("  %-24s %-13s %6s %6s %7s %10s" % ("id", "state", "cpu%", "load1",
                                                    "owner%", "mem free"))
    for m in status["machines"]:
        lines.append("  %-24s %-13s %6s %6s %7s %10s" % (
            m["id"][:24], m["state"], _num(m["cpu_percent"]),
            _num((m["load_avg"] or [None])[0]), _num(m["owner_cpu"]),
            _mib(m["memory_available"])))
    lines += ["", "WORKERS"]
    for w in status["workers"]:
        waiting = w["used"] - w["slots"]     # pipelined: sent ahead, waiting for a slot
        lines.append("  %-30s %-16s %-12s %d/%d  %s%s" % (
            w["name"][:30], w["host"][:16], w["machine"][:12], min(w["used"], w["slots"]),
            w["slots"], ", ".join(w["capabilities"]),
            "  (+%d waiting there)" % waiting if waiting > 0 else ""))
    queues = ", ".join("%s: %d" % item for item in sorted(status["queues"].items())) or "empty"
    others = status.get("others_running", 0)
    lines += ["", "QUEUED  " + queues, "", "RUNNING (%d%s)" % (
        len(status["running"]), ", and %d of other users" % others if others else "")]
    for t in sorted(status["running"], key=lambda t: -t["age"])[:20]:
        lines.append("  %-40s %-8s %-16s %6.1fs%s" % ((t.get("label") or t["id"])[:40],
                                                      t["capability"],
                                                      t["host"][:16], t["age"],
                                                      "  suspended" if t["suspended"] else ""))
    others = status.get("others_failures", 0)
    lines += ["", "RECENT FAILURES (%d%s)" % (len(status["failures"]), ", and %d of other "
                                              "users" % others if others else "")]
    for f in status["failures"][-10:]:
        lines.append("  %-40s %-8s %-16s %s" % ((f.get("label") or f["id"])[:40],
                                                f["status"], f["host"][:16],
                                                (f["error"] or "").splitlines()[0][:60]
                                                if f["error"] else ""))
    return "\n".join(lines) + "\n"


def _num(value):
    return "-" if value is None else "%.1f" % value


def _mib(value):
    return "-" if value is None else "%d MiB" % (value // (1024 * 1024))


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(
            prog="farm-status", description="Show the farm: machines, workers, queues, "
                                            "running tasks, recent failures.")
        add_common_options(parser)
        parser.add_argument("--watch", action="store_true", help="refresh every 2 seconds")
        parser.add_argument("--json", action="store_true", help="one JSON document, for scripts")
        args = parser.parse_args(argv)
        config = setup(args, "status")
        return show(config.taskmanager.address, watch=args.watch, as_json=args.json,
                    curve=config.keys.peer_curve())
    return run_command("farm-status", build, argv)
