"""The log forwarder the TaskManager starts: task output and events to a records file and cutelog."""

import argparse

from .. import defaults
from ..logs.forwarder import LogForwarder
from ..service import run_service
from .common import add_common_options, add_parent_option, run_command, setup


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(
            prog="farm-logforwarder", description="Started by the TaskManager: task output "
                                                  "and events to a records file and cutelog.")
        add_common_options(parser)
        parser.add_argument("--cutelog", metavar="HOST:PORT")
        parser.add_argument("--records", required=True, metavar="FILE")
        parser.add_argument("--buffer", type=int, default=defaults.CUTELOG_BUFFER)
        add_parent_option(parser)
        args = parser.parse_args(argv)
        config = setup(args, "logforwarder")
        forwarder = LogForwarder(config.taskmanager.address, args.cutelog, args.records,
                                 buffer=args.buffer)
        return run_service(forwarder, parent=args.parent)
    return run_command("farm-logforwarder", build, argv)
