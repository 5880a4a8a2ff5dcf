"""Where pilots run: one small interface, a backend per engine.

A backend starts pilots (``submit``: each one a ``farm-worker`` command line
that leaves when idle), says which of its pilots exist and whether they wait
or run (``pilots``), and stops them (``cancel``, ``close``). Pilots carry the
factory's name, so a factory started again finds the ones it started before.
A failing or missing engine command raises ``FactoryError`` with its message;
the factory logs it, shows it in farm-status and tries again later.

Built in: ``local`` (processes on this machine: a big machine lent whole, and
the factory's own tests), ``slurm`` (sbatch, squeue, scancel) and ``ssh``
(machines listed in farm.yaml). Others are ``"module:Class"`` entries.
"""

import importlib
import os
import signal
import subprocess

from .. import defaults
from ..exceptions import FarmError, UsageError

PENDING, RUNNING = "pending", "running"

BUILTIN = {"local": "computefarm.factory.backends:LocalBackend",
           "slurm": "computefarm.factory.slurm:SlurmBackend",
           "ssh": "computefarm.factory.ssh:SshBackend"}


class FactoryError(FarmError):
    """An engine command failed: the factory says so and tries again later."""


class PilotBackend:
    """Base of the backends: ``settings`` is farm.yaml's ``factory`` section
    (config.FactoryConfig), its ``options`` the backend's own map in it."""

    name = "backend"
    options = ()                 # the keys its farm.yaml section may hold

    def __init__(self, settings, workdir):
        self.settings = settings
        self.factory_name = settings.name
        self.workdir = workdir
        options = settings.options or {}
        unknown = set(options) - set(self.options)
        if unknown:
            raise UsageError("factory.%s: unknown key(s) %s (expected: %s)" % (
                self.name, ", ".join(sorted(unknown)), ", ".join(self.options) or "none"))
        self.given = options

    def submit(self, count, argv, now):
        """Start ``count`` pilots running ``argv`` (a farm-worker command line
        without ``--machine``); returns their ids."""
        raise NotImplementedError

    def pilots(self):
        """``{pilot id: PENDING or RUNNING}`` of this factory's pilots that exist."""
        raise NotImplementedError

    def cancel(self, ids):
        """Stop these pilots (their workers hand their tasks back)."""
        raise NotImplementedError

    def close(self):
        """The factory stops: pilots that outlive it leave by themselves when idle
        (``idle_exit``); backends whose pilots depend on the factory stop them."""


class ProcessBackend(PilotBackend):
    """A backend whose pilots are each one local process (the pilot itself, or the
    ssh session it runs in): they exist while it runs; ``stop`` asks one to end."""

    def __init__(self, settings, workdir):
        super().__init__(settings, workdir)
        self.processes = {}          # pilot id -> Popen

    def start(self, pilot, argv, **options):
        with open(os.path.join(self.workdir, pilot + ".log"), "ab") as log:
            self.processes[pilot] = subprocess.Popen(argv, stdout=log, stderr=log,
                                                     start_new_session=True, **options)

    def stop(self, process):
        process.send_signal(signal.SIGTERM)

    def pilots(self):
        for pilot, process in list(self.processes.items()):
            if process.poll() is not None:
                del self.processes[pilot]
        return {pilot: RUNNING for pilot in self.processes}

    def cancel(self, ids):
        for pilot in ids:
            process = self.processes.get(pilot)
            if process is not None and process.poll() is None:
                self.stop(process)

    def close(self):
        self.cancel(list(self.processes))
        for process in self.processes.values():
            try:
                process.wait(defaults.SUPERVISE_STOP + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class LocalBackend(ProcessBackend):
    """Pilots as processes on this machine."""

    name = "local"

    def __init__(self, settings, workdir):
        super().__init__(settings, workdir)
        self.count = 0

    def submit(self, count, argv, now):
        ids = []
        for _ in range(count):
            self.count += 1
            pilot = "%s-%d" % (self.factory_name, self.count)
            self.start(pilot, argv + ["--machine", pilot], stdin=subprocess.DEVNULL)
            ids.append(pilot)
        return ids


def load_backend(name):
    """The backend class called ``name`` (built in, or ``module:Class``)."""
    target = BUILTIN.get(name, name)
    module, _, attr = target.partition(":")
    if not attr:
        raise UsageError("factory.backend: %r is not one of %s (or module:Class)"
                         % (name, ", ".join(BUILTIN)))
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError("factory.backend: cannot load %s: %s" % (target, exc)) from None


def run(argv, what, env=None, timeout=defaults.FACTORY_COMMAND_TIMEOUT, stdin=None):
    """An engine command's stdout; FactoryError (naming ``what``) when it is
    missing, fails or hangs."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                              input=stdin)
    except FileNotFoundError:
        raise FactoryError("%s: %s not found (is it installed and on PATH?)"
                           % (what, argv[0])) from None
    except subprocess.TimeoutExpired:
        raise FactoryError("%s: %s did not answer within %d s" % (what, argv[0], timeout)) \
            from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise FactoryError("%s: %s failed (exit %d): %s" % (
            what, argv[0], done.returncode, lines[-1] if lines else "no message"))
    return done.stdout
