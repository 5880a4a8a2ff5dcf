"""farm-status: the TaskManager's view of the farm, as text or JSON."""

import argparse
import json
import shutil
import sys
import time

from .. import defaults
from ..client import Client
from . import statusview
from .common import add_common_options, run_command, setup


def show(address, watch=False, as_json=False, out=None, curve=None):
    """One view of the farm (``watch``: one every WATCH_INTERVAL until Ctrl-C):
    on a terminal redrawn in place, with CPU bars; else plain text, or JSON."""
    out = out or sys.stdout
    terminal = watch and not as_json and out.isatty()
    screen = statusview.Screen(out) if terminal else None
    with Client(address, connect_timeout=5.0, curve=curve) as client:
        while True:
            status = client.status()
            if as_json:
                out.write(json.dumps(status, indent=2, sort_keys=True) + "\n")
            elif screen is not None:
                size = shutil.get_terminal_size()
                screen.draw(statusview.render(status, address, width=size.columns,
                                              bars=True)[:max(1, size.lines - 1)])
            else:
                out.write("\n".join(statusview.render(status, address, width=200)) + "\n")
                if watch:
                    out.write("\n")
            out.flush()
            if not watch:
                return 0
            try:
                time.sleep(defaults.WATCH_INTERVAL)
            except KeyboardInterrupt:
                return 0


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(
            prog="farm-status", description="Show the farm: machines, workers, queues, "
                                            "running tasks, recent failures.")
        add_common_options(parser)
        parser.add_argument("--watch", action="store_true",
                            help="refresh every 2 seconds (on a terminal, in place) until "
                                 "Ctrl-C")
        parser.add_argument("--json", action="store_true", help="one JSON document, for scripts")
        args = parser.parse_args(argv)
        config = setup(args, "status")
        return show(config.taskmanager.address, watch=args.watch, as_json=args.json,
                    curve=config.keys.peer_curve())
    return run_command("farm-status", build, argv)
