"""A legitimate client for the tests, run inside a test host.

    python netclient.py ADDRESS [--tasks N]

Runs N shell tasks (``echo N``) and asks for the farm's status; prints one JSON
line: the results' statuses and outputs, and the status. Keys come in
RAWPEER_CURVE as for rawpeer.py.
"""

import argparse
import json
import os

from computefarm.client import Client


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--sleep", type=float, default=0.0, help="each task sleeps first")
    parser.add_argument("--mark", help="each task appends its pid to MARK/N first")
    options = parser.parse_args()
    curve = tuple(key.encode() for key in os.environ["RAWPEER_CURVE"].split())
    client = Client(options.address, curve=curve, on_notice=lambda *args: None)
    try:
        mark = "echo $$ >> %s/%%d; " % options.mark if options.mark else ""
        futures = [client.submit("shell", {"cmd": (mark + "sleep %g; echo %d") % (
            (i, options.sleep, i) if mark else (options.sleep, i))})
                   for i in range(options.tasks)]
        results = [future.result(options.timeout) for future in futures]
        status = client.status()
    finally:
        client.close()
    print(json.dumps({"statuses": [r.status for r in results],
                      "stdout": [r.stdout for r in results], "status": status,
                      "stats": client.stats}))


if __name__ == "__main__":
    main()
