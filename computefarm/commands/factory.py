"""farm-factory: pilot workers on a cluster or other machines, as the queues ask.

It reads farm.yaml's ``factory:`` section (backend, min, max, capabilities,
per-backend options) and, every ``interval``, starts pilots for the tasks that
wait and cancels pilots still queued in the engine when nothing waits. Pilots
leave by themselves when idle. SIGTERM stops it (and the pilots of backends
that depend on it: ssh, local).
"""

import argparse
import os
import sys

from .. import defaults
from ..exceptions import UsageError
from ..factory.backends import load_backend
from ..factory.service import Factory, pilot_argv
from ..service import run_service
from ..storage.cas import location
from .common import add_common_options, run_command, setup


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(prog="farm-factory",
                                         description=__doc__.splitlines()[0])
        add_common_options(parser)
        args = parser.parse_args(argv)
        config = setup(args, "factory")
        settings = config.factory
        if settings is None or settings.backend is None:
            raise UsageError("%s has no factory: section with a backend (README: Growing "
                             "onto a cluster)" % (config.path or "no farm.yaml found:"))
        workdir = os.path.expanduser(settings.workdir or os.path.join(
            location(None, defaults.DATA_ENV, defaults.DATA_DIR), "factory-" + settings.name))
        os.makedirs(workdir, exist_ok=True)
        backend = load_backend(settings.backend)(settings, workdir)
        pilot_config = settings.pilot_config or config.path
        argv = pilot_argv(settings, config.taskmanager.address,
                          os.path.abspath(os.path.expanduser(pilot_config))
                          if pilot_config else None)
        factory = Factory(settings, backend, config.taskmanager.address,
                          config.keys.peer_curve(), argv)
        return run_service(factory)
    return run_command("farm-factory", build, argv)


if __name__ == "__main__":
    sys.exit(main())
