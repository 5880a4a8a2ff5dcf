"""Outputs left in the farm's store: building without the bytes.

With ``--download toplevel`` (DOIT_CONFIG ``farm_download``), a staged task
that the run was not asked for (only needed by those it was) leaves its
outputs in the TaskManager's store: the tasks that use them get them from
there, or from their worker's cache when the same machine made them, and the
user's machine never receives them. The tasks the run was asked for always
bring theirs back, including outputs an earlier run left on the farm; a task
whose action needs the project's own files (a python action, a farm without
staging) gets them written into the project before it runs.

What is left there is recorded beside doit's database
(``<dep_file>.farm-outputs``, JSON: each path relative to the project with
its digest, size, executable bit and task), for the TaskManager that holds
them. doit sees those files through ``checker``: they exist, and their state
is their digest, so an unchanged output keeps its users up to date. A record
for another TaskManager, or whose blob the store no longer has, is dropped
when the run starts: doit then finds the output missing and its task runs
again (never a failed build). While the run is connected, the store holds
every output so recorded (``Client.missing(hold=True)``): another user's
uploads make it evict other blobs first, so a task later in the run still finds
its input there.
"""

import json
import os
from concurrent.futures import TimeoutError as FutureTimeout

from ..exceptions import FarmError, FarmUnreachable, StorageError, UsageError
from ..storage.cas import digest_file, is_digest, remove_file

SUFFIX = ".farm-outputs"
LAND_WAIT = 3600.0         # s: files written into the project may take this long
ASK_WAIT = 60.0            # s: the store's answer on which outputs it still has
STATE = "farm"             # first item of a remote file's state in doit's database
MODES = ("all", "toplevel")


class RemoteOutputs:
    """The project's outputs that are only in the farm's store (one record per path)."""

    def __init__(self, dep_file, root):
        self.path = os.path.abspath(dep_file) + SUFFIX
        self.root = os.path.abspath(root)
        self.taskmanager = None
        self.client = None         # the run's, once attached: it holds the recorded blobs
        self.entries = {}          # path relative to root -> {digest, size, exec, task}
        self.changed = False
        self.note = None           # why a damaged record was set aside, for the user
        try:
            with open(self.path) as stream:
                data = json.load(stream)
            from ..storage.trees import safe_path  # pathspec: not for every run's start
            self.taskmanager = data["taskmanager"]
            self.entries = {safe_path(path, "a recorded output"): _entry(e, path)
                            for path, e in data["files"].items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError,
                StorageError) as exc:
            self.entries, self.changed = {}, True
            self.note = ("%s is damaged (%s): the outputs it listed are built again"
                         % (self.path, exc))

    def relative(self, path):
        full = os.path.abspath(path)
        return os.path.relpath(full, self.root).replace(os.sep, "/") \
            if full.startswith(self.root + os.sep) else None

    def get(self, path):
        """The record of ``path`` if it is only on the farm (a file there now wins)."""
        relative = self.relative(path)
        entry = self.entries.get(relative) if relative is not None else None
        if entry is not None and os.path.lexists(os.path.join(self.root, relative)):
            self.forget([relative])
            return None
        return entry

    def attach(self, client, taskmanager, timeout=ASK_WAIT):
        """The run uses ``client`` of the TaskManager at ``taskmanager``: records of
        another TaskManager's, or whose blob its store no longer has, go; the
        store holds the others while the run lasts."""
        self.client = client
        if self.taskmanager != taskmanager:
            self.forget(list(self.entries))
            self.taskmanager = taskmanager
            self.changed = True
            return
        if not self.entries:
            return
        try:
            gone = client.missing({e["digest"] for e in self.entries.values()},
                                  hold=True).result(timeout)
        except FutureTimeout:
            raise FarmUnreachable("asking the TaskManager which outputs it still has: no "
                                  "answer within %gs" % timeout) from None
        self.forget([path for path, entry in self.entries.items() if entry["digest"] in gone])

    def land(self, client, paths, timeout=LAND_WAIT):
        """Write into the project those of ``paths`` that are only on the farm (the
        tasks the run was asked for, a task that reads the project itself)."""
        fetching = []
        for path in paths:
            entry = self.get(path)
            if entry is not None:
                relative = self.relative(path)
                fetching.append((relative, client.download(
                    entry["digest"], entry["size"], os.path.join(self.root, relative),
                    0o755 if entry["exec"] else 0o644)))
        for relative, future in fetching:
            try:
                future.result(timeout)
            except FutureTimeout:
                raise FarmUnreachable("fetching %s from the farm: not done within %gs"
                                      % (relative, timeout)) from None
            except StorageError as exc:
                raise StorageError("fetching %s from the farm: %s" % (relative, exc)) \
                    from None
            self.forget([relative])

    def record(self, task, outputs):
        """``task``'s ``outputs`` (RESULT file entries) stay on the farm: a stale
        file of the same name here goes, so nothing reads an old build."""
        from ..storage.trees import safe_path
        paths = [safe_path(entry["path"], "the task's outputs") for entry in outputs]
        for path, entry in zip(paths, outputs):      # all checked before any is touched
            remove_file(os.path.join(self.root, path))
            self.entries[path] = {"digest": entry["digest"], "size": entry["size"],
                                  "exec": bool(entry.get("exec")), "task": task}
        self.changed = True
        if self.client is not None:      # the answer is not needed: the task just made them
            self.client.missing([entry["digest"] for entry in outputs], hold=True)

    def lost(self, paths, timeout=ASK_WAIT):
        """Of ``paths`` (a task's inputs), those only on the farm whose blob the
        store no longer has (it evicted blobs the run held, being too small for
        them): ``[(relative path, task)]``, their records forgotten, so the next
        run makes them again."""
        entries = {}
        for path in paths:
            entry = self.get(path)
            if entry is not None:
                entries[self.relative(path)] = entry
        if not entries or self.client is None:
            return []
        try:
            gone = self.client.missing({e["digest"] for e in entries.values()}).result(timeout)
        except (FutureTimeout, FarmError):
            return []                # the task's own error says what went wrong
        lost = [(path, e["task"]) for path, e in sorted(entries.items()) if e["digest"] in gone]
        self.forget([path for path, _ in lost])
        return lost

    def forget(self, paths):
        for path in paths:
            if self.entries.pop(path, None) is not None:
                self.changed = True

    def forget_tasks(self, names):
        """``majordomo clean``: the cleaned tasks' outputs are gone from here too."""
        self.forget([path for path, e in self.entries.items() if e["task"] in names])

    def save(self):
        if not self.changed:
            return
        if not self.entries:
            remove_file(self.path)
        else:
            partial = self.path + ".partial"
            with open(partial, "w") as stream:
                json.dump({"taskmanager": self.taskmanager, "files": self.entries}, stream)
            os.replace(partial, self.path)
        self.changed = False


def _entry(record, path):
    """A record read back, checked (ValueError names what is wrong)."""
    entry = {"digest": record["digest"], "size": record["size"],
             "exec": bool(record.get("exec")), "task": record["task"]}
    if not is_digest(entry["digest"]) or not isinstance(entry["size"], int) or \
            entry["size"] < 0 or not isinstance(entry["task"], str):
        raise ValueError("the entry of %r is not a digest, a size and a task" % path)
    return entry


def download_mode(text, where):
    if text is None:
        return "all"
    if text not in MODES:
        raise UsageError("%s must be one of %s, not %r" % (where, ", ".join(MODES), text))
    return text


def _state(entry):
    return [STATE, entry["size"], entry["digest"]]


def _remote_state(state):
    return isinstance(state, (list, tuple)) and len(state) == 3 and state[0] == STATE


class RemoteStat:
    """What doit's checker is told of a file that is only on the farm."""

    def __init__(self, entry):
        self.entry = entry
        self.st_size = entry["size"]
        self.st_mtime = None


def checker(inner, outputs):
    """doit's checker class ``inner``, seeing ``outputs`` (RemoteOutputs) as files.
    Named as ``inner``: doit runs every task again when the checker's name changes."""

    class Checker(inner):
        def exists(self, path):
            return outputs.get(path) is not None or super().exists(path)

        def info(self, path):
            entry = outputs.get(path)
            return RemoteStat(entry) if entry is not None else super().info(path)

        def check_modified(self, path, stat, state):
            if isinstance(stat, RemoteStat):
                return not _remote_state(state) or list(state) != _state(stat.entry)
            if _remote_state(state):          # written here since: its content decides
                return digest_file(path)[0] != state[2]
            return super().check_modified(path, stat, state)

        def get_state(self, dep, current_state):
            entry = outputs.get(dep)
            if entry is not None:
                return _state(entry)
            if _remote_state(current_state):
                current_state = None
            return super().get_state(dep, current_state)

    Checker.__name__ = Checker.__qualname__ = inner.__name__
    return Checker
