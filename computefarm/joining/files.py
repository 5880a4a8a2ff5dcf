"""What farm-join leaves on the new machine: its key, the TaskManager's public
key, and a farm.yaml that says who this machine is and what its workers offer.

Nothing is written before the TaskManager said yes, and ``check`` refuses
beforehand what would have to be overwritten, so a failed join leaves the
machine as it was and a used invitation is never wasted on a file in the way.
"""

import os
import time

import yaml

from ..exceptions import UsageError
from ..wire.certificates import write_certificate

DEFAULT_CAPABILITIES = ("shell", "python")


class MachineFiles:
    """Where the key files and farm.yaml go (``directory``, ``config``)."""

    def __init__(self, directory, config, force=False):
        self.directory = os.path.expanduser(directory)
        self.config = os.path.expanduser(config)
        self.force = force

    def check(self):
        if os.path.exists(self.config) and not self.force:
            raise UsageError("%s exists already: this machine has a farm.yaml (pass --config "
                             "PATH to write another, or --force to replace it)" % self.config)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        os.makedirs(os.path.dirname(self.config) or ".", exist_ok=True)
        if not os.access(self.directory, os.W_OK):
            raise UsageError("%s: cannot write the keys there" % self.directory)

    def write(self, address, server_public, public, secret_key, answer, capabilities=None,
              slots=None):
        """The key files and farm.yaml for the grant in ``answer`` (ENROLLED);
        returns the farm.yaml's path."""
        name, role = answer["name"], answer["role"]
        server_path = os.path.join(self.directory, "taskmanager.key")
        secret_path = os.path.join(self.directory, name + ".key_secret")
        write_certificate(server_path, server_public, metadata={"name": "taskmanager"})
        write_certificate(secret_path, public, secret_key, {"name": name, "role": role})
        data = {"taskmanager": {"address": address},
                "keys": {"server": server_path, "secret": secret_path}}
        if role in ("machine", "worker"):
            worker = {"capabilities": list(capabilities or answer.get("capabilities")
                                           or DEFAULT_CAPABILITIES)}
            if slots or answer.get("slots"):
                worker["slots"] = slots or answer["slots"]
            data["machine"] = answer["machine"]
            data["machines"] = {answer["machine"]: {"workers": [worker]}}
            if role == "worker":
                data["machines"][answer["machine"]]["monitor"] = False
        header = ("# Written by farm-join on %s: this machine is %s (%s) in the farm at %s.\n"
                  "# Its secret key is %s: it never leaves this machine.\n"
                  % (time.strftime("%Y-%m-%d %H:%M"), name, role, address, secret_path))
        temporary = self.config + ".tmp"
        with open(temporary, "w", encoding="utf-8") as stream:
            stream.write(header + yaml.safe_dump(data, sort_keys=False))
        os.replace(temporary, self.config)
        return self.config
