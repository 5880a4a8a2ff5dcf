"""Tables that grow to a million entries without a pause.

A Python dict or set that grows past a power of two rehashes every entry at
once: 25 ms at 700,000 tasks, in the middle of one loop iteration. These keep
their entries in 64 shards chosen by the key's hash, so a growth rehashes one
shard, a sixty-fourth of them.
"""

import itertools

SHARDS = 64
_MASK = SHARDS - 1


class ShardedDict:
    """The part of a dict's interface the TaskManager uses."""

    __slots__ = ("shards",)

    def __init__(self):
        self.shards = [{} for _ in range(SHARDS)]

    def get(self, key, default=None):
        return self.shards[hash(key) & _MASK].get(key, default)

    def __getitem__(self, key):
        return self.shards[hash(key) & _MASK][key]

    def __setitem__(self, key, value):
        self.shards[hash(key) & _MASK][key] = value

    def __delitem__(self, key):
        del self.shards[hash(key) & _MASK][key]

    def __contains__(self, key):
        return key in self.shards[hash(key) & _MASK]

    def __len__(self):
        return sum(map(len, self.shards))

    def __iter__(self):
        return itertools.chain.from_iterable(self.shards)

    def items(self):
        return itertools.chain.from_iterable(shard.items() for shard in self.shards)

    def values(self):
        return itertools.chain.from_iterable(shard.values() for shard in self.shards)

    def __eq__(self, other):
        return dict(self.items()) == dict(other.items())

    def compact(self):
        """Rebuild the shards, after most of their entries left."""
        self.shards = [dict(shard) for shard in self.shards]


class ShardedSet:
    """The part of a set's interface the TaskManager uses; its size is counted, as
    the queue limit reads it for every task submitted."""

    __slots__ = ("shards", "size")

    def __init__(self):
        self.shards = [set() for _ in range(SHARDS)]
        self.size = 0

    def add(self, item):
        shard = self.shards[hash(item) & _MASK]
        if item not in shard:
            shard.add(item)
            self.size += 1

    def discard(self, item):
        shard = self.shards[hash(item) & _MASK]
        if item in shard:
            shard.remove(item)
            self.size -= 1

    def __contains__(self, item):
        return item in self.shards[hash(item) & _MASK]

    def __len__(self):
        return self.size

    def __iter__(self):
        return itertools.chain.from_iterable(self.shards)

    def __eq__(self, other):
        return set(self) == set(other)

    def clear(self):
        self.shards = [set() for _ in range(SHARDS)]
        self.size = 0

    def compact(self):
        self.shards = [set(shard) for shard in self.shards]
