"""``majordomo run``: doit's ``run`` command with the farm behind it.

``FarmRun`` takes doit's ``run`` options and majordomo's own (``FARM_OPTIONS``),
opens the farm (``command.FarmSession``) for the tasks the run may execute and
hands them to ``runner.FarmRunner``. Its ``_execute`` is copied from doit 0.37's
``Run._execute`` (doit is pinned for it); only the runner and the farm's part
differ. Its file checker also sees the outputs a run left on the farm
(``remotefiles``).
"""

import codecs

from doit.cmd_run import Run
from doit.control import TaskControl
from doit.exceptions import InvalidCommand
from doit.task import Stream

from ..exceptions import FarmError, UsageError
from .remotefiles import RemoteOutputs, checker, download_mode
from .runner import FarmRunner


def reachable(control, selected):
    """The tasks a run of ``selected`` may execute: them and what they depend on."""
    seen, todo = set(), list(selected)
    while todo:
        name = todo.pop()
        if name in seen or name not in control.tasks:
            continue
        seen.add(name)
        task = control.tasks[name]
        todo.extend(task.task_dep)
        todo.extend(task.setup_tasks)
        todo.extend(task.calc_dep)
    return [control.tasks[n] for n in sorted(seen)]


FARM_OPTIONS = (
    {"name": "farm_taskmanager", "long": "taskmanager", "type": str, "default": None,
     "help": "the TaskManager's address tcp://HOST:PORT (default: farm.yaml's)"},
    {"name": "farm_config", "long": "farm-config", "type": str, "default": None,
     "help": "farm.yaml to use (default: ./farm.yaml, $COMPUTEFARM_CONFIG, "
             "~/.config/computefarm/farm.yaml)"},
    {"name": "embedded", "long": "embedded", "type": bool, "default": False,
     "help": "run on an embedded local farm even if farm.yaml names a TaskManager"},
    {"name": "farm_report", "long": "report", "type": str, "default": None,
     "help": "write this run's timeline (Chrome trace JSON) to this file [default: "
             "the user's cache; `majordomo timeline` prints its path]"},
    {"name": "farm_slots", "long": "slots", "type": int, "default": None,
     "help": "slots of each embedded worker [default: -n, else the CPU count]"},
    {"name": "farm_keep", "long": "keep-farm", "type": float, "default": None,
     "help": "keep the embedded farm this many seconds after the run, for the next "
             "[default: $COMPUTEFARM_KEEP_FARM, else 300; 0: a farm for each run]"},
    {"name": "farm_nice", "long": "nice", "type": bool, "default": False,
     "help": "this run takes only the farm's slots no other run wants"},
    {"name": "farm_download", "long": "download", "type": str, "default": None,
     "help": "all: every staged task's outputs come back here; toplevel: only those "
             "of the tasks asked for (the others stay in the farm's store for the tasks "
             "that need them) [default: all]"},
)


def asked_for(control):
    """The names of the tasks the run was asked for (its top level): those
    selected, and the subtasks of a selected group."""
    names = set()
    for name in control.selected_tasks:
        task = control.tasks[name]
        names.add(name)
        if task.has_subtask:
            names.update(task.task_dep)
    return frozenset(names)


def dodo_exclude(patterns):
    """DOIT_CONFIG's ``farm_exclude``: gitignore-style patterns of project files
    staging leaves out, beside farm.yaml's ``staging.exclude``."""
    if patterns is None:
        return []
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str)
                                                         for p in patterns):
        raise InvalidCommand("dodo.py: DOIT_CONFIG['farm_exclude'] must be a list of "
                             "gitignore-style patterns (strings), not %r" % (patterns,))
    return list(patterns)


class FarmRun(Run):
    """doit's ``run`` command, executing on the farm (``majordomo run``)."""

    name = "run"
    cmd_options = Run.cmd_options + FARM_OPTIONS
    session_factory = None    # set by majordomo: FarmSession(options), then .open(tasks)

    def get_checker_cls(self, check_file_uptodate):
        """doit's checker, also seeing the outputs left on the farm as files."""
        self.session.remote = RemoteOutputs(self.params["dep_file"], self.session.project)
        return checker(super().get_checker_cls(check_file_uptodate), self.session.remote)

    def execute(self, params, args):
        options = {"taskmanager": params.get("farm_taskmanager"),
                   "config": params.get("farm_config"), "embedded": params.get("embedded"),
                   "slots": params.get("farm_slots"), "report": params.get("farm_report"),
                   "nice": params.get("farm_nice"), "keep": params.get("farm_keep"),
                   "processes": params.get("num_process") or 0,
                   "threads": params.get("par_type") == "thread"}
        try:
            if options["slots"] is not None and options["slots"] < 1:
                raise UsageError("--slots must be at least 1 (without it: -n, else the "
                                 "CPU count)")
            self.session = self.session_factory(options)
        except FarmError as exc:
            raise InvalidCommand(str(exc)) from None
        self.params = params        # DOIT_CONFIG's keys join them in super().execute
        try:
            return super().execute(params, args)
        finally:
            self.session.close()

    def _execute(self, outfile, verbosity=None, always=False, continue_=False,
                 reporter="console", num_process=0, par_type="process", single=False,
                 auto_delayed_regex=False, force_verbosity=False, failure_verbosity=0,
                 pdb=False):
        # Copied from doit 0.37 Run._execute; only the runner differs.
        self.control = TaskControl(self.task_list, auto_delayed_regex=auto_delayed_regex)
        self.control.process(self.sel_tasks)
        if single:
            for task_name in self.control.selected_tasks:
                task = self.control.tasks[task_name]
                if task.has_subtask:
                    for sub_name in task.task_dep:
                        self.control.tasks[sub_name].task_dep = []
                else:
                    task.task_dep = []
        reporter_cls = self.reporters[reporter] if isinstance(reporter, str) else reporter
        outstream = codecs.open(outfile, "w", encoding="utf-8") \
            if isinstance(outfile, str) else outfile
        self.outstream = outstream
        tasks = reachable(self.control, self.control.selected_tasks)
        progress = self.session.progress
        progress.expect(sum(1 for task in tasks if task.actions))
        try:
            # what doit's reporter writes clears the progress line first
            reporter_obj = reporter_cls(progress.writer(outstream),
                                        {"failure_verbosity": failure_verbosity}) \
                if isinstance(reporter_cls, type) else reporter_cls
            stream = Stream(verbosity, force_verbosity)
            try:
                self.session.download = download_mode(
                    self.params.get("farm_download"),
                    "--download (or DOIT_CONFIG['farm_download'])")
                self.session.toplevel = asked_for(self.control)
                session = self.session.open(tasks, exclude=dodo_exclude(
                    self.params.get("farm_exclude")))
                if session.remote is not None:   # what was asked for lands here,
                    session.remote.land(session.client, [   # wherever a run left it
                        target for name in session.toplevel
                        for target in self.control.tasks[name].targets])
            except FarmError as exc:
                raise InvalidCommand(str(exc)) from None
            with session:
                runner = FarmRunner(self.dep_manager, reporter_obj, continue_, always, stream,
                                    session)
                try:
                    return runner.run_all(self.control.task_dispatcher())
                except FarmError as exc:      # the farm failed under us: one ERROR line
                    raise InvalidCommand(str(exc)) from None
                finally:
                    session.progress.close()
                    if session.timeline is not None:   # the report's critical path
                        session.timeline.graph = {
                            name: list(task.task_dep) + list(task.setup_tasks)
                            for name, task in self.control.tasks.items()}
        finally:
            if isinstance(outfile, str):
                outstream.close()
