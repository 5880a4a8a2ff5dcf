"""The placeholders of a batch's command lines (farm-run), checked and filled.

``{replica}`` (0 .. replicas-1), ``{task}`` (the command's number in the
batch, from 0), ``{index}`` (the task's: task * replicas + replica),
``{batch}`` (the batch id), ``{attempt}`` (1 for the first try of this task,
counted by the TaskManager since it last started) and ``{token}`` (unique for
each try, also across TaskManager restarts and speculative copies, so two tries
never write the same file names). ``{{`` and ``}}`` are literal braces. The
client checks every line before anything is queued; the TaskManager checks
again what it receives, and fills them in as it dispatches each try.
"""

import string

NAMES = ("replica", "task", "index", "batch", "attempt", "token")

_FORMATTER = string.Formatter()
_SAMPLE = {"replica": 0, "task": 0, "index": 0, "batch": "b", "attempt": 1, "token": "t"}


def problem(text):
    """Why command line ``text`` cannot be filled in, or None."""
    try:
        fields = [field for _, field, spec, conversion in _FORMATTER.parse(text)
                  if field is not None]
    except ValueError as exc:
        return "%s (write {{ and }} for literal braces)" % exc
    for field in fields:
        if field not in NAMES:
            return "unknown placeholder {%s} (known: %s)" % (
                field, ", ".join("{%s}" % name for name in NAMES))
    try:                                   # a format spec that cannot apply: {replica:x}
        fill(text, _SAMPLE)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        return "a placeholder cannot be filled in: %s" % exc
    return None


def fill(text, values):
    """``text`` with its placeholders replaced by ``values`` (name -> value)."""
    return text.format_map(values)
