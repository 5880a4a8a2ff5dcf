"""Messages for fuzzing the port, made from the wire's own schemas.

``Fuzzer(rng).message(role)`` makes a structurally valid message of a type the
role may send (sometimes of another type): every field present or absent as
its schema allows, with values of the right type and size, except that each
field is, with probability ``bad``, given a wrong type, an out-of-range number,
a NaN, an oversized string or list, or bytes keys. Some are simply valid, and
large (long task bodies, many tasks): what an authenticated but hostile peer
can send. The tests seed its ``random.Random`` from Hypothesis, bench/ with a number.
"""

from computefarm.wire import schemas
from computefarm.wire.protocol import Msg, encode

ROLE_TYPES = {
    "client": (Msg.HELLO, Msg.HEARTBEAT, Msg.BYE, Msg.SUBMIT, Msg.CANCEL, Msg.STATUS, Msg.LOG,
               Msg.BATCH, Msg.QUERY),
    "worker": (Msg.HELLO, Msg.HEARTBEAT, Msg.BYE, Msg.RESULT, Msg.OUTPUT),
    "monitor": (Msg.HELLO, Msg.HEARTBEAT, Msg.BYE, Msg.REPORT),
    "stranger": (Msg.ENROL,),      # an unknown key, while an invitation is open
}
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-_:./ é\n\x00"


class Fuzzer:
    BUDGET = 2 << 20           # bytes of strings and bodies in one message, about

    def __init__(self, rng, bad=0.05, big=0.02, ids=None):
        self.rng = rng
        self.bad = bad                # chance that a field gets a wrong value
        self.big = big                # chance that a size is the largest allowed
        self.ids = ids or []          # task ids seen, reused by later messages
        self.budget = self.BUDGET

    def message(self, role, name="fuzzer"):
        """``(Msg, frame)`` one message as ``role`` could send it."""
        rng = self.rng
        mtype = rng.choice(ROLE_TYPES[role]) if rng.random() < 0.9 else rng.choice(list(Msg))
        self.budget = self.BUDGET
        body = self.value(schemas.SCHEMAS[mtype.name], depth=0)
        if mtype == Msg.HELLO and isinstance(body, dict) and rng.random() < 0.8:
            body["role"], body["id"] = role, name    # mostly a hello that gets in
        return mtype, encode(mtype, body)

    def value(self, spec, depth):
        if self.rng.random() < self.bad:
            return self.wrong(spec)
        rng = self.rng
        if isinstance(spec, schemas.Opt):
            return None if rng.random() < 0.2 else self.value(spec.spec, depth)
        if isinstance(spec, schemas.Str):
            if spec.choices is not None:
                return rng.choice(sorted(spec.choices))
            return self.text(self.size(spec.max, 20, depth))
        if isinstance(spec, schemas.Bytes):
            return rng.randbytes(self.spend(self.size(200000, 100, depth - 1)))
        if isinstance(spec, schemas.Bool):
            return rng.random() < 0.5
        if isinstance(spec, schemas.Digest):       # a few names, so some PUTs continue
            return ("%064x" % rng.randrange(4)) if rng.random() < 0.7 else rng.randbytes(
                32).hex()
        if isinstance(spec, schemas.Int):
            return rng.choice((spec.low, spec.high, rng.randint(spec.low, min(spec.high,
                                                                              spec.low + 100))))
        if isinstance(spec, schemas.Num):
            return rng.choice((spec.low, spec.high, rng.uniform(spec.low, min(spec.high, 100))))
        if isinstance(spec, schemas.List):
            return [self.value(spec.item, depth + 1)
                    for _ in range(self.size(spec.max, 8, depth))]
        if isinstance(spec, schemas.Map):
            return {self.text(self.size(spec.key, 10, depth)): self.value(spec.value, depth + 1)
                    for _ in range(self.size(spec.max, 4, depth))}
        if isinstance(spec, schemas.Record):
            body = {}
            for field, item in spec.fields.items():
                if field in spec.required or rng.random() < 0.5:
                    body[field] = self.value(item, depth + 1)
            if "id" in spec.fields and self.ids and rng.random() < 0.5:
                body["id"] = rng.choice(self.ids)
            elif isinstance(body.get("id"), str) and len(self.ids) < 1000:
                self.ids.append(body["id"])
            if rng.random() < 0.05:
                body[self.text(8)] = self.text(8)        # an unknown field
            return body
        if isinstance(spec, schemas.Plain):
            if depth > 3 or rng.random() < 0.6:
                return rng.choice((self.text(10), rng.randint(-5, 5), 1.5, True, None))
            return {self.text(5): self.value(spec, depth + 1) for _ in range(3)}
        raise AssertionError("no generator for %r" % spec)

    def size(self, largest, usual, depth):
        """A length: mostly small, sometimes (near the top of the message) the largest
        allowed, capped so that one message stays a few MB."""
        if depth <= 1 and self.rng.random() < self.big:
            return min(largest, 200000)
        return self.rng.randint(0, min(largest, usual))

    def spend(self, length):
        length = max(0, min(length, self.budget))
        self.budget -= length
        return length

    def text(self, length):
        length = self.spend(length)
        if length > 100:
            return "x" * length
        return "".join(self.rng.choice(ALPHABET) for _ in range(length))

    def wrong(self, spec):
        """A value ``spec`` refuses, when it can refuse anything."""
        rng = self.rng
        choices = [b"bytes", "text", 1.5, float("nan"), float("inf"), True, None, [1],
                   {b"k": "v"}, {"k": b"v"}, -1, 1 << 62]
        if isinstance(spec, schemas.Str) and spec.max < self.budget:
            choices.append("y" * self.spend(spec.max + 1))
        if isinstance(spec, schemas.List) and spec.max < self.budget:
            choices.append([None] * self.spend(spec.max + 1))
        if isinstance(spec, (schemas.Int, schemas.Num)):
            choices += [spec.low - 1, spec.high + 1]
        if isinstance(spec, schemas.Digest):
            choices += ["../" * 21 + "x", "A" * 64, "0" * 63]
        return rng.choice(choices)
