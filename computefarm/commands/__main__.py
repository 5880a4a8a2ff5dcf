"""``python -m computefarm.commands NAME ARGS``: how the farm starts its own processes
(LocalFarm, the TaskManager's log forwarder, tests), whatever is on PATH."""

import importlib
import sys

COMMANDS = ("taskmanager", "worker", "monitor", "status", "logforwarder", "viewer", "keys", "run",
            "join", "service", "factory", "localfarm")

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print("usage: python -m computefarm.commands {%s} ..." % ",".join(COMMANDS),
              file=sys.stderr)
        sys.exit(2)
    sys.exit(importlib.import_module("computefarm.commands." + sys.argv[1]).main(sys.argv[2:]))
