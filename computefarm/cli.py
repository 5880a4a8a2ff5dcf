"""Console entry points: farm-taskmanager, farm-worker, farm-monitor, farm-status,
farm-viewer, and the log forwarder the TaskManager starts (majordomo has its own).

Every command prints a user's mistake as one ``ERROR:`` line and returns the
exit code of its FarmError (see exceptions.py); tracebacks are for bugs.
"""

import argparse
import logging
import logging.handlers
import os
import sys

from .config import check_address, load_config
from .exceptions import ConfigError, FarmError, UsageError
from .service import run_service


def _common(parser):
    parser.add_argument("--config", metavar="FILE",
                        help="farm.yaml to read (default: ./farm.yaml, $COMPUTEFARM_CONFIG, "
                             "~/.config/computefarm/farm.yaml)")
    parser.add_argument("--taskmanager", metavar="ADDR",
                        help="the TaskManager's address tcp://HOST:PORT (overrides farm.yaml)")
    parser.add_argument("--log-level", default=None,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="how much to log on stderr (default: farm.yaml's logging.level)")


def _setup(args):
    config = load_config(args.config)
    if args.taskmanager:
        config.taskmanager.address = check_address(args.taskmanager, "--taskmanager")
        config.taskmanager.configured = True
    handlers = [logging.StreamHandler(sys.stderr)]
    if config.logging.file:
        path = os.path.expanduser(config.logging.file)
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            handlers.append(logging.handlers.RotatingFileHandler(
                path, maxBytes=10 * 1024 * 1024, backupCount=5))
        except OSError as exc:
            raise ConfigError("%s: logging.file: cannot write %s: %s"
                              % (config.path, path, exc.strerror)) from None
    logging.basicConfig(level=args.log_level or config.logging.level, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return config


def _main(prog, build, argv):
    try:
        return build(argv)
    except FarmError as exc:
        print("ERROR: %s: %s" % (prog, exc), file=sys.stderr)
        return exc.exit_code


def taskmanager_main(argv=None):
    def build(argv):
        from .taskmanager import TaskManager
        parser = argparse.ArgumentParser(
            prog="farm-taskmanager",
            description="Run the TaskManager: the farm's one port, its queue and scheduler.")
        _common(parser)
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
        args = parser.parse_args(argv)
        config = _setup(args)
        bind = args.bind
        if bind:
            check_address(bind, "--bind", allow_port_zero=True)
        elif args.taskmanager:
            bind = config.taskmanager.address
        policies = {name: machine.policy for name, machine in config.machines.items()}
        manager = TaskManager(config.taskmanager, bind=bind, ready_file=args.ready_file,
                              policies=policies, default_policy=config.load.policy,
                              placement=args.placement or config.load.placement,
                              logging_config=config.logging, keys=config.keys,
                              insecure=args.insecure)
        return run_service(manager)
    return _main("farm-taskmanager", build, argv)


def worker_main(argv=None):
    def build(argv):
        from .worker import FarmWorker
        parser = argparse.ArgumentParser(
            prog="farm-worker", description="Run a specialised worker for one or more "
                                            "capabilities, connected to the TaskManager.")
        _common(parser)
        parser.add_argument("--capability", action="append", metavar="NAME",
                            help="a capability to offer (repeatable); default: this "
                                 "machine's entry in farm.yaml")
        parser.add_argument("--slots", type=int, metavar="N",
                            help="tasks run at once (default: farm.yaml, else CPU count)")
        parser.add_argument("--machine", metavar="NAME",
                            help="machine id shared with this machine's monitor "
                                 "(default: derived from /etc/machine-id)")
        parser.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                            help="an extra attribute requests can constrain on (repeatable)")
        parser.add_argument("--path-map", action="append", default=[], metavar="CLIENT=HERE",
                            help="a project path clients use and where this machine mounts "
                                 "it (repeatable; adds to farm.yaml's path_map)")
        args = parser.parse_args(argv)
        config = _setup(args)
        capabilities, slots, attributes = args.capability, args.slots, {}
        machine = _this_machine(config, args.machine)
        if not capabilities:
            capabilities, slots, attributes = _from_config(config, machine, args.machine, slots)
        attributes.update(_pairs(args.attr, "--attr"))
        path_map = dict(machine.path_map) if machine else {}
        path_map.update(_pairs(args.path_map, "--path-map"))
        if slots is not None and slots < 1:
            raise UsageError("--slots must be at least 1")
        worker = FarmWorker(config.taskmanager.address, capabilities, slots=slots,
                            machine=args.machine, attributes=attributes, path_map=path_map,
                            curve=config.keys.peer_curve())
        return run_service(worker)
    return _main("farm-worker", build, argv)


def _pairs(items, option):
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError("%s %r: expected KEY=VALUE" % (option, item))
        pairs[key] = value
    return pairs


def _this_machine(config, machine_name):
    """This machine's entry in farm.yaml (by --machine, machine id or host name)."""
    from .hostinfo import host_name, machine_id
    names = [n for n in (machine_name, machine_id(), host_name()) if n]
    return next((config.machine(n) for n in names if config.machine(n)), None)


def _from_config(config, machine, machine_name, slots):
    from .hostinfo import host_name, machine_id
    names = [n for n in (machine_name, machine_id(), host_name()) if n]
    if machine is None or not machine.workers:
        raise UsageError("no --capability given and %s describes no workers for machine %s"
                         % (config.path or "no farm.yaml", " or ".join(repr(n) for n in names)))
    if len(machine.workers) > 1:
        raise UsageError("machine %r in %s has %d workers: start each with --capability"
                         % (machine.name, config.path, len(machine.workers)))
    spec = machine.workers[0]
    return list(spec.capabilities), slots or spec.slots, dict(spec.attributes)


def monitor_main(argv=None):
    def build(argv):
        from .monitor import FarmMonitor
        parser = argparse.ArgumentParser(
            prog="farm-monitor", description="Report this machine's load to the TaskManager.")
        _common(parser)
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
        args = parser.parse_args(argv)
        config = _setup(args)
        interval = args.interval or config.load.monitor_interval
        if interval <= 0:
            raise UsageError("--interval must be a positive number of seconds")
        monitor = FarmMonitor(config.taskmanager.address, machine=args.machine,
                              interval=interval, workdir=args.workdir,
                              owner_scope=args.owner_scope, curve=config.keys.peer_curve())
        return run_service(monitor)
    return _main("farm-monitor", build, argv)


def status_main(argv=None):
    def build(argv):
        from .status import show
        parser = argparse.ArgumentParser(
            prog="farm-status", description="Show the farm: machines, workers, queues, "
                                            "running tasks, recent failures.")
        _common(parser)
        parser.add_argument("--watch", action="store_true", help="refresh every 2 seconds")
        parser.add_argument("--json", action="store_true", help="one JSON document, for scripts")
        args = parser.parse_args(argv)
        config = _setup(args)
        return show(config.taskmanager.address, watch=args.watch, as_json=args.json,
                    curve=config.keys.peer_curve())
    return _main("farm-status", build, argv)


def logforwarder_main(argv=None):
    def build(argv):
        from .logforward import LogForwarder
        parser = argparse.ArgumentParser(
            prog="farm-logforwarder", description="Started by the TaskManager: task output "
                                                  "and events to a records file and cutelog.")
        _common(parser)
        parser.add_argument("--cutelog", metavar="HOST:PORT")
        parser.add_argument("--records", required=True, metavar="FILE")
        parser.add_argument("--buffer", type=int, default=100000)
        parser.add_argument("--parent", type=int, help="stop when this process is gone")
        args = parser.parse_args(argv)
        config = _setup(args)
        forwarder = LogForwarder(config.taskmanager.address, args.cutelog, args.records,
                                 buffer=args.buffer, parent=args.parent)
        return run_service(forwarder)
    return _main("farm-logforwarder", build, argv)


def viewer_main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(
            prog="farm-viewer", description="Start cutelog, listening on 127.0.0.1 only, "
                                            "where the TaskManager sends its log records.")
        _common(parser)
        args, rest = parser.parse_known_args(argv)
        config = _setup(args)
        if not config.logging.cutelog:
            raise UsageError("logging.cutelog is null in %s: no viewer is fed" % config.path)
        host, _, port = config.logging.cutelog.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise UsageError("logging.cutelog is %s: cutelog unpickles what reaches its port, "
                             "so it only ever listens on 127.0.0.1" % config.logging.cutelog)
        try:
            import cutelog  # noqa: F401  (only to say clearly when it is missing)
        except ImportError:
            raise UsageError("cutelog is not installed: pip install 'computefarm[viewer]'") \
                from None
        os.execv(sys.executable, [sys.executable, "-m", "cutelog", "--listen_host",
                                  "127.0.0.1", "--listen_port", port] + rest)
    return _main("farm-viewer", build, argv)


COMMANDS = {"taskmanager": taskmanager_main, "worker": worker_main, "monitor": monitor_main,
            "status": status_main, "logforwarder": logforwarder_main, "viewer": viewer_main}

if __name__ == "__main__":  # python -m computefarm.cli taskmanager|worker ...
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print("usage: python -m computefarm.cli {%s} ..." % ",".join(COMMANDS), file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
