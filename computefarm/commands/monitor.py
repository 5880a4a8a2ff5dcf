"""farm-monitor: this machine's load, reported to the TaskManager."""

import argparse

from ..exceptions import UsageError
from ..monitor.service import FarmMonitor
from ..service import run_service
from .common import add_common_options, add_parent_option, run_command, setup
from .worker import this_machine, upstreams


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(
            prog="farm-monitor", description="Report this machine's load to the TaskManager.")
        add_common_options(parser, several=True)
        parser.add_argument("--interval", type=float, metavar="S",
                            help="seconds between reports (default: farm.yaml "
                                 "load.monitor_interval, 2)")
        parser.add_argument("--machine", metavar="NAME",
                            help="machine id shared with this machine's workers")
        parser.add_argument("--workdir", default=".", metavar="DIR",
                            help="directory whose free disk space is reported")
        parser.add_argument("--owner-scope", type=int, metavar="PID",
                            help="count only this process tree as the owner's load "
                                 "(containers, tests; default: the whole machine)")
        add_parent_option(parser)
        args = parser.parse_args(argv)
        config = setup(args, "monitor")
        args.machine = args.machine or config.this_machine
        interval = args.interval or config.load.monitor_interval
        if interval <= 0:
            raise UsageError("--interval must be a positive number of seconds")
        taskmanagers, _, curves = upstreams(config, this_machine(config, args.machine), args)
        monitor = FarmMonitor(taskmanagers, machine=args.machine,
                              interval=interval, workdir=args.workdir,
                              owner_scope=args.owner_scope, curve=curves)
        return run_service(monitor, parent=args.parent)
    return run_command("farm-monitor", build, argv)
