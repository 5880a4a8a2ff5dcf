"""farm-worker: a specialised worker for one or more capabilities."""

import argparse

from .. import defaults
from ..configcheck import duration
from ..exceptions import UsageError
from ..hostinfo import host_name, machine_id
from ..service import run_service
from ..worker.pilot import PilotLimits
from ..worker.service import FarmWorker
from .common import add_common_options, add_parent_option, run_command, setup


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(
            prog="farm-worker", description="Run a specialised worker for one or more "
                                            "capabilities, connected to the TaskManager.")
        add_common_options(parser, several=True)
        parser.add_argument("--weight", action="append", type=float, metavar="W",
                            help="with several --taskmanager: each one's share of the slots "
                                 "while several want them, in the same order (default 1)")
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
        pilot = parser.add_argument_group(
            "pilots", "a worker that leaves on its own (a cluster job): it drains first, "
                      "handing back what it has not started, so nothing is lost")
        pilot.add_argument("--idle-exit", metavar="TIME",
                           help="leave after this long with nothing to do (90, 90s, 5m)")
        pilot.add_argument("--max-tasks", type=int, metavar="N",
                           help="start N tasks, then drain and leave")
        pilot.add_argument("--lifetime", metavar="TIME",
                           help="the job's walltime: drain before it ends, leave at its end")
        pilot.add_argument("--drain-before", metavar="TIME",
                           help="with --lifetime: stop taking work this long before its end "
                                "(default a tenth of it, at most 5m)")
        parser.add_argument("--ready-file", metavar="FILE",
                            help="rewrite FILE (JSON: welcomes, incarnation, pid) each time "
                                 "the TaskManager welcomes this worker")
        add_parent_option(parser)
        args = parser.parse_args(argv)
        config = setup(args, "worker")
        args.machine = args.machine or config.this_machine
        capabilities, slots, attributes = args.capability, args.slots, {}
        machine = this_machine(config, args.machine)
        if not capabilities:
            capabilities, slots, attributes = _from_config(config, machine, args.machine, slots)
        attributes.update(_pairs(args.attr, "--attr"))
        path_map = dict(machine.path_map) if machine else {}
        path_map.update(_pairs(args.path_map, "--path-map"))
        if slots is not None and slots < 1:
            raise UsageError("--slots must be at least 1")
        taskmanagers, weights, curves = upstreams(config, machine, args)
        limits = pilot_limits(args)
        worker = FarmWorker(taskmanagers, capabilities, slots=slots,
                            machine=args.machine, attributes=attributes, path_map=path_map,
                            curve=curves, ready_file=args.ready_file, weights=weights,
                            cache=machine.cache if machine else None,
                            cache_size=machine.cache_size if machine else defaults.CACHE_SIZE,
                            pilot=limits)
        return run_service(worker, parent=args.parent)
    return run_command("farm-worker", build, argv)


def pilot_limits(args):
    """The pilot's limits from the command line (worker/pilot.py)."""
    if args.max_tasks is not None and args.max_tasks < 1:
        raise UsageError("--max-tasks must be at least 1")
    lifetime = duration(args.lifetime, "--lifetime") if args.lifetime else None
    drain = duration(args.drain_before, "--drain-before") if args.drain_before else None
    if drain is not None and (lifetime is None or drain >= lifetime):
        raise UsageError("--drain-before goes with a longer --lifetime")
    return PilotLimits(duration(args.idle_exit, "--idle-exit") if args.idle_exit else None,
                       args.max_tasks, lifetime, drain)


def upstreams(config, machine, args):
    """The TaskManagers to serve: ``(addresses, weights, curves)``, from --taskmanager
    (and --weight), else this machine's ``taskmanagers`` list in farm.yaml, else
    farm.yaml's TaskManager."""
    if args.taskmanager is None and machine is not None and machine.taskmanagers:
        if getattr(args, "weight", None):
            raise UsageError("--weight goes with --taskmanager; %s gives the weights of "
                             "machine %s's TaskManagers" % (config.path, machine.name))
        entries = machine.taskmanagers
        return ([u.address for u in entries], [u.weight for u in entries],
                [config.keys.curve_for(u.server) for u in entries])
    weights = _weights(getattr(args, "weight", None), args.taskmanagers)
    return args.taskmanagers, weights, config.keys.peer_curve()


def _weights(weights, taskmanagers):
    """One weight a TaskManager (1 each when none is given)."""
    if len(set(taskmanagers)) != len(taskmanagers):
        raise UsageError("--taskmanager: the same address twice")
    if not weights:
        return [1.0] * len(taskmanagers)
    if len(weights) != len(taskmanagers):
        raise UsageError("%d --weight for %d --taskmanager: give one for each, in the same "
                         "order" % (len(weights), len(taskmanagers)))
    for weight in weights:
        if not weight > 0:
            raise UsageError("--weight %g: a weight must be > 0" % weight)
    return weights


def _pairs(items, option):
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError("%s %r: expected KEY=VALUE" % (option, item))
        pairs[key] = value
    return pairs


def this_machine(config, machine_name):
    """This machine's entry in farm.yaml (by --machine, machine id or host name)."""
    names = [n for n in (machine_name, machine_id(), host_name()) if n]
    return next((config.machine(n) for n in names if config.machine(n)), None)


def _from_config(config, machine, machine_name, slots):
    names = [n for n in (machine_name, machine_id(), host_name()) if n]
    if machine is None or not machine.workers:
        raise UsageError("no --capability given and %s describes no workers for machine %s"
                         % (config.path or "no farm.yaml", " or ".join(repr(n) for n in names)))
    if len(machine.workers) > 1:
        raise UsageError("machine %r in %s has %d workers: start each with --capability"
                         % (machine.name, config.path, len(machine.workers)))
    spec = machine.workers[0]
    return list(spec.capabilities), slots or spec.slots, dict(spec.attributes)
