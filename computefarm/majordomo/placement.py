"""Where a task's actions run, from doit's ``meta`` of the task: its capability,
constraints, priority, limits and staging options, each checked (a bad value is
one ``InvalidTask`` naming the task and the key)."""

import difflib

from doit.action import PythonAction
from doit.exceptions import InvalidTask

META_KEYS = ("capability", "requires", "priority", "timeout", "max_attempts", "estimated_load",
             "cache", "inputs", "speculate")
DEFAULT_COMMAND_CAPABILITY = "shell"
PYTHON_CAPABILITY = "python"


class Placement:
    """Where a task's actions run, from its ``meta``."""

    __slots__ = ("capability", "requires", "priority", "timeout", "max_attempts",
                 "estimated_load", "cache", "inputs", "speculate")

    def __init__(self, task):
        meta = task.meta or {}
        for key in meta:          # other keys are other tools' business; near misses are typos
            if key not in META_KEYS and difflib.get_close_matches(key, META_KEYS, 1, 0.8):
                _bad(task, "unknown meta key %r (did you mean %r?)"
                     % (key, difflib.get_close_matches(key, META_KEYS, 1, 0.8)[0]))
        self.capability = meta.get("capability", DEFAULT_COMMAND_CAPABILITY)
        if not isinstance(self.capability, str) or not self.capability:
            _bad(task, "meta.capability must be a non-empty string, got %r" % (self.capability,))
        requires = meta.get("requires") or {}
        if not isinstance(requires, dict) or not all(
                isinstance(v, (str, int, float)) and not isinstance(v, bool)
                for v in requires.values()):
            _bad(task, "meta.requires must map attribute names to values, got %r" % (requires,))
        self.requires = {str(k): str(v) for k, v in requires.items()}
        self.priority = meta.get("priority", 0)
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            _bad(task, "meta.priority must be a whole number, got %r" % (self.priority,))
        self.timeout = meta.get("timeout")
        if self.timeout is not None and (isinstance(self.timeout, bool) or not isinstance(
                self.timeout, (int, float)) or self.timeout <= 0):
            _bad(task, "meta.timeout must be a number of seconds > 0, got %r" % (self.timeout,))
        self.estimated_load = meta.get("estimated_load")
        if self.estimated_load is not None and (isinstance(self.estimated_load, bool) or
                                                not isinstance(self.estimated_load, (int, float))
                                                or self.estimated_load <= 0):
            _bad(task, "meta.estimated_load must be a number of cores > 0, got %r"
                 % (self.estimated_load,))
        self.inputs = meta.get("inputs")    # staged: the tree narrowed to these patterns
        if self.inputs is not None and (not isinstance(self.inputs, list) or not all(
                isinstance(p, str) and p for p in self.inputs)):
            _bad(task, "meta.inputs must be a list of paths or gitignore-style patterns "
                 "(relative to the project), got %r" % (self.inputs,))
        self.cache = meta.get("cache", True)
        if not isinstance(self.cache, bool):
            _bad(task, "meta.cache must be true or false, got %r" % (self.cache,))
        self.speculate = meta.get("speculate", False)    # it may run twice at once
        if not isinstance(self.speculate, bool):
            _bad(task, "meta.speculate must be true or false, got %r" % (self.speculate,))
        self.max_attempts = meta.get("max_attempts")
        if self.max_attempts is not None and (isinstance(self.max_attempts, bool) or
                                              not isinstance(self.max_attempts, int) or
                                              self.max_attempts < 1):
            _bad(task, "meta.max_attempts must be a whole number >= 1, got %r"
                 % (self.max_attempts,))

    def capability_of(self, action):
        return PYTHON_CAPABILITY if isinstance(action, PythonAction) else self.capability


def _bad(task, text):
    raise InvalidTask("task '%s': %s" % (task.name, text))


def needed_capabilities(tasks):
    """``{capability: [task names]}`` for the tasks given (validates every meta)."""
    needed = {}
    for task in tasks:
        placement = Placement(task)
        for action in task.actions:
            needed.setdefault(placement.capability_of(action), []).append(task.name)
    return needed
