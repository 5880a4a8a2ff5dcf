"""What the TaskManager sends its log forwarders, and what it drops.

Output items are enriched (machine, host, worker, capability, label) and
forwarded as they are: the forwarder, a separate process, makes records of
them. Two limits keep a flood from growing the TaskManager or slowing its
loop: a token bucket per task (``taskmanager.max_log_rate`` lines/s) and the
forwarder's credit (``LOG_CREDIT`` lines in flight). Output beyond either is
dropped and counted (``dropped``); results and events are never dropped.
Until the forwarder has connected, items wait in a bounded backlog. The
forwarders' credit and the tasks' rate budgets are this router's own state;
which peers are forwarders is ``State``'s (role ``logger``).
"""

import collections
import logging
import os
import subprocess
import sys

from .. import addresses, defaults
from ..wire.protocol import Msg, logger_name

log = logging.getLogger(__name__)



class LogRouter:
    def __init__(self, state, queue, max_log_rate):
        self.state = state               # state.State: its forwarder peers and tasks
        self.queue = queue               # TaskManager.queue(rid, mtype, item)
        self.rate = max_log_rate
        self.forwarder = None            # the forwarder process, once started
        self.backlog = collections.deque(maxlen=defaults.LOG_CREDIT)
        self.credits = {}                # forwarder routing id -> lines it may still take
        self.budgets = {}                # task id -> (tokens, time, lines dropped)
        self.client_budgets = {}         # client routing id -> [tokens (bytes), time, dropped]
        self.dropped = 0
        self.next_report = 1

    @property
    def forwarders(self):
        return self.state.roles["logger"]

    @property
    def active(self):
        return bool(self.forwarders) or self.forwarder is not None

    def waiting(self):
        """True while items wait for a forwarder that is still starting."""
        return bool(self.backlog) and self.forwarder is not None and \
            self.forwarder.poll() is None

    def connected(self, rid):
        self.credits[rid] = defaults.LOG_CREDIT
        while self.backlog:                      # what came before it was connected
            self.send(*self.backlog.popleft())

    def credit(self, rid, lines):
        self.credits[rid] = min(defaults.LOG_CREDIT, self.credits.get(rid, 0) + max(0, lines))

    def events(self, client, records, now):
        """A client's LOG records (majordomo's events): within the client's budget of
        ``CLIENT_LOG_RATE`` bytes a second, in bursts of ``CLIENT_LOG_BURST``; beyond,
        dropped and counted, with one WARNING record per burst dropped."""
        budget = self.client_budgets.get(client.rid)
        if budget is None:
            budget = self.client_budgets[client.rid] = [float(defaults.CLIENT_LOG_BURST), now, 0]
        tokens = min(float(defaults.CLIENT_LOG_BURST),
                     budget[0] + (now - budget[1]) * defaults.CLIENT_LOG_RATE)
        budget[1] = now
        for index, record in enumerate(records):
            cost = len(record["msg"]) + len(record["logger"]) + 100
            if cost > tokens:
                dropped = len(records) - index
                if not budget[2]:
                    self.send(Msg.LOG, {
                        "logger": logger_name("farm", "clients", client.name),
                        "level": "WARNING", "fields": {"client_host": client.host},
                        "msg": "client %s on %s logs more than %d bytes/s: records beyond "
                               "are dropped" % (client.name, client.host,
                                                defaults.CLIENT_LOG_RATE)})
                budget[2] += dropped
                self.count_dropped(dropped)
                break
            tokens -= cost
            record.setdefault("fields", {})["client_host"] = client.host
            self.send(Msg.LOG, record, cost=1)
        else:
            budget[2] = 0
        budget[0] = tokens

    def tidy(self):
        """Forget the credit of forwarders and the budgets of tasks that are gone."""
        for rid in [r for r in self.credits if r not in self.forwarders]:
            del self.credits[rid]
        clients = self.state.roles["client"]
        for rid in [r for r in self.client_budgets if r not in clients]:
            del self.client_budgets[rid]
        tasks = self.state.tasks
        for task_id in [t for t in self.budgets if t not in tasks]:
            del self.budgets[task_id]

    def output(self, worker, item, now):
        task = self.state.tasks.get(item["id"])
        if task is not None and not self.within_rate(task, item, worker, now):
            return
        item["machine"], item["host"], item["worker"] = worker.machine, worker.host, worker.name
        if task is not None:
            item["capability"] = task.capability
            if task.label:
                item["label"] = task.label
        self.send(Msg.OUTPUT, item)

    def within_rate(self, task, item, worker, now):
        """A token bucket per task: True when the item's lines may go to the viewer."""
        tokens, stamp, dropped = self.budgets.get(task.id) or (float(self.rate), now, 0)
        tokens = min(float(self.rate), tokens + (now - stamp) * self.rate)
        lines = len(item["lines"])
        if tokens >= lines:
            self.budgets[task.id] = (tokens - lines, now, dropped)
            return True
        if not dropped:
            self.send(Msg.LOG, {
                "logger": logger_name("farm", worker.machine, task.capability,
                                      task.label or task.id),
                "level": "WARNING", "fields": {"task": task.id, "host": worker.host},
                "msg": "task %s prints more than %d lines/s (taskmanager.max_log_rate): "
                       "lines beyond reach the viewer only as the rate allows; its result "
                       "keeps the tail" % (task.id, self.rate)})
        self.budgets[task.id] = (tokens, now, dropped + lines)
        self.count_dropped(lines)
        return False

    def send(self, mtype, item, cost=None):
        """Queue ``item`` for each forwarder with credit; output (and clients' events,
        which give a ``cost``) for one without is dropped and counted, so a flood
        never grows this process. The TaskManager's own events are never dropped."""
        if not self.forwarders:
            if self.forwarder is not None:
                self.backlog.append((mtype, item, cost))
            return
        own_event = mtype == Msg.LOG and cost is None
        if cost is None:
            cost = len(item["lines"]) if mtype == Msg.OUTPUT else 1
        for rid in self.forwarders:
            credit = self.credits.get(rid, 0)
            if credit >= cost or own_event:
                self.credits[rid] = credit - cost
                self.queue(rid, mtype, item)
            else:
                self.count_dropped(cost)

    def count_dropped(self, lines):
        self.dropped += lines
        if self.dropped >= self.next_report:
            self.next_report = self.dropped + defaults.LOG_DROP_REPORT_EVERY
            log.warning("TaskManager: %d output line(s) dropped from the log viewer so far "
                        "(forwarder behind, or taskmanager.max_log_rate)", self.dropped)

    def result(self, worker, result):
        """An ERROR record for the viewer: how a task failed (a success says nothing:
        at thousands of tasks a second that would be most of the log)."""
        task = self.state.tasks.get(result["id"])
        text = "task %s %s on %s" % (result["id"], result["status"], worker.host)
        last = last_line(result.get("error"))
        if last:
            text += ": %s" % last[:500]
        self.send(Msg.LOG, {
            "logger": logger_name("farm", worker.machine,
                                  task.capability if task else "task",
                                  (task.label if task else None) or result["id"]),
            "level": "ERROR", "msg": text,
            "fields": {"task": result["id"], "attempt": result["attempt"],
                       "host": worker.host, "worker": worker.name,
                       "status": result["status"], "exit_code": result.get("exit_code")}})


def last_line(text):
    """The last line of ``text`` that says something ("" when none does)."""
    for line in reversed((text or "").splitlines()):
        if line.strip():
            return line.strip()
    return ""


def start_forwarder(endpoint, config, curve=None):
    """Start the log forwarder for a TaskManager listening on ``endpoint``."""
    host, port = addresses.split(endpoint, "endpoint")
    if host in addresses.WILDCARD:     # every interface: this machine's own is one
        host = "::1" if host == "::" else "127.0.0.1"
    args = [sys.executable, "-m", "computefarm.commands", "logforwarder",
            "--taskmanager", addresses.tcp(host, port), "--records", config.records,
            "--buffer", str(config.buffer), "--parent", str(os.getpid()),
            "--log-level", "WARNING"]
    if config.cutelog:
        args += ["--cutelog", config.cutelog]
    env = dict(os.environ)
    if curve is not None:      # through the environment, not the command line others see
        env[defaults.FORWARDER_KEYS_ENV] = " ".join(key.decode() for key in curve)
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, env=env)


def stop_forwarder(proc, grace=5.0):
    """Wait for the forwarder to finish after the TaskManager's BYE; then make it."""
    for stop in (None, proc.terminate, proc.kill):
        if stop is not None:
            stop()
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
