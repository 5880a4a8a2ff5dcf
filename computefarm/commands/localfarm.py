"""The keeper of majordomo's kept local farm (client/warmfarm.py).

    python -m computefarm.commands localfarm [--idle S] [--slots N] [--config FILE]
        run a local farm until nothing used it for S seconds (majordomo starts it;
        refused while another runs)
    python -m computefarm.commands localfarm stop
        stop the one running now
"""

import argparse
import os
import shutil
import sys
import time

from .. import defaults
from ..client import Client, LocalFarm, warmfarm
from ..config import load_config
from ..hostinfo import live_start
from ..service import Service, run_service
from .common import add_version, run_command


def capabilities():
    """Every built-in capability this machine can offer."""
    offered = ["shell", "python"]
    if shutil.which("gcc"):
        offered.append("gcc")
    return offered


class Keeper(Service):
    name = "local farm"

    def __init__(self, idle, slots, config, clock=time.monotonic):
        super().__init__()
        self.idle = idle
        self.slots = slots
        self.config = config
        self.clock = clock
        self.farm = None
        self.client = None
        self.claimed = None            # the keeper's lock, held while it runs
        self.idle_since = None
        self.idle_wall = None          # the same moment, on the wall clock (leases)
        self.next_check = 0.0

    def initialize(self):
        self.claimed = warmfarm.claim()     # FarmError while another keeper runs
        self.farm = LocalFarm(capabilities(), slots=self.slots, config=self.config,
                              monitor=True, log_dir=warmfarm.state_dir())
        self.farm.start()
        self.client = Client(self.farm.address, on_notice=lambda *args: None,
                             curve=load_config(self.config).keys.peer_curve())
        state = warmfarm.wanted(self.config, self.slots)
        state.update(pid=os.getpid(), started=live_start(os.getpid()),
                     address=self.farm.address, capabilities=self.farm.capabilities,
                     idle=self.idle, processes=[p.pid for p in self.farm.processes])
        warmfarm.write_state(state)
        self.idle_since, self.idle_wall = self.clock(), time.time()

    def loop(self, now=None):
        now = self.clock() if now is None else now
        if now < self.next_check:
            time.sleep(min(defaults.POLL_MAX, self.next_check - now))
            return
        self.next_check = now + defaults.KEEPER_CHECK
        self.farm.check()                  # FarmError (the farm is over) if a part died
        status = self.client.status(defaults.KEEPER_CHECK * 5)
        if status["clients"] > 1 or status["running"] or any(status["queues"].values()):
            self.idle_since, self.idle_wall = now, time.time()   # a run is connected
        elif now - self.idle_since >= self.idle:
            with warmfarm.locked():        # no run attaches while this decides
                if warmfarm.leased_since(self.idle_wall):
                    self.idle_since, self.idle_wall = now, time.time()   # one just did
                    return
                self.forget()
            self.request_stop("unused for %g s" % self.idle)

    def forget(self):
        """Remove the state file (if it is this keeper's): no run finds it any more."""
        state = warmfarm.read_state()
        if state is not None and state.get("pid") == os.getpid():
            os.remove(warmfarm.state_path())

    def shutdown(self):
        self.forget()     # not under the lock: attach() holds it while it stops us
        if self.client is not None:
            self.client.close()
        if self.farm is not None:
            self.farm.stop()
        if self.claimed is not None:        # only now may another keeper start
            self.claimed.close()


def main(argv=None):
    def build(argv):
        parser = argparse.ArgumentParser(prog="localfarm", description=__doc__.splitlines()[0])
        add_version(parser)
        parser.add_argument("action", nargs="?", choices=("run", "stop"), default="run")
        parser.add_argument("--idle", type=float, default=defaults.KEEP_FARM)
        parser.add_argument("--slots", type=int)
        parser.add_argument("--config")
        args = parser.parse_args(argv)
        if args.action == "stop":
            print("stopped the local farm" if warmfarm.stop() else "no local farm runs")
            return 0
        return run_service(Keeper(args.idle, args.slots, args.config))
    return run_command("localfarm", build, argv)


if __name__ == "__main__":
    sys.exit(main())
