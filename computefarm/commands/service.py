"""farm-service: this machine's workers and monitor, kept running as you (no root).

    farm-service run        run them in the foreground, restarting any that dies
    farm-service install    ... as a systemd user unit, else an @reboot crontab line
    farm-service uninstall  stop it and remove what install wrote
    farm-service status     installed? running?

What runs comes from this machine's entry in farm.yaml (``machine:`` names it;
farm-join writes both).
"""

import argparse
import os
import sys

from ..config import load_config
from ..exceptions import UsageError
from ..joining import units
from ..joining.supervisor import Supervisor
from ..service import run_service, write_ready_file
from .common import add_common_options, run_command, setup
from .worker import this_machine


def run(config, path):
    if path is None:
        raise UsageError("no farm.yaml found: farm-join writes one, or pass --config")
    other = units.running_pid()
    if other is not None:
        raise UsageError("farm-service is running already (pid %d)" % other)
    machine = this_machine(config, config.this_machine)
    if machine is None:
        raise UsageError("%s names no entry for this machine under machines: (farm-join "
                         "writes one; or set machine: NAME)" % path)
    supervisor = Supervisor(machine, path)
    pid_file = units.pid_path()
    os.makedirs(os.path.dirname(pid_file), exist_ok=True)
    write_ready_file(pid_file, units.pid_line(os.getpid()))
    try:
        return run_service(supervisor)
    finally:
        if units.running_pid() == os.getpid():
            os.remove(pid_file)


def install(config, path, out):
    way = units.choose()
    if this_machine(config, config.this_machine) is None:
        raise UsageError("%s names no entry for this machine under machines:" % path)
    for note in way.install(path):
        out.write("farm-service: %s\n" % note)
    return 0


def main(argv=None, out=None):
    out = out or sys.stdout

    def build(argv):
        parser = argparse.ArgumentParser(prog="farm-service",
                                         description=__doc__.splitlines()[0])
        add_common_options(parser)
        parser.add_argument("action", choices=("run", "install", "uninstall", "status"))
        args = parser.parse_args(argv)
        if args.action == "run":
            config = setup(args, "service")
            return run(config, config.path)
        if args.action == "install":
            config = load_config(args.config)
            if config.path is None:
                raise UsageError("no farm.yaml found: farm-join writes one, or pass --config")
            return install(config, os.path.abspath(config.path), out)
        way = units.choose()
        if args.action == "uninstall":
            for note in way.uninstall():
                out.write("farm-service: %s\n" % note)
            return 0
        installed, text = way.status()
        out.write("farm-service: %s (%s)\n" % (text, way.name))
        return 0 if installed else 1
    return run_command("farm-service", build, argv)


if __name__ == "__main__":
    sys.exit(main())
