"""Pilots as SLURM jobs, through SLURM's own commands (sbatch, squeue, scancel).

Each pilot is one batch job named after the factory (``--job-name``), so
``squeue --name`` finds them again after the factory restarts. The job runs the
pilot's ``farm-worker`` in the foreground (``exec``), named ``slurm-JOBID`` as a
machine. A walltime (``factory.lifetime``) becomes ``--time`` and the pilot's
``--lifetime``, so it drains and hands its work back before SLURM kills it; a
pilot SLURM kills anyway (``scancel``, preemption) gets SIGTERM and hands its
tasks back, and if it is killed outright the TaskManager requeues them when its
heartbeats stop.

Options (farm.yaml ``factory.slurm``): ``partition``, ``account``, ``sbatch``
(extra sbatch arguments, a list), ``conf`` (SLURM_CONF for every command).
"""

import math
import os
import shlex

from .backends import PENDING, RUNNING, PilotBackend, run

STATES = {"PENDING": PENDING, "CONFIGURING": PENDING, "RUNNING": RUNNING,
          "COMPLETING": RUNNING, "SUSPENDED": RUNNING, "RESIZING": RUNNING}


class SlurmBackend(PilotBackend):
    name = "slurm"
    options = ("partition", "account", "sbatch", "conf")

    def __init__(self, settings, workdir):
        super().__init__(settings, workdir)
        options = self.given
        self.partition = options.get("partition")
        self.account = options.get("account")
        self.extra = [str(a) for a in options.get("sbatch") or ()]
        self.env = dict(os.environ)
        if options.get("conf"):
            self.env["SLURM_CONF"] = os.path.expanduser(str(options["conf"]))
        self.lifetime = settings.lifetime
        self.slots = settings.slots

    def submit(self, count, argv, now):
        script = os.path.join(self.workdir, "pilot.sh")
        with open(script, "w") as stream:
            stream.write("#!/bin/sh\n# a ComputeFarm pilot (farm-factory %s)\n"
                         "exec %s --machine \"slurm-$SLURM_JOB_ID\"\n"
                         % (self.factory_name, " ".join(shlex.quote(a) for a in argv)))
        os.chmod(script, 0o755)
        command = ["sbatch", "--parsable", "--job-name", self.factory_name,
                   "--output", os.path.join(self.workdir, "pilot-%j.log"),
                   "--cpus-per-task", str(self.slots), "--chdir", self.workdir]
        if self.partition:
            command += ["--partition", self.partition]
        if self.account:
            command += ["--account", self.account]
        if self.lifetime:
            command += ["--time", str(max(1, math.ceil(self.lifetime / 60.0)))]
        command += self.extra + [script]
        ids = []
        for _ in range(count):
            out = run(command, "sbatch", self.env).strip()
            ids.append(out.split(";")[0])      # "JOBID" or "JOBID;CLUSTER"
        return ids

    def pilots(self):
        out = run(["squeue", "--noheader", "--name", self.factory_name, "--format", "%i %T"],
                  "squeue", self.env)
        found = {}
        for line in out.splitlines():
            job, _, state = line.strip().partition(" ")
            if state in STATES:
                found[job] = STATES[state]
        return found

    def cancel(self, ids):
        if ids:
            run(["scancel"] + list(ids), "scancel", self.env)
