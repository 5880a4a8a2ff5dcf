"""What clients ask of the TaskManager's state: submissions, their limits, cancels.

A part of ``State`` (mixed into it, the only writer of the records), kept apart
to keep each file short, as ``membership.py`` is. A SUBMIT's tasks are refused
one by one, with a result naming the limit, when their client or user is over
a quota; a repeated id from its owner is a no-op; a task resubmitted while its
old copy stops, or claimed after a restart, is handled here too.
"""

from .. import constraints, defaults
from ..wire.protocol import Code, result_item
from .tasks import CANCELLING, DONE, HELD, QUEUED, RUNNING, Task, queue_key


def charge(spec):
    """The bytes a task of SUBMIT item ``spec`` holds here, counted against its client."""
    return len(spec["body"]) + defaults.TASK_OVERHEAD


class Submissions:
    def submit(self, client, specs, now, effects, limit,
               limit_bytes=defaults.MAX_QUEUED_BYTES_PER_CLIENT):
        """Queue a SUBMIT's tasks; tell the client once per reason why some wait.
        Tasks beyond the client's ``limit`` (tasks) or ``limit_bytes`` are refused."""
        waiting = {}
        account = self.ledger.account(client.user)
        held = held_bytes = None               # the user's, counted once a SUBMIT
        if account.max_queued is not None or account.max_queued_bytes is not None:
            held = sum(len(c.tasks) for c in account.clients)
            held_bytes = sum(c.tasks.bytes for c in account.clients)
        for spec in specs:
            own_id = spec["id"]
            task_id = client.scope + own_id
            refusal = None
            if task_id in self.tasks:
                pass                           # a resubmission: decided below
            elif len(client.tasks) >= limit:
                refusal = (Code.QUEUE_FULL, "this client already has %d task(s) queued or "
                           "running (taskmanager.max_queued_per_client)" % limit)
            elif client.tasks.bytes + charge(spec) > limit_bytes:
                refusal = (Code.QUEUE_BYTES, "this client's queued and running tasks "
                           "would hold more than %d bytes "
                           "(taskmanager.max_queued_bytes_per_client)" % limit_bytes)
            else:
                refusal = self._over_quota(account, spec, held, held_bytes)
            if refusal is not None:
                effects.results.append((client, result_item(
                    own_id, 0, "error", "refused: " + refusal[1], code=refusal[0])))
                continue
            if held is not None:
                held += 1
                held_bytes += charge(spec)
            task = self._submit(client, spec, now, effects)
            if task is None:
                continue
            reasons = waiting.get(task.key)
            if reasons is None:
                reasons = waiting[task.key] = [self.unmatched(task.key), []]
            if reasons[0] is not None:
                reasons[1].append(own_id)
        for key, (reason, ids) in waiting.items():
            if reason is not None and client.told.get(key) != reason[0]:
                client.told[key] = reason[0]
                effects.notices.append((client, "warning", reason[0], "%d task(s) wait: %s"
                                        % (len(ids), reason[1]), ids))
            elif reason is None:
                client.told.pop(key, None)

    @staticmethod
    def _over_quota(account, spec, held, held_bytes):
        """``(code, why)`` when user ``account`` may not queue ``spec``, else None."""
        user = account.name or "(no key name)"
        if spec.get("priority", 0) > 0 and not account.may_prioritize:
            return (Code.PRIORITY_REFUSED, "user %s may not use priority above 0 (farm.yaml "
                    "users.%s.priority)" % (user, user))
        if account.max_queued is not None and held >= account.max_queued:
            return (Code.USER_QUEUE_FULL, "user %s already has %d task(s) queued or running "
                    "(farm.yaml users.%s.max_queued)" % (user, held, user))
        if account.max_queued_bytes is not None \
                and held_bytes + charge(spec) > account.max_queued_bytes:
            return (Code.USER_QUEUE_BYTES, "user %s's queued and running tasks would hold "
                    "more than %d bytes (farm.yaml users.%s.max_queued_bytes)"
                    % (user, account.max_queued_bytes, user))
        return None

    def _submit(self, client, spec, now, effects):
        """One task from a SUBMIT; a repeated id from its owner is a no-op."""
        own_id = spec["id"]
        task_id = client.scope + own_id
        task = self.tasks.get(task_id)
        if task is not None:
            if task.client is None and task.state == CANCELLING:
                if task.revive is not None and task.revive[0] is not client \
                        and self.peers.get(task.revive[0].rid) is task.revive[0]:
                    effects.notices.append((client, "error", Code.ID_IN_USE, "task id %r is "
                                            "already in use by another client" % own_id,
                                            [own_id]))
                    return None
                task.revive = (client, spec)   # its old owner went: run it anew after
                client.tasks.add(task_id, charge(spec))   # it counts as this client's,
                return None                    # and is cancelled with it
            elif task.client is None:          # adopted from a worker after a restart
                task.claim(spec, client, self.max_attempts)
                task.key = queue_key(spec["capability"], spec.get("requires"))
                task.run = self.ledger.run(client, spec)
                self.ledger.occupy(task)
                client.tasks.add(task_id, charge(spec))
                self.adopted.pop(task_id, None)
                return task
            elif task.client is not client:
                effects.notices.append((client, "error", Code.ID_IN_USE, "task id %r is "
                                        "already in use by another client" % own_id, [own_id]))
            return None
        orphan = self.orphans.pop(task_id, None) if spec.get("resume") else None
        if orphan is not None:                 # it finished while its client reconnected
            effects.results.append((client, dict(orphan[0], id=own_id)))
            return None
        key = self._intern(queue_key(spec["capability"], spec.get("requires")))
        task = Task.from_spec(spec, client, key, next(self._seq), self.max_attempts)
        task.run = self.ledger.run(client, spec)
        self.tasks[task_id] = task
        client.tasks.add(task_id, charge(spec))
        if spec.get("resume") and now < self.recovery_until:
            self.transition(task, HELD, "resubmitted in the recovery grace", now)
        else:
            self.transition(task, QUEUED, "submitted", now)
        return task

    def start_copy(self, client, spec, worker, attempt, now, effects):
        """A second copy of a running task (a straggler's speculative copy): a task of
        its own, given to ``worker`` at once rather than queued."""
        key = self._intern(queue_key(spec["capability"], spec.get("requires")))
        task = Task.from_spec(spec, client, key, next(self._seq), self.max_attempts)
        task.run = self.ledger.run(client, spec)
        task.attempt = attempt
        self.tasks[task.id] = task
        client.tasks.add(task.id, charge(spec))
        self._assign(task, worker, now, effects)
        return task

    def _intern(self, key):
        """The key object of an existing queue, so tasks share it."""
        lanes = self.queues.get(key)
        return next(iter(lanes.values())).key if lanes else key

    def unmatched(self, key):
        """``(code, why)`` no worker could take tasks of queue ``key`` now, or None."""
        capability, requires = key
        profiles = self.scheduler.by_capability.get(capability)
        if not profiles:
            return Code.NO_CAPABILITY, "no worker offers capability %r yet" % capability
        if requires and not self.scheduler.matching(key):
            return Code.NO_MATCH, "no worker with capability %r matches %s yet" % (
                capability, constraints.describe(dict(requires)))
        return None

    def output_for(self, item):
        """The task whose client a live OUTPUT item goes to, if it still wants it."""
        task = self.tasks.get(item["id"])
        if task is not None and task.stream and task.client is not None \
                and task.attempt == item["attempt"]:
            return task
        return None

    def cancel(self, client, own_ids, now, effects):
        for own_id in own_ids:
            task_id = client.scope + own_id
            task = self.tasks.get(task_id)
            if task is None:
                continue
            if task.client is None and task.revive is not None and task.revive[0] is client:
                task.revive = None             # its resubmission, waiting for the old copy
                client.tasks.discard(task_id)
                effects.results.append((client, result_item(
                    own_id, 0, "cancelled", "cancelled before it ran",
                    code=Code.CANCELLED_QUEUED)))
                continue
            if task.client is None and task.state == RUNNING:
                task.revive = None             # adopted after a restart, never claimed:
                self._cancel(task, effects, tell_client=False, now=now)   # its key's own
                self.adopted.pop(task.id, None)
                continue
            if task.client is not client:
                effects.notices.append((client, "error", Code.NOT_YOURS, "task %r is not "
                                        "yours to cancel" % own_id, [own_id]))
                continue
            self._cancel(task, effects, tell_client=True, now=now)

    def withdraw(self, task, now, effects):
        """Stop ``task`` for good without a word to its client, who will not hear of
        it again (the slower of a straggler's two copies)."""
        self._cancel(task, effects, tell_client=False, now=now)

    def _cancel(self, task, effects, tell_client, now):
        if task.state in (QUEUED, HELD):
            client = task.client
            self.transition(task, DONE, "cancelled before it ran", now)
            if tell_client:
                effects.results.append((client, result_item(
                    task.own_id, task.attempt, "cancelled", "cancelled before it ran",
                    code=Code.CANCELLED_QUEUED)))
        elif task.state in (RUNNING, CANCELLING):
            if task.state == RUNNING:
                self.transition(task, CANCELLING, "cancelled", now)
                task.requeue = False           # a cancel wins over an owner's requeue
                effects.cancel.append((task.worker, task.id))
            if not tell_client and task.client is not None:   # its client is gone
                task.client.tasks.discard(task.id)
                task.client = None
