"""Refused messages: counted always, answered and logged only at a bounded rate.

A peer that sends a hundred thousand bad messages gets a handful of ERROR
replies and a handful of log lines, not a hundred thousand of each: each sender
has a token bucket (``REFUSAL_RATE`` a second, bursts of ``REFUSAL_BURST``);
refusals beyond it are counted, and one WARNING per sender and heartbeat round
says how many went unanswered. The same bucket bounds the RECONNECT replies to
an unknown peer, so no kind of message makes the TaskManager send or log in
proportion to what a peer sends it.
"""

import logging

from .. import defaults

log = logging.getLogger(__name__)


class Refusals:
    def __init__(self):
        self.count = 0                 # every refused message, answered or not
        self.buckets = {}              # routing id -> [tokens, stamp, unanswered]

    def allow(self, rid, now):
        """Count one refusal of ``rid``; True when it may be answered (and logged)."""
        self.count += 1
        return self.may_answer(rid, now)

    def may_answer(self, rid, now):
        """True when a reply to ``rid`` fits its bucket (which it then spends)."""
        bucket = self.buckets.get(rid)
        if bucket is None:
            self.buckets[rid] = [defaults.REFUSAL_BURST - 1.0, now, 0]
            return True
        tokens = min(float(defaults.REFUSAL_BURST),
                     bucket[0] + (now - bucket[1]) * defaults.REFUSAL_RATE)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        bucket[2] += 1
        return False

    def tidy(self, now):
        """Say how many went unanswered; forget senders whose bucket is full again."""
        for rid, bucket in list(self.buckets.items()):
            if bucket[2]:
                log.warning("TaskManager: %d more message(s) from peer %s refused "
                            "without an answer (over %d a second)", bucket[2],
                            _show(rid), defaults.REFUSAL_RATE)
                bucket[2] = 0
            elif now - bucket[1] > defaults.REFUSAL_BURST / defaults.REFUSAL_RATE:
                del self.buckets[rid]


def _show(rid):
    return rid.hex() if isinstance(rid, bytes) else str(rid)
