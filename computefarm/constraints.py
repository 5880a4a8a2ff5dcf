"""Matching a request's ``requires`` against a worker capability's attributes.

A constraint value is either a plain string, compared for equality, or a
comparison: ``">=12"``, ``"<3.12"``, ``"!=arm"``, ``"==1.2"``. Comparisons of
dotted version strings compare them number by number (``"12.10" > "12.9"``);
anything else compares as text. A missing attribute never matches.
"""

import re

_OPERATORS = (">=", "<=", "==", "!=", ">", "<")
_VERSION = re.compile(r"^\d+(\.\d+)*")


def matches(attributes, requires):
    """True when every constraint in ``requires`` holds for ``attributes``."""
    if not requires:
        return True
    for key, wanted in requires.items():
        have = attributes.get(key)
        if have is None or not _holds(str(have), str(wanted)):
            return False
    return True


def _holds(have, wanted):
    for op in _OPERATORS:
        if wanted.startswith(op):
            return _compare(have, op, wanted[len(op):].strip())
    return have == wanted


def _compare(have, op, target):
    left, right = _key(have), _key(target)
    if type(left) is not type(right):
        left, right = have, target
    if op == ">=":
        return left >= right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == "<":
        return left < right
    if op == "==":
        return left == right
    return left != right


def _key(text):
    match = _VERSION.match(text)
    if match:
        return tuple(int(part) for part in match.group(0).split("."))
    return text


def describe(requires):
    """``requires`` as text for messages: ``version>=12, platform=linux-x86_64``."""
    return ", ".join("%s%s%s" % (k, "" if str(v)[:1] in "<>=!" else "=", v)
                     for k, v in sorted(requires.items()))
