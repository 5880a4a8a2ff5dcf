"""How many pilots to start or stop, from the TaskManager's demand (STATE's
``demand``) and the pilots that exist: a pure function, so it is tested with
made-up numbers.

Pilots are wanted for the tasks that wait for a capability the pilots offer
(and constraints their ``attributes`` satisfy), beyond the free slots that could
take them now and the slots of pilots still waiting to start. Between ``min`` and
``max`` pilots exist; pilots that still wait in the engine's queue are cancelled
when nothing waits any more. Running pilots are never stopped here: they leave
by themselves when idle (``idle_exit``), so no task is ever cut short.
"""

import math

from ..constraints import matches
from .backends import PENDING


def plan(demand, pilots, settings):
    """``(pilots to start, ids to cancel)``."""
    rows = [row for row in demand if row["capability"] in settings.capabilities
            and matches(settings.attributes, row.get("requires") or {})]
    waiting = sum(row["queued"] for row in rows)
    free = sum(row["free"] for row in rows)
    pending = sorted(pilot for pilot, state in pilots.items() if state == PENDING)
    short = waiting - free - len(pending) * settings.slots
    wanted = math.ceil(short / settings.slots) if short > 0 else 0
    room = settings.max - len(pilots)
    start = max(settings.min - len(pilots), min(wanted, room), 0)
    excess = min(len(pending), len(pilots) - settings.min)
    cancel = pending[len(pending) - excess:] if waiting == 0 and excess > 0 else []
    return start, cancel


def waiting_for(demand, settings):
    """Tasks that wait for what these pilots offer (for the factory's report)."""
    return sum(row["queued"] for row in demand if row["capability"] in settings.capabilities
               and matches(settings.attributes, row.get("requires") or {}))
