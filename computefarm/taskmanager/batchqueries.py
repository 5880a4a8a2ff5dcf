"""What a client may ask about batches (QUERY), answered from ``BatchBook``.

``list`` (the batches this key may see), ``status`` (counts, the running
tasks and where, why tasks wait), ``results`` and ``output`` (finished tasks
from the database, in task order, a page at a time: ``after`` the last task of
the previous page), ``cancel``, and ``forget`` (a batch that is over leaves the
database). A batch of another user is answered as
unknown, as one that does not exist.
"""

from .. import defaults
from ..wire import protocol
from ..wire.protocol import Code
from ..wire.schemas import MAX_BATCH

OUTPUT_PAGE = 200            # tasks of one output page at most (and ~BATCH_PART_BYTES)


def answer(book, client, body):
    """The ANSWER body to a QUERY ``body`` from ``client``."""
    what, ref = body["what"], body["ref"]
    if what == "list":
        now = book.wall()
        return protocol.answer(ref, what, {"batches": [
            b.describe(now) for b in book.batches.values() if book.may(client, b)]})
    batch = book.batches.get(body.get("id"))
    if batch is None or not book.may(client, batch):
        return protocol.answer(ref, what, code=Code.UNKNOWN_BATCH,
                               text="no batch %s here" % body.get("id"))
    if what == "forget":
        if not book.forget(batch):
            return protocol.answer(ref, what, code=Code.INVALID, text="batch %s is %s: "
                                   "cancel it first, or wait for it" % (batch.id, batch.state))
        return protocol.answer(ref, what, {"id": batch.id, "state": "forgotten"})
    if what == "cancel":
        book.cancel(batch)
    if what in ("status", "cancel"):
        return protocol.answer(ref, what, status(book, batch))
    return protocol.answer(ref, what, results(book, batch, body.get("after", -1),
                                              body.get("limit"), what == "output"))


def status(book, batch):
    now = book.wall()
    info = batch.describe(now)
    info["notice"] = batch.notice
    info["counts"] = dict(batch.counts)
    info["spec"] = batch.spec
    info["running_tasks"] = [
        {"task": n // batch.replicas, "replica": n % batch.replicas, "host": host,
         "age": round(now - since, 1), "attempt": attempt, "copy": "~" in own_id}
        for own_id, (n, host, since, attempt) in sorted(
            batch.running.items(), key=lambda entry: entry[1][0])[:100]]
    return info


def results(book, batch, after, limit, output):
    """A page of finished tasks after task ``after``: with their output tails when
    ``output`` (then at most ``OUTPUT_PAGE`` tasks and about BATCH_PART_BYTES)."""
    limit = min(limit or MAX_BATCH, OUTPUT_PAGE if output else MAX_BATCH)
    items = book.db.results(batch.id, after, limit, output=output)
    for item in items:
        item["task"], item["replica"] = divmod(item["n"], batch.replicas)
    if output:
        weight, kept = 0, []
        for item in items:
            weight += sum(len(line) + 1 for tail in item["output"] for line in tail["lines"])
            if kept and weight > defaults.BATCH_PART_BYTES:
                break
            kept.append(item)
        items = kept
    return {"items": items, "finished": batch.finished, "tasks": batch.total,
            "state": batch.state, "next": items[-1]["n"] if items else None}
