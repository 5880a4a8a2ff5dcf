"""farm-run: hand the farm a batch of command lines, and come back for the results.

``farm-run [options] -f FILE`` (one command per line) or ``farm-run [options]
COMMAND...`` submits a batch to the TaskManager, which keeps it on disk: the
batch id is printed and farm-run returns (or waits, with ``--wait``).
``farm-run list | status ID | wait ID | cancel ID | results ID | output ID``
look at it later, from any machine with the same key.
"""

import argparse
import json
import shlex
import sys

from ..client import Client
from ..client.batches import DONE_STATES, check_commands
from ..exceptions import UsageError
from .common import add_common_options, run_command, setup

ACTIONS = ("list", "status", "wait", "cancel", "results", "output", "forget")


def read_commands(path, stream=None):
    """The commands of a command file: one a line, ``#`` comments and blank lines
    skipped, a line ending in a backslash continued on the next. UsageError
    names the file and line of a line that cannot run."""
    try:
        data = stream.read() if stream is not None else open(path, "rb").read()
    except OSError as exc:
        raise UsageError("%s: cannot read it: %s" % (path, exc.strerror)) from None
    if isinstance(data, str):
        data = data.encode()
    commands, lines, pending, start = [], [], "", None
    for number, raw in enumerate(data[:-1].split(b"\n") if data.endswith(b"\n")
                                 else data.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise UsageError("%s:%d: not UTF-8 text (byte %d)" % (path, number,
                                                                  exc.start + 1)) from None
        if not pending and (not text.strip() or text.lstrip().startswith("#")):
            continue
        if start is None:
            start = number
        if text.endswith("\\"):
            pending += text[:-1]
            continue
        commands.append(pending + text)
        lines.append(start)
        pending, start = "", None
    if pending:
        raise UsageError("%s:%d: the last line ends with a backslash" % (path, start))
    if not commands:
        raise UsageError("%s: no commands in it" % path)
    check_commands(commands, lambda index: "%s:%d" % (path, lines[index]))
    return commands


def batch_request(args):
    """``(commands, settings)`` of the batch the command line asks for: checked
    before anything is sent."""
    if args.file:
        if args.command:
            raise UsageError("give commands in a file (-f) or on the command line, not both")
        commands = read_commands(args.file, sys.stdin if args.file == "-" else None)
    elif args.command:
        if args.command[0] in ACTIONS and not args.dashed:
            raise UsageError("%r is farm-run's own: write `farm-run %s ...` first, or "
                             "`farm-run -- %s ...` for a command of that name"
                             % (args.command[0], args.command[0], args.command[0]))
        words = args.command
        commands = [words[0] if len(words) == 1 else shlex.join(words)]
        check_commands(commands, "the command")
    else:
        raise UsageError("nothing to run: give -f FILE or a command")
    requires, env = _pairs(args.require, "--require"), _pairs(args.env, "--env")
    return commands, dict(replicas=args.n, capability=args.capability, requires=requires,
                          priority=args.priority, weight=args.weight,
                          task_timeout=args.timeout, max_attempts=args.max_attempts,
                          speculate=args.speculate, label=args.label, cwd=args.cwd, env=env)


def _pairs(items, option):
    """``{NAME: VALUE}`` of an option's ``NAME=VALUE`` arguments."""
    pairs = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError("%s %r: write NAME=VALUE" % (option, item))
        pairs[key] = value
    return pairs


def submit(client, args, request, out):
    batch = client.submit_batch(request[0], **request[1])
    out.write("%s\n" % batch.id)
    out.flush()
    if args.wait:
        return wait(client, batch.id, out)
    return 0


def wait(client, batch_id, out):
    batch = client.batch(batch_id)
    terminal = sys.stderr.isatty()

    def progress(status):
        if terminal:
            sys.stderr.write("\r\x1b[K%s: %d/%d done, %d running, %d failed"
                             % (batch_id, status["finished"], status["tasks"],
                                status["running"], status["failed"]))
            sys.stderr.flush()
    status = batch.wait(on_progress=progress)
    if terminal:
        sys.stderr.write("\r\x1b[K")
    show_status(status, out)
    return 0 if status["state"] == "finished" and status["failed"] == 0 else 1


def show_status(status, out):
    out.write("batch %s%s of %s: %s\n" % (status["id"], " (%s)" % status["label"]
                                          if status["label"] else "", status["user"],
                                          status["state"]))
    out.write("  %d task(s) (%d command(s) x %d): %d ok, %d failed, %d cancelled, "
              "%d running, %d queued\n" % (status["tasks"], status["commands"],
                                           status["replicas"], status["ok"], status["failed"],
                                           status["cancelled"], status["running"],
                                           status["queued"]))
    for task in status.get("running_tasks") or ():
        out.write("  running %d.%d on %s for %.0f s (attempt %d)\n"
                  % (task["task"], task["replica"], task["host"], task["age"],
                     task["attempt"]))
    if status.get("copies"):
        out.write("  %d straggler(s) copied onto another machine, %d copy(ies) finished "
                  "first\n" % (status["copies"], status["copies_won"]))
    if status.get("notice") and status["state"] == "active":
        out.write("  note: %s\n" % status["notice"])


def show_list(batches, out):
    out.write("%-12s %-9s %8s %8s %7s %8s %8s %8s  %s\n" % (
        "BATCH", "STATE", "TASKS", "OK", "FAILED", "RUNNING", "QUEUED", "AGE", "LABEL"))
    for b in batches:
        out.write("%-12s %-9s %8d %8d %7d %8d %8d %7.0fs  %s\n" % (
            b["id"], b["state"], b["tasks"], b["ok"], b["failed"], b["running"], b["queued"],
            b["age"], b["label"]))


def show_results(batch, as_json, out):
    if not as_json:
        out.write("%-10s %-9s %5s %-20s %9s %7s  %s\n" % (
            "TASK", "STATUS", "EXIT", "HOST", "DURATION", "ATTEMPT", "ERROR"))
    for item in batch.results():
        if as_json:
            out.write(json.dumps(item, sort_keys=True) + "\n")
            continue
        error = (item.get("error") or "").strip().splitlines()
        out.write("%-10s %-9s %5s %-20s %8.2fs %7s  %s\n" % (
            "%d.%d" % (item["task"], item["replica"]), item["status"],
            "" if item["exit_code"] is None else item["exit_code"], item["host"] or "",
            item["duration"] or 0.0, item["attempt"] or "", error[-1] if error else ""))
    if not as_json:
        status = batch.status()
        left = status["tasks"] - status["finished"]
        if left:
            out.write("(%d task(s) without a result: %d running, %d queued, %d cancelled "
                      "before they ran)\n" % (left, status["running"], status["queued"],
                                               left - status["running"] - status["queued"]))
    return 0


def act(client, args, out):
    if args.action == "list":
        show_list(client.batches(), out)
        return 0
    if not args.id:
        raise UsageError("farm-run %s needs a batch id (farm-run list shows them)"
                         % args.action)
    batch = client.batch(args.id)
    if args.action == "status":
        show_status(batch.status(), out)
    elif args.action == "wait":
        return wait(client, args.id, out)
    elif args.action == "cancel":
        status = batch.cancel()
        out.write("batch %s: %s\n" % (args.id, status["state"]))
    elif args.action == "forget":
        batch.forget()
        out.write("batch %s: forgotten\n" % args.id)
    elif args.action == "results":
        return show_results(batch, args.json, out)
    elif args.action == "output":
        path = args.output or "%s.out" % args.id
        if path == "-":
            batch.write_output(out)
        else:
            with open(path, "w") as stream:
                count = batch.write_output(stream)
            status = batch.status()
            out.write("%s: %d line(s) of %d finished task(s)%s\n" % (
                path, count, status["finished"], "" if status["state"] in DONE_STATES
                else " (the batch is still %s)" % status["state"]))
    return 0


def build_parser(action):
    if action is not None:
        parser = argparse.ArgumentParser(prog="farm-run " + action,
                                         description="Look at or act on batches.")
        add_common_options(parser)
        parser.add_argument("action", choices=ACTIONS)
        parser.add_argument("id", nargs="?", help="the batch id (farm-run list)")
        parser.add_argument("--json", action="store_true", help="results: one JSON line each")
        parser.add_argument("-o", "--output", metavar="FILE",
                            help="output: the file to write (default: ID.out; - for stdout)")
        return parser
    parser = argparse.ArgumentParser(
        prog="farm-run", description="Run a batch of command lines on the farm: the "
        "TaskManager keeps it, so this returns at once (the batch id). Then: farm-run "
        "list | status ID | wait ID | cancel ID | results ID | output ID | forget ID.",
        epilog="Placeholders in commands: {replica}, {task}, {index}, {batch}, {attempt}, "
               "{token} (unique for each try); {{ and }} for braces.")
    add_common_options(parser)
    parser.add_argument("-f", "--file", metavar="FILE",
                        help="commands, one a line (# comments; - for stdin)")
    parser.add_argument("-n", type=int, default=1, metavar="N",
                        help="run each command N times ({replica} is 0..N-1)")
    parser.add_argument("--capability", default="shell", help="the workers' (default shell)")
    parser.add_argument("--require", action="append", metavar="NAME=VALUE",
                        help="a constraint on the workers' attributes (repeat)")
    parser.add_argument("--priority", type=int, default=0,
                        help="among your batches and runs: higher first")
    parser.add_argument("--weight", type=float, default=1.0,
                        help="share among your batches of equal priority")
    parser.add_argument("--timeout", type=float, metavar="S", help="each task's time limit")
    parser.add_argument("--max-attempts", type=int, metavar="N",
                        help="tries of a task whose worker is lost")
    parser.add_argument("--speculate", action="store_true",
                        help="a task may run twice at once: stragglers get a second copy")
    parser.add_argument("--label", help="a name for people")
    parser.add_argument("--cwd", help="the folder tasks run in, on the workers")
    parser.add_argument("--env", action="append", metavar="NAME=VALUE",
                        help="a variable for the tasks (repeat)")
    parser.add_argument("--wait", action="store_true",
                        help="wait for it to finish (exit 1 if a task failed)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="one shell line, or a command and its arguments")
    return parser


def main(argv=None, out=None):
    def build(argv):
        argv = list(sys.argv[1:] if argv is None else argv)
        action = argv[0] if argv and argv[0] in ACTIONS else None
        parser = build_parser(action)
        args = parser.parse_intermixed_args(argv) if action else parser.parse_args(argv)
        args.dashed = action is None and args.command[:1] == ["--"]
        if args.dashed:
            args.command = args.command[1:]
        if action is None and args.n < 1:
            raise UsageError("-n must be at least 1")
        request = batch_request(args) if action is None else None
        args.log_level = args.log_level or "WARNING"
        config = setup(args, "run")
        stream = out or sys.stdout
        with Client(config.taskmanager.address, connect_timeout=10.0,
                    curve=config.keys.peer_curve()) as client:
            if action is None:
                return submit(client, args, request, stream)
            return act(client, args, stream)
    return run_command("farm-run", build, argv)
