"""farm-monitor: one per machine, reporting its load to the TaskManager.

Every interval it sends a REPORT: cores, total and per-CPU use, load averages,
memory, swap, free disk of the work directory, platform, and the **owner
load**: CPU used by processes that are not the farm's (the TaskManager,
workers, monitors, majordomo, and every process they started). It shares its
machine id with the workers of the machine. ``--owner-scope PID`` counts only
that process tree as the owner's (containers, tests); by default it is the
whole machine.
"""

import logging
import os
import time

import psutil
import zmq

from .. import defaults
from ..exceptions import AccessRefused
from ..hostinfo import host_name, machine_id, platform_tag
from ..service import Service
from ..wire import protocol
from ..wire.link import Link, peer_id
from ..wire.protocol import Msg
from ..worker.taskrecords import TaskRecords

log = logging.getLogger(__name__)

# Words in the command line of a farm process (modules, console scripts).
FARM_MARKS = ("computefarm", "farm-taskmanager", "farm-worker", "farm-monitor",
              "farm-status", "farm-viewer", "majordomo")


class LoadSampler:
    """Reads the machine's load; ``sample(now)`` returns one REPORT body."""

    def __init__(self, machine, interval, workdir=".", owner_scope=None):
        self.machine = machine
        self.interval = interval
        self.workdir = workdir
        self.owner_scope = owner_scope
        self.cores = psutil.cpu_count() or 1
        self.physical = psutil.cpu_count(logical=False)
        self.previous = {}            # pid -> CPU seconds at the last sample
        self.previous_at = None
        self.me = psutil.Process()
        psutil.cpu_percent(None)
        psutil.cpu_percent(None, percpu=True)
        self.me.cpu_percent(None)

    def sample(self, now):
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        try:
            disk_free = psutil.disk_usage(self.workdir).free
        except OSError:
            disk_free = 0
        return {
            "machine": self.machine, "host": host_name(), "interval": self.interval,
            "cores": self.cores, "physical_cores": self.physical,
            "cpu_percent": psutil.cpu_percent(None),
            "per_cpu": psutil.cpu_percent(None, percpu=True),
            "load_avg": list(os.getloadavg()),
            "memory_total": memory.total, "memory_available": memory.available,
            "swap_total": swap.total, "swap_used": swap.used, "disk_free": disk_free,
            "owner_cpu": self.owner_cpu(now), "platform": platform_tag(),
            "monitor_cpu": self.me.cpu_percent(None), "monitor_rss": self.me.memory_info().rss,
        }

    def owner_cpu(self, now):
        """Percent of the machine's CPU used since the last sample by non-farm processes."""
        parents, times, farm = {}, {}, set()
        for proc in psutil.process_iter(["pid", "ppid", "cmdline", "cpu_times"]):
            info = proc.info
            if info["cpu_times"] is None:
                continue
            pid = info["pid"]
            parents[pid] = info["ppid"]
            times[pid] = info["cpu_times"].user + info["cpu_times"].system
            if any(mark in part for part in (info["cmdline"] or ())[:3] for mark in FARM_MARKS):
                farm.add(pid)
        owner = [pid for pid in times if not _under(pid, parents, farm)]
        if self.owner_scope is not None:
            owner = [pid for pid in owner if _under(pid, parents, {self.owner_scope})]
        used = sum(times[pid] - self.previous.get(pid, 0.0) for pid in owner)
        elapsed = None if self.previous_at is None else now - self.previous_at
        self.previous, self.previous_at = times, now
        if not elapsed:
            return 0.0
        return max(0.0, min(100.0, 100.0 * used / (elapsed * self.cores)))


def _under(pid, parents, roots):
    """True when ``pid`` or one of its ancestors is in ``roots``."""
    seen = 0
    while pid and seen < 64:
        if pid in roots:
            return True
        pid = parents.get(pid)
        seen += 1
    return False


class FarmMonitor(Service):
    name = "monitor"

    def __init__(self, address, machine=None, interval=2.0, workdir=".", owner_scope=None,
                 context=None, clock=time.monotonic, curve=None):
        super().__init__()
        # one TaskManager's address, or those of every one this machine's workers serve
        self.addresses = [address] if isinstance(address, str) else list(address)
        self.address = self.addresses[0]
        self.machine = machine or machine_id()
        self.interval = interval
        self.workdir = workdir
        self.owner_scope = owner_scope
        self.curve = curve             # keys: one set, or a list (one per TaskManager)
        self.context = context or zmq.Context.instance()
        self.clock = clock
        self.identity = peer_id("monitor")
        self.sampler = None
        self.records = None            # the workers' TaskRecords: orphans are reaped here
        self.links = []                # one per TaskManager: each gets every report
        self.poller = None
        self.next_report = 0.0

    def initialize(self):
        self.sampler = LoadSampler(self.machine, self.interval, self.workdir, self.owner_scope)
        self.records = TaskRecords(name="monitor of machine %s" % self.machine)
        self.poller = zmq.Poller()
        now = self.clock()
        self.sampler.owner_cpu(now)
        curves = self.curve if isinstance(self.curve, list) else [self.curve] * len(
            self.addresses)
        self.links = [Link(self.context, address, "monitor", self.hello,
                           lambda restarted: None, self.poller, now, identity=self.identity,
                           curve=curve) for address, curve in zip(self.addresses, curves)]
        self.next_report = now + min(self.interval, 0.5)
        log.info("monitor of machine %s: reporting every %gs to %s", self.machine,
                 self.interval, ", ".join(self.addresses))

    def hello(self):
        return protocol.hello("monitor", self.identity, host_name(), self.machine, os.getpid())

    def loop(self, now=None):
        wait = max(0.0, min(defaults.POLL_MAX, self.next_report - self.clock()))
        if all(link.socket is None for link in self.links):
            time.sleep(wait)           # reconnecting: nothing to poll
        else:
            self.poller.poll(wait * 1000)
        now = self.clock() if now is None else now
        for link in self.links:
            link.receive(now)          # the link answers what it is sent itself
        if now >= self.next_report:
            self.next_report = now + self.interval
            self.records.reap()        # the trees of workers killed on this machine
            report = self.sampler.sample(now)
            for link in self.links:   # each applies its owner policy to its own tasks
                link.send(Msg.REPORT, report, now)
        for link in self.links:
            link.tick(now)
            if link.refused:
                raise AccessRefused(link.refused)

    def shutdown(self):
        for link in self.links:
            link.close(bye={"reason": "monitor stopping"})
