"""What farm-monitor costs: its CPU share and memory while reporting.

    python bench/monitor_cost.py [--seconds 20] [--interval 2]
"""

import argparse
import signal
import subprocess
import sys
import time

import psutil

from computefarm.client import LocalFarm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    with LocalFarm([], workers=0) as farm:
        monitor = subprocess.Popen([sys.executable, "-m", "computefarm.commands", "monitor",
                                    "--taskmanager", farm.address, "--interval",
                                    str(args.interval)], stderr=subprocess.DEVNULL)
        try:
            proc = psutil.Process(monitor.pid)
            time.sleep(2.0)                      # past start-up
            before = proc.cpu_times()
            time.sleep(args.seconds)
            after = proc.cpu_times()
            used = (after.user + after.system) - (before.user + before.system)
            print("processes on this machine: %d" % len(psutil.pids()))
            print("farm-monitor, one report every %gs: %.2f%% of one core, RSS %.1f MiB"
                  % (args.interval, 100.0 * used / args.seconds,
                     proc.memory_info().rss / 1048576.0))
        finally:
            monitor.send_signal(signal.SIGTERM)
            monitor.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
