"""farm-taskmanager: the farm's one port, its queue and scheduler."""

import argparse

from ..config import ON_OWNER
from ..configcheck import check_address
from ..service import run_service
from ..taskmanager.server import TaskManager
from .common import add_common_options, add_parent_option, run_command, setup


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(
            prog="farm-taskmanager",
            description="Run the TaskManager: the farm's one port, its queue and scheduler.")
        add_common_options(parser)
        parser.add_argument("--bind", metavar="ADDR",
                            help="address to bind, tcp://HOST:PORT; port 0 picks a free one "
                                 "(default: taskmanager.bind, else taskmanager.address)")
        parser.add_argument("--ready-file", metavar="FILE",
                            help="write the bound address to FILE once listening")
        parser.add_argument("--insecure", action="store_true",
                            help="bind a non-loopback address without CURVE keys (trusted "
                                 "networks only: the port runs code on every worker)")
        parser.add_argument("--placement", choices=("load", "round-robin"),
                            help="rank workers by machine load (default) or take turns "
                                 "ignoring load and policy (default: farm.yaml load.placement)")
        parser.add_argument("--on-owner", choices=ON_OWNER,
                            help="what running tasks do when a machine's owner is back, "
                                 "for every machine (default: farm.yaml's policies)")
        parser.add_argument("--database", metavar="FILE",
                            help="the batches' SQLite file, or 'memory' (default: "
                                 "taskmanager.database, else taskmanager-PORT.sqlite in "
                                 "$COMPUTEFARM_DATA or ~/.local/share/computefarm)")
        add_parent_option(parser)
        args = parser.parse_args(argv)
        config = setup(args, "taskmanager")
        bind = args.bind
        if bind:
            check_address(bind, "--bind", allow_port_zero=True)
        elif args.taskmanager:
            bind = config.taskmanager.address
        if args.database:
            config.taskmanager.database = args.database
        policies = {name: machine.policy for name, machine in config.machines.items()}
        if args.on_owner:
            for policy in list(policies.values()) + [config.load.policy]:
                policy.on_owner = args.on_owner
        manager = TaskManager(config.taskmanager, bind=bind, ready_file=args.ready_file,
                              policies=policies, default_policy=config.load.policy,
                              placement=args.placement or config.load.placement,
                              logging_config=config.logging, keys=config.keys,
                              insecure=args.insecure, users=config.users)
        return run_service(manager, parent=args.parent)
    return run_command("farm-taskmanager", build, argv)
