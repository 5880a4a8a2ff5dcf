"""Pilots on machines reached by ssh (the original ComputeFarm's way).

Through the OpenSSH client the user already has (their ~/.ssh/config, agent
and known hosts apply; ``ssh_config``, ``identity`` and ``ssh_options`` add to
them). Before a host's first pilot, the backend makes sure the host has
ComputeFarm: a user venv (``venv``, under the remote home) is made if it cannot
import it, and the package installed there, from ``wheels`` (a local folder of
wheels copied over: for hosts without an index) or pip's index
(``requirement``, default this version). The pilot's keys (the TaskManager's
public key and the pilots' secret key, from ``pilot_config``) are written under
``~/.config/computefarm/pilot-NAME`` (mode 0600): ssh is the trusted channel
to a machine of the user's own.

Each pilot is one ssh session whose remote shell runs the worker and watches
its stdin: closing it (``cancel``, the factory stopping) stops the worker with
SIGTERM, so it hands its tasks back; the worker leaving by itself ends the
session. One pilot per host at a time.
"""

import os
import shlex
import subprocess

from .. import __version__
from ..config import load_config
from ..exceptions import UsageError
from ..wire.certificates import load_public, load_secret
from .backends import FactoryError, ProcessBackend, run

VENV = ".local/share/computefarm/pilot-venv"


class SshBackend(ProcessBackend):
    name = "ssh"
    options = ("hosts", "ssh_config", "identity", "ssh_options", "remote_python", "venv",
               "wheels", "requirement")

    def __init__(self, settings, workdir):
        super().__init__(settings, workdir)
        options = self.given
        self.hosts = [str(h) for h in options.get("hosts") or ()]
        if not self.hosts:
            raise UsageError("factory.ssh.hosts: the machines to start pilots on (a list)")
        self.base = ["ssh", "-o", "BatchMode=yes"]
        if options.get("ssh_config"):
            self.base += ["-F", os.path.expanduser(str(options["ssh_config"]))]
        if options.get("identity"):
            self.base += ["-i", os.path.expanduser(str(options["identity"]))]
        for option in options.get("ssh_options") or ():
            self.base += ["-o", str(option)]
        self.python = str(options.get("remote_python") or "python3")
        self.venv = str(options.get("venv") or VENV)
        self.wheels = os.path.expanduser(str(options["wheels"])) if options.get("wheels") \
            else None
        self.requirement = str(options.get("requirement") or "computefarm==%s" % __version__)
        self.ready = set()           # hosts set up by this factory
        self.home = ".config/computefarm/pilot-%s" % settings.name

    def submit(self, count, argv, now):
        ids, running = [], self.pilots()
        for host in [h for h in self.hosts if "ssh-" + h not in running][:count]:
            if host not in self.ready:
                self.prepare(host)
                self.ready.add(host)
            pilot = "ssh-" + host
            self.start(pilot, self.base + [host, self.watched(self.remote_argv(argv, pilot))],
                       stdin=subprocess.PIPE)
            ids.append(pilot)
        return ids

    def remote_argv(self, argv, pilot):
        """The pilot's command line as the remote host runs it: its venv's Python,
        its own farm.yaml."""
        argv = list(argv)
        argv[0] = "$HOME/%s/bin/python" % self.venv
        if "--config" in argv:
            argv[argv.index("--config") + 1] = "$HOME/%s/farm.yaml" % self.home
        return argv + ["--machine", pilot]

    @staticmethod
    def watched(argv):
        """A remote shell that runs ``argv`` and stops it when the session's stdin
        closes; the session ends when the worker does."""
        command = " ".join('"%s"' % a if a.startswith("$HOME/") else shlex.quote(a)
                           for a in argv)
        # an asynchronous list's stdin is /dev/null: the watcher reads the session's
        # through fd 3, which the worker does not keep
        return ("exec 3<&0; %s 3<&- </dev/null & p=$!; "
                "(cat <&3 >/dev/null; kill -TERM $p) >/dev/null 2>&1 3<&3 & "
                "exec 3<&-; wait $p" % command)

    def prepare(self, host):
        """ComputeFarm in the host's venv, and the pilot's keys and farm.yaml."""
        check = 'if "$HOME/%s/bin/python" -c "import computefarm" 2>/dev/null; then ' \
                'echo present; fi' % self.venv
        if "present" not in run(self.base + [host, check], "ssh %s" % host):
            self.install(host)
        files = self.pilot_files()
        script = ["set -e", "umask 077", 'mkdir -p "$HOME/%s"' % self.home]
        for name, text in files.items():
            script.append("cat > \"$HOME/%s/%s\" <<'CF_EOF'\n%sCF_EOF" % (self.home, name,
                                                                         text))
        run(self.base + [host, "sh -s"], "ssh %s" % host, stdin="\n".join(script) + "\n")

    def install(self, host):
        venv = '"$HOME/%s"' % self.venv
        steps = ["set -e", "%s -m venv %s" % (shlex.quote(self.python), venv)]
        if self.wheels:
            where = '"$HOME/%s-wheels"' % self.venv
            copy = subprocess.run(
                "tar -C %s -cf - . | %s %s %s" % (
                    shlex.quote(self.wheels), " ".join(shlex.quote(a) for a in self.base),
                    shlex.quote(host), shlex.quote("mkdir -p %s && tar -C %s -xf -"
                                                   % (where, where))),
                shell=True, capture_output=True, text=True, timeout=600)
            if copy.returncode != 0:
                raise FactoryError("ssh %s: copying the wheels failed: %s" % (
                    host, (copy.stderr.strip().splitlines() or ["exit %d" % copy.returncode])[-1]))
            steps.append("%s/bin/pip install -q --no-index --find-links %s computefarm"
                         % (venv, where))
        else:
            steps.append("%s/bin/pip install -q %s" % (venv, shlex.quote(self.requirement)))
        run(self.base + [host, "sh -s"], "installing ComputeFarm on %s" % host,
            stdin="\n".join(steps) + "\n", timeout=900)

    def pilot_files(self):
        """farm.yaml and the key files a pilot reads, from the pilots' farm.yaml here."""
        config = load_config(self.settings.pilot_config)
        if not (config.keys.server and config.keys.secret):
            raise UsageError("factory.pilot_config (%s) names no keys.server and keys.secret: "
                             "the keys ssh pilots connect with" % self.settings.pilot_config)
        load_public(config.keys.server)
        load_secret(config.keys.secret)           # a key file others can read is refused
        files = {}
        for name, path in (("taskmanager.key", config.keys.server),
                           ("pilot.key_secret", config.keys.secret)):
            with open(path, encoding="utf-8") as stream:
                files[name] = stream.read()
        files["farm.yaml"] = ("keys:\n  server: ~/%s/taskmanager.key\n"
                              "  secret: ~/%s/pilot.key_secret\n" % (self.home, self.home))
        return files

    def stop(self, process):
        process.stdin.close()            # the remote shell stops the worker
