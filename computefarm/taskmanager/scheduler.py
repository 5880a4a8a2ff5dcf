"""Which worker gets the next task of a queue: free slots indexed for placement.

Workers whose capability attributes are identical are interchangeable for any
constraint, so they form a **profile** (capability, attributes). Each profile
keeps its workers with a free slot in a heap ordered by placement rank:

1. the machine's rank (``Machine.rank``: load per core, counting the task load
   placed since its last report, then less free memory later);
2. the worker's ``running / slots``, then tasks given to it since it registered;
3. registration order.

A queue's matching profiles are found once (and again when a profile appears
or goes), so picking a worker costs one heap top per matching profile and an
assignment O(log workers): no scan of the workers. Every worker is also in
one heap per capability (``everyone``): a queue all profiles match looks at
that one top. Entries are lazy: a worker
is pushed again (``offer``) whenever its rank may have dropped (a slot freed, a
report); a popped entry is checked against the worker's version, its free
slots and its machine's eligibility, and re-ranked if its machine's rank rose
since it was pushed (another worker of the machine took a task). A worker on
an ineligible machine leaves the heaps until its machine's next report.

``round-robin`` placement, the baseline of bench/placement_bench.py, ignores
all this: matching workers, sorted by name, take turns.
"""

import heapq

from .. import constraints, defaults


class Profile:
    __slots__ = ("capability", "attributes", "workers", "heap")

    def __init__(self, capability, attributes):
        self.capability = capability
        self.attributes = attributes
        self.workers = set()
        self.heap = []                # (rank, order, version, worker, machine stamp)


class Scheduler:
    def __init__(self, placement="load"):
        self.placement = placement
        self.profiles = {}            # (capability, sorted attributes) -> Profile
        self.by_capability = {}       # capability -> [Profile]
        self.matches = {}             # queue key -> its matching profiles (cleared when
                                      # a profile appears or goes)
        self.everyone = {}            # capability -> a Profile of all its workers, for
                                      # queues without constraints: one heap top to look at
        self.free = {}                # capability -> free slots of its workers
        self.turn = 0                 # round-robin position

    # -- workers ---------------------------------------------------------------
    def add(self, worker):
        profiles = []
        for capability, attributes in worker.capabilities.items():
            key = (capability, tuple(sorted(attributes.items())))
            profile = self.profiles.get(key)
            if profile is None:
                profile = self.profiles[key] = Profile(capability, attributes)
                self.by_capability.setdefault(capability, []).append(profile)
                self.matches.clear()
            profile.workers.add(worker)
            profiles.append(profile)
            self.free[capability] = self.free.get(capability, 0) + max(0, worker.free)
            everyone = self.everyone.get(capability)
            if everyone is None:
                everyone = self.everyone[capability] = Profile(capability, {})
            everyone.workers.add(worker)
        worker.profiles = tuple(profiles)
        worker.heaps = worker.profiles + tuple(self.everyone[p.capability] for p in profiles)
        self.offer(worker)

    def remove(self, worker):
        worker.gone = True
        for profile in worker.profiles:
            everyone = self.everyone[profile.capability]
            everyone.workers.discard(worker)
            if not everyone.workers:
                del self.everyone[profile.capability]
            profile.workers.discard(worker)
            self.free[profile.capability] -= max(0, worker.free)
            if not profile.workers:
                key = (profile.capability, tuple(sorted(profile.attributes.items())))
                del self.profiles[key]
                self.by_capability[profile.capability].remove(profile)
                if not self.by_capability[profile.capability]:
                    del self.by_capability[profile.capability]
                    del self.free[profile.capability]
                self.matches.clear()
        worker.profiles = worker.heaps = ()

    def taken(self, worker):
        """``worker`` runs one more task (a hello may list more than its slots:
        only the tasks within its slots count against the free ones)."""
        if worker.free >= 0:
            for profile in worker.profiles:
                self.free[profile.capability] -= 1
        if worker.free > 0:
            self.offer(worker)

    def released(self, worker):
        """``worker`` runs one task fewer."""
        if worker.free > 0:
            for profile in worker.profiles:
                self.free[profile.capability] += 1
            self.offer(worker)

    def paced(self, worker, duration):
        """``worker`` ran a task in ``duration`` seconds: the tasks it may hold
        beyond its slots follow the moving average (``defaults.PIPELINE_*``)."""
        pace = worker.pace = duration if worker.pace is None else \
            worker.pace + defaults.PIPELINE_SMOOTHING * (duration - worker.pace)
        per_slot = defaults.PIPELINE_MAX if pace * defaults.PIPELINE_MAX < \
            defaults.PIPELINE_WINDOW else int(defaults.PIPELINE_WINDOW / pace)
        if not per_slot and pace < defaults.PIPELINE_SOLE_WINDOW and self.sole(worker):
            per_slot = 1
        depth = per_slot * worker.slots
        if depth == worker.depth or worker.gone:
            return
        before = max(0, worker.free)
        worker.depth = depth
        change = max(0, worker.free) - before
        for profile in worker.profiles:
            self.free[profile.capability] += change
        if change > 0:
            self.offer(worker)

    def sole(self, worker):
        """Whether no other worker offers any of ``worker``'s capabilities."""
        return all(len(self.everyone[p.capability].workers) == 1 for p in worker.profiles)

    def offer(self, worker):
        """(Re)enter ``worker`` in its profiles' heaps at its current rank."""
        if worker.gone or worker.free <= 0:
            return
        worker.version += 1
        entry = (rank(worker), worker.order, worker.version, worker, worker.machine_record.stamp)
        for profile in worker.heaps:
            heapq.heappush(profile.heap, entry)
            if len(profile.heap) > 4 * len(profile.workers) + 64:
                _rebuild(profile)

    # -- choosing --------------------------------------------------------------
    def has_free(self, capability):
        return self.free.get(capability, 0) > 0

    def any_free(self):
        return any(count > 0 for count in self.free.values())

    def matching(self, key):
        """The profiles whose workers satisfy queue ``key``'s constraints (cached
        until a profile appears or goes)."""
        profiles = self.matches.get(key)
        if profiles is None:
            capability, requires = key
            requires = dict(requires)
            profiles = [p for p in self.by_capability.get(capability, ())
                        if constraints.matches(p.attributes, requires)]
            if len(profiles) > 1 and len(profiles) == len(self.by_capability[capability]):
                profiles = [self.everyone[capability]]   # all of them: the one heap
            self.matches[key] = profiles
        return profiles

    def best(self, queue, now):
        """The worker the next task of ``queue`` should go to, or None."""
        best = None
        for profile in self.matching(queue.key):
            top = _top(profile, now)
            if top is not None and (best is None or top[:2] < best[:2]):
                best = top
        return None if best is None else best[3]

    def in_turn(self, queue, workers):
        """Round robin: the worker whose turn it is, if it has a free slot."""
        matching = sorted((w for w in workers if w.offers(queue.capability, queue.requires)),
                          key=lambda w: w.name)
        if not matching:
            return None
        worker = matching[self.turn % len(matching)]
        return worker if worker.free > 0 else None


def rank(worker):
    """Lower is sooner: see the module's docstring."""
    return worker.machine_record.rank() + (len(worker.running) / max(1, worker.slots),
                                           worker.assigned)


def _top(profile, now):
    """The profile's best valid entry, after dropping or re-ranking stale ones."""
    heap = profile.heap
    while heap:
        key, order, version, worker, stamp = heap[0]
        if version != worker.version or worker.gone or worker.free <= 0:
            heapq.heappop(heap)
            continue
        machine = worker.machine_record
        if not machine.eligible(now):
            heapq.heappop(heap)       # back at its machine's next report
            worker.version += 1
            continue
        if stamp != machine.stamp:    # its machine took work through another worker
            current = rank(worker)
            if current != key:
                heapq.heapreplace(heap, (current, order, version, worker, machine.stamp))
                continue
        return heap[0]
    return None


def _rebuild(profile):
    live = {}
    for entry in profile.heap:
        worker = entry[3]
        if entry[2] == worker.version and not worker.gone and worker.free > 0:
            live[worker] = entry
    profile.heap = list(live.values())
    heapq.heapify(profile.heap)
