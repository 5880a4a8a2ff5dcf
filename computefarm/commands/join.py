"""farm-join: this machine joins a farm with the one line ``farm-keys invite`` printed.

    farm-join TOKEN             enrol, write farm.yaml, run the workers and monitor here
    farm-join TOKEN --service   ... and keep them running across logouts and reboots
    farm-join TOKEN --no-start  only enrol and write the files
    farm-join -                 read the token from stdin (not shown in ps)

The key pair is made here; its secret half never leaves this machine.
"""

import argparse
import logging
import os
import sys

from .. import defaults
from ..config import load_config
from ..configcheck import check_address
from ..exceptions import UsageError
from ..invitations import read_token
from ..joining.enrol import enrol
from ..joining.files import MachineFiles
from .common import add_version, run_command


def main(argv=None, out=None):
    out = out or sys.stdout

    def build(argv):
        parser = argparse.ArgumentParser(prog="farm-join",
                                         description=__doc__.splitlines()[0])
        add_version(parser)
        parser.add_argument("token", help="the line farm-keys invite printed, or - for stdin")
        parser.add_argument("--name", help="the name this machine asks for (default: its "
                                           "host name; the invitation may fix it)")
        parser.add_argument("--capability", action="append", metavar="NAME",
                            help="what its worker offers (repeatable; default: the "
                                 "invitation's, else shell and python)")
        parser.add_argument("--slots", type=int, metavar="N",
                            help="tasks its worker runs at once (default: CPU count)")
        parser.add_argument("--dir", default=defaults.JOIN_DIR,
                            help="where its keys go [%(default)s]")
        parser.add_argument("--config", default=defaults.CONFIG_USER_PATH, metavar="FILE",
                            help="the farm.yaml to write [%(default)s]")
        parser.add_argument("--force", action="store_true",
                            help="replace an existing farm.yaml")
        start = parser.add_mutually_exclusive_group()
        start.add_argument("--service", action="store_true",
                           help="install a user service (systemd, else cron) and start it")
        start.add_argument("--no-start", action="store_true",
                           help="only enrol and write the files")
        parser.add_argument("--timeout", type=float, default=defaults.ENROL_TIMEOUT,
                            metavar="S", help="wait this long for the TaskManager "
                                              "[%(default)s]")
        parser.add_argument("--log-level", default="INFO",
                            choices=("DEBUG", "INFO", "WARNING", "ERROR"))
        args = parser.parse_args(argv)
        logging.basicConfig(level=args.log_level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        token = sys.stdin.readline() if args.token == "-" else args.token
        address, server_public, secret = read_token(token)
        address = check_address(address, "the invitation's address")
        if args.slots is not None and args.slots < 1:
            raise UsageError("--slots must be at least 1")
        files = MachineFiles(args.dir, args.config, args.force)
        files.check()                      # before the invitation is used
        public, secret_key, answer = enrol(address, server_public, secret, args.name,
                                           args.timeout)
        path = files.write(address, server_public, public, secret_key, answer,
                           args.capability, args.slots)
        out.write("Joined the farm at %s as %s (%s). Wrote %s; the secret key stays in %s.\n"
                  % (address, answer["name"], answer["role"], path,
                     os.path.expanduser(args.dir)))
        out.flush()
        if answer["role"] == "client" or args.no_start:
            if answer["role"] != "client":
                out.write("Start it with: farm-service run --config %s  (or farm-service "
                          "install)\n" % path)
            return 0
        from .service import install, run
        config = load_config(path)
        if args.service:
            return install(config, path, out)
        return run(config, path)
    return run_command("farm-join", build, argv)


if __name__ == "__main__":
    sys.exit(main())
