"""majordomo: doit, with ``run`` executing every task's actions on the farm.

Every doit command works as under ``doit`` (list, info, clean, forget, ignore,
dumpdb, help, ...), with the same dodo.py discovery, options and DOIT_CONFIG;
only ``run`` is ComputeFarm's (``runcommand.FarmRun``). This module opens the
farm for a run: a configured TaskManager, one started here when the configured
address is on this machine and nothing answers, or an embedded local farm.
"""

import errno
import os
import signal
import socket
import sys
import time

from doit.cmd_base import Command, DoitCmdBase
from doit.cmd_clean import Clean
from doit.doit_cmd import DoitMain
from doit.exceptions import InvalidCommand

from .. import addresses, defaults, pickling
from ..client import Client, LocalFarm, report, timeline, warmfarm
from ..config import load_config
from ..configcheck import check_address
from ..exceptions import FarmError, FarmUnreachable
from ..wire.protocol import Code, logger_name
from .placement import needed_capabilities
from .progress import Progress
from .remotefiles import RemoteOutputs, checker
from .runcommand import FarmRun

WAITING = (Code.NO_CAPABILITY, Code.NO_MATCH)   # notices that tasks wait for workers
NAMED = (Code.SUSPENDED, Code.RESUMED)          # notices shown with their tasks' names


class FarmSession:
    """The farm one ``majordomo run`` uses.

    Created before dodo.py's tasks are loaded, so an embedded TaskManager starts
    while doit loads; ``open(tasks)`` then checks capabilities, starts the
    workers the tasks need and connects.
    """

    def __init__(self, options, out=None):
        self.progress = Progress(out or sys.stderr)
        self.progress.events = self._events
        self.timeline = timeline.Timeline()
        self.report = options.get("report")   # where the timeline goes (None: the cache)
        self.keep_runs = timeline.runs_keep() if self.report is None else None
        self.nice = bool(options.get("nice"))  # take only the slots no other run wants
        self.local = None
        self.client = None
        self.files = None          # client.staging.ProjectFiles: the project for the workers
        self.remote = None         # remotefiles.RemoteOutputs: outputs left on the farm
        self.download = "all"      # or "toplevel": only the asked-for tasks' outputs come
        self.toplevel = frozenset()   # ... the names of those tasks
        self.project = os.getcwd()
        self._shipped = set()
        self.config = load_config(options.get("config"))
        self.address = options.get("taskmanager") or (
            self.config.taskmanager.address if self.config.taskmanager.configured else None)
        if options.get("taskmanager"):
            check_address(self.address, "--taskmanager")
        embedded = options.get("embedded") or self.address is None
        # doit's -n N (tasks at once) sizes the embedded worker; a farm's own
        # workers have the slots their machines give them
        processes = options.get("processes") or 0
        self.slots = options.get("slots") or (processes if embedded and processes else None)
        if processes and not embedded:
            self.progress.note("-n %d is not used: the farm's workers decide how many tasks "
                               "run at once" % processes)
        elif processes and options.get("slots"):
            self.progress.note("-n %d is not used: --slots %d sizes the embedded worker"
                               % (processes, options["slots"]))
        if options.get("threads"):
            self.progress.note("-P thread is not used: tasks run in the workers' processes")
        self.kept = None           # warmfarm state: the kept local farm this run uses
        if embedded and _keep(options) > 0:
            self.kept = warmfarm.attach(self.config.path, self.slots, _keep(options))
            self.address = self.kept["address"]
        elif embedded:
            self.local = LocalFarm([], slots=self.slots, config=self.config.path, monitor=True)
            self.address = self.local.start_taskmanager()

    def open(self, tasks, exclude=()):
        """Start or reach the farm for ``tasks``; ``exclude``: more gitignore-style
        patterns of files staging leaves out (DOIT_CONFIG's ``farm_exclude``)."""
        needed = needed_capabilities(tasks)
        try:
            if self.kept is not None:
                self._kept(needed)
            elif self.local is not None:
                self._embedded(needed)
            else:
                self._configured(needed)
                if self.config.staging.mode == "auto":
                    self._stage(tasks, exclude)
            if self.remote is not None:
                if self.remote.note:
                    self.progress.note(self.remote.note)
                self.remote.attach(self.client, self.address)
        except BaseException:
            self.close()
            raise
        return self

    def _embedded(self, needed):
        for capability, names in sorted(needed.items()):
            try:
                LocalFarm.check_capability(capability)
            except FarmError:
                raise FarmError(_missing(capability, names, "no worker plugin provides it")) \
                    from None
        # Tasks are submitted while the farm is still starting: they wait in the
        # client until the TaskManager answers; check() notices a farm that died.
        self.local.start_workers(sorted(needed) or ["shell"], wait=False)
        self.progress.note("embedded farm at %s: %s, %d slot(s), a monitor" % (
            self.local.address, ", ".join(self.local.capabilities), self.local.slots))
        self.client = Client(self.address, connect_timeout=None, on_notice=self._notice,
                             curve=self.config.keys.peer_curve(), nice=self.nice)

    def _kept(self, needed):
        missing = sorted(set(needed) - set(self.kept["capabilities"]))
        if missing:             # a plugin the kept farm does not offer: a farm of its own
            self.kept = None
            self.local = LocalFarm([], slots=self.slots, config=self.config.path, monitor=True)
            self.address = self.local.start_taskmanager()
            self._embedded(needed)
            return
        self.progress.note("local farm at %s: %s, %d slot(s), kept %g s after the last run "
                           "(--keep-farm 0: a farm for each run)" % (
                               self.address, ", ".join(self.kept["capabilities"]),
                               self.kept["slots"], self.kept["idle"]))
        self.client = Client(self.address, connect_timeout=None, on_notice=self._notice,
                             curve=self.config.keys.peer_curve(), nice=self.nice)

    def _configured(self, needed):
        config, address = self.config, self.address
        if config.machines:
            offered = config.offered_capabilities()
            for capability, names in sorted(needed.items()):
                if capability not in offered:
                    raise FarmError(_missing(capability, names, "no machine in %s offers it"
                                             % config.path))
        try:
            self.client = Client(address, connect_timeout=defaults.CONNECT_TIMEOUT,
                                 on_notice=self._notice, curve=config.keys.peer_curve(),
                                 nice=self.nice)
        except FarmUnreachable:
            if not is_this_machine(address):
                raise FarmUnreachable("no TaskManager answers at %s (waited %gs)"
                                      % (address, defaults.CONNECT_TIMEOUT)) from None
        else:
            if not config.machines:          # the TaskManager knows who offers what
                self._check_offered(needed, time.monotonic())
            return
        if port_taken(address):
            raise FarmUnreachable(
                "something listens at %s, but no TaskManager there let this process in "
                "(waited %gs): it is another program, or a TaskManager that wants keys this "
                "process does not have (farm.yaml keys: server and secret)"
                % (address, defaults.CONNECT_TIMEOUT))
        self.local = LocalFarm([], workers=0, bind=address,     # remote workers connect here
                               config=self.config.path)
        self.local.start()
        self.progress.note("started a TaskManager at %s for this run" % address)
        self.client = Client(address, connect_timeout=defaults.CONNECT_TIMEOUT,
                             on_notice=self._notice, curve=config.keys.peer_curve(),
                             nice=self.nice)
        if not config.machines:              # its workers reconnect to it: give them time
            self._check_offered(needed, time.monotonic() + defaults.WORKERS_RETURN)

    def _stage(self, tasks, exclude):
        """The project's files for workers that do not see them (staging)."""
        started = time.monotonic()
        from ..client.staging import (
            ProjectFiles,  # pathspec: only a staging run needs it
        )
        self.files = ProjectFiles(self.client, self.project,
                                  list(self.config.staging.exclude) + list(exclude),
                                  leave_out=[t for task in tasks for t in task.targets])
        self.files.snapshot()
        sent = self.client.files.transfers.sent_bytes
        self.progress.note("staged %d file(s) of %s in %.1fs (%s sent)" % (
            len(self.files.manifest.files), os.path.basename(self.project) or "/",
            time.monotonic() - started, report.byte_size(sent)))

    def _check_offered(self, needed, until):
        """FarmError unless a worker of the TaskManager offers every ``needed``
        capability (by ``until``, a time.monotonic()): a task nobody can run would
        wait for ever."""
        while True:
            status = self.client.status()
            offered = {c for worker in status["workers"] for c in worker["capabilities"]}
            missing = sorted(set(needed) - offered)
            if not missing:
                return
            if time.monotonic() >= until:
                capability = missing[0]
                raise FarmError(_missing(capability, needed[capability],
                                         "no worker of the TaskManager at %s offers it"
                                         % self.address))
            time.sleep(0.2)

    def check(self):
        """FarmError if the embedded farm lost a process, or the kept one stopped."""
        if self.local is not None:
            self.local.check()
        elif self.kept is not None and warmfarm.read_state() is None:
            raise FarmError("the local farm at %s stopped (its log: %s)"
                            % (self.address, os.path.join(warmfarm.state_dir(), "*.log")))

    def _events(self, level, task, text, **fields):
        project = os.path.basename(self.project) or "project"
        if self.client is not None:
            self.client.log(logger_name("majordomo", project, task), level, text,
                            task=task or "", **fields)

    def _notice(self, level, code, text, ids):
        if self.timeline is not None:                # suspensions, for the report
            self.timeline.notice(code, ids)
        if self.local is not None and self.local.workers and code in WAITING:
            return     # the embedded workers are still starting: the tasks just wait
        if code in NAMED and self.client is not None and ids:
            names = self.client.labels(ids)
            text = "%s: %s%s" % (text, ", ".join(names[:10]), " ..." if len(names) > 10 else "")
        self.progress.note("TaskManager: %s" % text)

    def ship_by_value(self, fn):
        """Send the project's own modules with the callable (workers cannot import them)."""
        module = sys.modules.get(getattr(fn, "__module__", None) or "")
        path = getattr(module, "__file__", None)
        if module is None or module.__name__ in self._shipped or not path:
            return
        self._shipped.add(module.__name__)
        if os.path.abspath(path).startswith(self.project + os.sep):
            pickling.cloudpickle().register_pickle_by_value(module)

    def leaves_remote(self, task):
        """Whether ``task``'s outputs stay in the farm's store (``--download toplevel``)."""
        return self.download == "toplevel" and self.files is not None and \
            self.remote is not None and task not in self.toplevel

    def close(self):
        if self.remote is not None:
            self.remote.save()
        if self.timeline is not None and self.client is not None:
            self._write_timeline()
        if self.client is not None:
            self.client.close()
            twice = self.client.stats["duplicate_results"]
            if twice:          # taken once (the first); said, so a fault bench can count them
                sys.stderr.write("majordomo: the farm sent %d duplicate result(s); each "
                                 "was taken once\n" % twice)
            self.client = None
        if self.local is not None:
            self.local.stop()
            self.local = None
        for name in self._shipped:
            module = sys.modules.get(name)
            if module is not None:
                try:
                    pickling.cloudpickle().unregister_pickle_by_value(module)
                except ValueError:
                    pass

    def _write_timeline(self):
        trace, page = timeline.paths(self.report, self.project)
        try:
            self.timeline.write(trace)
            report.write(self.timeline, self.timeline.graph, "majordomo run in %s"
                         % os.path.basename(self.project), page)
            if self.keep_runs is not None:
                timeline.prune(self.project, self.keep_runs)
        except OSError as exc:            # the run's own result stands; say it once
            self.progress.note("the timeline or report could not be written (%s): %s"
                               % (exc.filename, exc.strerror))
        else:
            self.progress.note("report: %s; timeline: %s (open it in https://ui.perfetto.dev "
                               "or chrome://tracing)" % (page, trace))
        self.timeline = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _keep(options):
    """Seconds the embedded farm is kept after the run (0: a farm per run)."""
    keep = options.get("keep")
    if keep is None:
        try:
            keep = float(os.environ.get(defaults.KEEP_FARM_ENV, defaults.KEEP_FARM))
        except ValueError:
            raise FarmError("$%s=%r: expected seconds" % (
                defaults.KEEP_FARM_ENV, os.environ[defaults.KEEP_FARM_ENV])) from None
    if keep < 0:
        raise FarmError("--keep-farm %g: expected seconds >= 0" % keep)
    return keep


def _missing(capability, names, why):
    shown = ", ".join(sorted(set(names))[:10]) + (" ..." if len(set(names)) > 10 else "")
    return "capability %r is needed by task(s) %s, but %s; nothing was run" % (
        capability, shown, why)


def is_this_machine(address):
    """True when ``address`` (tcp://HOST:PORT) names this machine."""
    host, _ = addresses.split(address)
    if addresses.is_loopback(host) or host in addresses.WILDCARD or \
            host in (socket.gethostname(), socket.getfqdn()):
        return True
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    import psutil  # only for a TaskManager named by address
    mine = {addr.address.split("%")[0] for addrs in psutil.net_if_addrs().values()
            for addr in addrs}
    return bool(resolved & mine)


def port_taken(address):
    """True when a socket of this machine listens at ``address`` already (so a
    TaskManager could not bind it)."""
    host, port = addresses.split(address)
    probe = socket.socket(socket.AF_INET6 if addresses.is_ipv6(address) else socket.AF_INET)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as ZeroMQ binds
    try:
        probe.bind(("" if host in addresses.WILDCARD else host, port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    finally:
        probe.close()
    return False


class MajordomoRun(FarmRun):
    session_factory = FarmSession


class Timeline(Command):
    """``majordomo timeline``: where the last run's timeline of this project is.
    Not "report": doit forbids tasks named like a command, and many projects (our
    examples/pipeline too) have a task called report."""

    name = "timeline"
    doc_purpose = "print the paths of the last run's timeline and HTML report"
    doc_usage = ""
    doc_description = ("Each majordomo run writes its timeline (Chrome trace JSON: open "
                       "it in https://ui.perfetto.dev or chrome://tracing) and a "
                       "self-contained HTML report; this prints the newest of each of the "
                       "project in this directory, the timeline first.")

    def execute(self, params, args):
        path = timeline.last_path(os.getcwd())
        if path is None:
            raise InvalidCommand("no timeline of a majordomo run in %s yet (they are kept "
                                 "in %s)" % (os.getcwd(), timeline.runs_folder(os.getcwd())))
        page = timeline.last_report(os.getcwd())
        try:
            print(path)
            if page is not None:
                print(page)
            sys.stdout.flush()
        except BrokenPipeError:              # majordomo timeline | head -1
            from ..commands.common import output_closed
            return output_closed()
        return 0


class SeesFarmFiles:
    """A doit command whose file checker sees the outputs a run left on the farm
    (``remotefiles``), so ``list --status``, ``info`` or ``reset-dep`` judge as
    ``run`` does."""

    def execute(self, params, args):
        self.params = params
        return super().execute(params, args)

    def get_checker_cls(self, check_file_uptodate):
        self.remote = RemoteOutputs(self.params["dep_file"], os.getcwd())
        return checker(super().get_checker_cls(check_file_uptodate), self.remote)


class FarmClean(SeesFarmFiles, Clean):
    """doit's ``clean``; the cleaned tasks' outputs left on the farm are forgotten
    too, so their tasks run again as doit's would."""

    def clean_tasks(self, tasks, dryrun, cleanforget):
        super().clean_tasks(tasks, dryrun, cleanforget)
        if not dryrun:
            self.remote.forget_tasks({task.name for task in tasks})
            self.remote.save()


class Majordomo(DoitMain):
    BIN_NAME = "majordomo"

    @staticmethod
    def print_version():
        """majordomo's version, then the doit it runs (``majordomo --version``)."""
        from .. import __version__
        print("majordomo (ComputeFarm) %s" % __version__)
        DoitMain.print_version()

    def get_cmds(self):
        commands = super().get_cmds()
        for cls in self.DOIT_CMDS:       # the farm's outputs are files for each of them
            if issubclass(cls, DoitCmdBase):
                commands[cls.get_name()] = type(cls.__name__, (SeesFarmFiles, cls), {})
        commands["timeline"] = Timeline
        commands["clean"] = FarmClean
        commands["run"] = MajordomoRun   # last, so no plugin replaces it
        return commands


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``timeout``, a cancelled CI job, a closed terminal): the
    same way out as Ctrl-C, so the remote tasks and the embedded farm are stopped."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum, _frame):
    for sig in STOP_SIGNALS:        # one stop at a time: let it finish its cleanup
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def main(argv=None):
    previous = {sig: signal.signal(sig, _stop) for sig in STOP_SIGNALS}
    try:
        return Majordomo().run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        sys.stderr.write("majordomo: %s; finished tasks are recorded, a new run does the "
                         "rest\n" % ("stopped by %s" % exc if signum != signal.SIGINT
                                      else "interrupted"))
        return 128 + signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
