"""Estimate pi by a Monte Carlo sweep over the farm, from a plain Python program.

    python examples/pi_sweep.py                    # on an embedded local farm
    python examples/pi_sweep.py tcp://HOST:PORT    # on a running farm

Each of 200 tasks throws 20,000 darts with its own seed on a ``python`` worker;
the results are gathered into one estimate.
"""

import random
import sys
import time

from computefarm.client import FarmExecutor, LocalFarm


def darts(seed, throws=20000):
    rng = random.Random(seed)
    return sum(rng.random() ** 2 + rng.random() ** 2 <= 1.0 for _ in range(throws))


def sweep(address, tasks=200, throws=20000):
    with FarmExecutor(address) as farm:
        hits = sum(farm.map(darts, range(tasks), [throws] * tasks))
    return 4.0 * hits / (tasks * throws)


def main(argv):
    started = time.monotonic()
    if len(argv) > 1:
        estimate = sweep(argv[1])
    else:
        with LocalFarm(["python"]) as farm:
            estimate = sweep(farm.address)
    print("pi is about %.5f (200 tasks, %.1fs)" % (estimate, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
