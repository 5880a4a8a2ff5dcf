"""The log forwarder the TaskManager starts: task output and events to a records file and cutelog."""

import argparse

from .. import defaults
from ..logs.forwarder import LogForwarder
from ..service import run_service
from .common import add_common_options, run_command, setup


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(
            prog="farm-logforwarder", description="Started by the TaskManager: task output "
                                                  "and events to a records file and cutelog.")
        add_common_options(parser)
        parser.add_argument("--cutelog", metavar="HOST:PORT")
        parser.add_argument("--records", required=True, metavar="FILE")
        parser.add_argument("--buffer", type=int, default=defaults.CUTELOG_BUFFER)
        parser.add_argument("--parent", type=int, help="stop when this process is gone")
        args = parser.parse_args(argv)
        config = setup(args, "logforwarder")
        forwarder = LogForwarder(config.taskmanager.address, args.cutelog, args.records,
                                 buffer=args.buffer, parent=args.parent)
        return run_service(forwarder)
    return run_command("farm-logforwarder", build, argv)
