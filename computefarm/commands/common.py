"""What every command line program shares: farm.yaml, logging, the ``ERROR:`` line.

Every command prints a user's mistake as one ``ERROR:`` line and returns the
exit code of its FarmError (see exceptions.py); tracebacks are for bugs.
"""

import logging
import logging.handlers
import os
import sys

from .. import defaults, logfiles
from ..config import load_config
from ..configcheck import check_address
from ..exceptions import ConfigError, FarmError

log = logging.getLogger(__name__)


def add_version(parser):
    from .. import __version__
    parser.add_argument("--version", action="version",
                        version="%(prog)s (ComputeFarm) " + __version__)


def add_parent_option(parser):
    """--parent: the process that started this one; gone, this one stops cleanly."""
    parser.add_argument("--parent", type=int, metavar="PID",
                        help="stop, as on SIGTERM, when process PID (the one that started "
                             "this one) is gone")


def add_common_options(parser, several=False):
    """``several``: --taskmanager may be given more than once (workers, monitors)."""
    add_version(parser)
    parser.add_argument("--config", metavar="FILE",
                        help="farm.yaml to read (default: ./farm.yaml, $COMPUTEFARM_CONFIG, "
                             "~/.config/computefarm/farm.yaml)")
    if several:
        parser.add_argument("--taskmanager", metavar="ADDR", action="append",
                            help="a TaskManager's address tcp://HOST:PORT (overrides "
                                 "farm.yaml; repeat it to serve several)")
    else:
        parser.add_argument("--taskmanager", metavar="ADDR",
                            help="the TaskManager's address tcp://HOST:PORT (overrides "
                                 "farm.yaml)")
    parser.add_argument("--log-level", default=None,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="how much to log on stderr (default: farm.yaml's logging.level)")


def setup(args, role):
    """farm.yaml with the command line's overrides, and this process's logging: to
    stderr and, with ``logging.file``, to that file or, when another process
    (``role``: what this one is) already writes it, to one beside it."""
    config = load_config(args.config)
    given = args.taskmanager if isinstance(args.taskmanager, list) else \
        [args.taskmanager] if args.taskmanager else []
    args.taskmanagers = [check_address(a, "--taskmanager") for a in given]
    if given:
        config.taskmanager.address = args.taskmanagers[0]
        config.taskmanager.configured = True
    else:
        args.taskmanagers = [config.taskmanager.address]
    handlers = [logging.StreamHandler(sys.stderr)]
    claim = None
    if config.logging.file:
        path = os.path.expanduser(config.logging.file)
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            claim = logfiles.claim(path, role)     # held until the process ends
            handlers.append(logging.handlers.RotatingFileHandler(
                claim.path, maxBytes=defaults.LOG_FILE_SIZE,
                backupCount=defaults.LOG_FILE_BACKUPS))
        except OSError as exc:
            raise ConfigError("%s: logging.file: cannot write %s: %s"
                              % (config.path, exc.filename or path, exc.strerror)) from None
    logging.basicConfig(level=args.log_level or config.logging.level, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if claim is not None and claim.holder is not None:
        log.info("logging.file %s", claim.describe(path))
    return config


def run_command(prog, build, argv):
    try:
        return build(argv)
    except FarmError as exc:
        print("ERROR: %s: %s" % (prog, exc), file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return output_closed()


def output_closed():
    """What a command returns when its reader went away (``farm-status | head``):
    the rest of its output goes nowhere, quietly, and the code says so (128 +
    SIGPIPE, as a shell tool killed by the signal)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())      # Python's flush at exit would fail again
    os.close(devnull)
    return OUTPUT_CLOSED


OUTPUT_CLOSED = 141
