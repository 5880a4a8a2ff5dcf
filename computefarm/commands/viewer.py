"""farm-viewer: cutelog on loopback only (127.0.0.1 or ::1), fed by the log forwarder."""

import argparse
import os
import sys

from .. import addresses
from ..exceptions import UsageError
from .common import add_common_options, run_command, setup


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(
            prog="farm-viewer", description="Start cutelog, listening on 127.0.0.1 only, "
                                            "where the TaskManager sends its log records.")
        add_common_options(parser)
        args, rest = parser.parse_known_args(argv)
        config = setup(args, "viewer")
        if not config.logging.cutelog:
            raise UsageError("logging.cutelog is null in %s: no viewer is fed" % config.path)
        host, port = addresses.split_host_port(config.logging.cutelog, "logging.cutelog")
        if not addresses.is_loopback(host):
            raise UsageError("logging.cutelog is %s: cutelog unpickles what reaches its port, "
                             "so it only ever listens on 127.0.0.1 or ::1" % config.logging.cutelog)
        try:
            import cutelog  # noqa: F401  (only to say clearly when it is missing)
        except ImportError:
            raise UsageError("cutelog is not installed: pip install 'computefarm[viewer]'") \
                from None
        # the forwarder connects to the configured host: an IPv6 one is only on ::1
        listen = "::1" if ":" in host else "127.0.0.1"
        # cutelog's own entry point, as its console script calls it: "-m cutelog"
        # makes runpy warn on every start (its package imports its __main__)
        # one tab for every run: each run's forwarder is a new connection, which
        # cutelog would give a tab of its own (unless the user says otherwise)
        tabs = [] if any(a.startswith("--single_tab_mode_default") for a in rest) else \
            ["--single_tab_mode_default", "true"]
        os.execv(sys.executable, [sys.executable, "-c", "import sys; from cutelog.__main__ "
                                  "import main; sys.exit(main())", "--listen_host",
                                  listen, "--listen_port", str(port)] + tabs + rest)
    return run_command("farm-viewer", build, argv)
