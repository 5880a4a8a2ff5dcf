"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd
started from a directory of the test's own (nothing written to /etc), on free
ports, and stopped by their pid files.

Needs root and Debian's ``slurm-wlm`` and ``munge`` (.ci/run installs them). The
node declares more CPUs than the machine has (``config_overrides``) so several
single-CPU pilots run at once on two cores. Clients find the cluster through
``SLURM_CONF`` (``env``).
"""

import os
import shutil
import signal
import socket
import subprocess
import time


def available():
    """Why a SLURM cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "slurmd needs root"
    for program in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch"):
        if shutil.which(program) is None:
            return "%s is not installed (Debian: slurm-wlm munge)" % program
    return None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pid(path):
    try:
        with open(path) as stream:
            return int(stream.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class SlurmCluster:
    def __init__(self, base, cpus=8):
        self.base = str(base)
        self.state = os.path.join(self.base, "state")
        self.conf = os.path.join(self.base, "slurm.conf")
        self.socket = os.path.join(self.state, "munge", "munge.socket")
        self.cpus = cpus
        self.host = socket.gethostname().split(".")[0]
        self.pids = {name: os.path.join(self.state, name + ".pid")
                     for name in ("munged", "slurmctld", "slurmd")}

    @property
    def env(self):
        return dict(os.environ, SLURM_CONF=self.conf)

    def start(self, timeout=60.0):
        for folder in ("munge", "ctld", "spool", "log"):
            os.makedirs(os.path.join(self.state, folder), exist_ok=True)
        os.chmod(os.path.join(self.state, "munge"), 0o755)
        key = os.path.join(self.base, "munge.key")
        if not os.path.exists(key):
            subprocess.run(["mungekey", "--create", "--keyfile", key], check=True)
        os.chmod(key, 0o600)
        subprocess.run(["munged", "--force", "--socket", self.socket, "--key-file", key,
                        "--pid-file", self.pids["munged"],
                        "--log-file", os.path.join(self.state, "log", "munged.log"),
                        "--seed-file", os.path.join(self.state, "munge", "seed")], check=True)
        self._wait(lambda: os.path.exists(self.socket), timeout, "munged")
        with open(self.conf, "w") as stream:
            stream.write(self._config())
        subprocess.run(["slurmctld", "-f", self.conf, "-c"], check=True, env=self.env)
        subprocess.run(["slurmd", "-f", self.conf], check=True, env=self.env)
        self._wait(lambda: subprocess.run(
            ["sinfo", "--noheader", "--nodes", self.host, "--format", "%T"],
            capture_output=True, text=True, env=self.env).stdout.strip()
            in ("idle", "mixed", "allocated"), timeout, "the SLURM node idle")

    def _config(self):
        state = self.state
        lines = [
            "ClusterName=cftest", "SlurmctldHost=%s" % self.host,
            "SlurmctldPort=%d" % _free_port(), "SlurmdPort=%d" % _free_port(),
            "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge",
            "CredType=cred/munge", "AuthInfo=socket=%s" % self.socket,
            "StateSaveLocation=%s/ctld" % state, "SlurmdSpoolDir=%s/spool" % state,
            "SlurmctldPidFile=%s" % self.pids["slurmctld"],
            "SlurmdPidFile=%s" % self.pids["slurmd"],
            "SlurmctldLogFile=%s/log/slurmctld.log" % state,
            "SlurmdLogFile=%s/log/slurmd.log" % state,
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            "SlurmdParameters=config_overrides", "MpiDefault=none", "ReturnToService=2",
            "MailProg=/bin/true", "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1", "KillWait=5", "MinJobAge=60",
            "NodeName=%s NodeAddr=127.0.0.1 CPUs=%d RealMemory=1000 State=UNKNOWN"
            % (self.host, self.cpus),
            "PartitionName=main Nodes=%s Default=YES MaxTime=INFINITE State=UP" % self.host]
        return "\n".join(lines) + "\n"

    def jobs(self, name=None):
        """``{job id: state}`` of the jobs SLURM knows (named ``name``)."""
        argv = ["squeue", "--noheader", "--format", "%i %T"]
        if name:
            argv += ["--name", name]
        out = subprocess.run(argv, capture_output=True, text=True, env=self.env).stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def stop(self):
        """Cancel every job (slurmd's stop would leave them running), then stop the
        daemons by their pid files and remove the state."""
        if all(_pid(path) for path in self.pids.values()):
            jobs = list(self.jobs())
            if jobs:
                subprocess.run(["scancel"] + jobs, env=self.env)
            self._wait(lambda: not self.jobs() and not any(
                name.endswith(".sock") or "step" in name
                for name in os.listdir(os.path.join(self.state, "spool"))),
                30, "jobs gone", fail=False)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = _pid(self.pids[name])
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.state, ignore_errors=True)

    def _wait(self, condition, timeout, what, fail=True):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.1)
        if fail:
            raise AssertionError("SLURM: timed out waiting for %s (logs in %s/log)"
                                 % (what, self.state))
        return False


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
