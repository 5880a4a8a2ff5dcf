"""A batch's commands coming in (BATCH parts): checked, written, answered once on disk.

Every part carries the batch's id, settings and size, so whichever arrives
first opens the batch (``BatchBook.open``). A part is refused whole, with a
code and a line saying why, when it does not fit: settings other than its
first part's, a batch too large, commands past the announced count, a command
that cannot be filled in, priority the user may not use, a database that
cannot be written. A part is idempotent (a command's place is its key); the
one that completes the batch activates it (``BatchBook.activate``).
"""

import logging

from .. import placeholders
from ..exceptions import ProtocolError
from ..wire import protocol
from ..wire.protocol import Code, Msg
from ..wire.schemas import MAX_BATCH_COMMANDS
from .batches import ACTIVE, OPEN

log = logging.getLogger(__name__)


def take(book, client, body, now):
    """Handle a BATCH part from ``client``; the BATCHED answer is sent from here."""
    batch_id, ref = body["id"], body["ref"]
    batch = book.batches.get(batch_id)
    if batch is not None and not book.may(client, batch):
        return _answer(book, client, ref, batch_id, code=Code.ID_IN_USE,
                       text="batch id %s is another user's" % batch_id)
    if book.db.failing is not None:
        return _unwritable(book, client, ref, batch_id)
    try:
        check(book, client, batch, body)
    except ProtocolError as exc:         # nothing written; the client says why
        return _answer(book, client, ref, batch_id, code=exc.code, text=str(exc))
    if batch is None:
        batch = book.open(client, body, now)
    batch.touched = now
    lines, first = body["lines"], body["first"]
    if batch.state == OPEN and lines:
        known = len(book.db.commands(batch_id, first, first + len(lines)))
        batch.received += len(lines) - known
        book.db.add_commands(batch_id, first, lines)
        if batch.received >= batch.commands:
            batch.state = ACTIVE
        book.db.set_received(batch_id, batch.received, batch.state)
    if not book.db.commit():
        if batch.state == ACTIVE and batch.peer is None:
            batch.state = OPEN
        return _unwritable(book, client, ref, batch_id)
    if batch.state == ACTIVE and batch.peer is None:
        log.info("TaskManager: batch %s: all %d command(s) in, %d task(s) to run",
                 batch_id, batch.commands, batch.total)
        book.activate(batch, now)
    _answer(book, client, ref, batch_id, received=batch.received)


def check(book, client, batch, body):
    """ProtocolError (refused with a code, nothing written) unless the part fits."""
    spec, lines, first = body["spec"], body["lines"], body["first"]
    if batch is not None and (spec != batch.spec or body["commands"] != batch.commands
                              or body["replicas"] != batch.replicas):
        raise ProtocolError("BATCH %s: settings differ from its first part's" % body["id"])
    if body["commands"] * body["replicas"] > MAX_BATCH_COMMANDS:
        raise ProtocolError("BATCH %s: %d x %d tasks, more than %d in one batch"
                            % (body["id"], body["commands"], body["replicas"],
                               MAX_BATCH_COMMANDS))
    if first + len(lines) > body["commands"]:
        raise ProtocolError("BATCH %s: commands %d.. go past the %d it announced"
                            % (body["id"], first, body["commands"]))
    for offset, line in enumerate(lines):
        why = placeholders.problem(line) or (None if line.strip() else "it is empty")
        if why is not None:
            raise ProtocolError("BATCH %s: command %d: %s" % (body["id"], first + offset, why))
    account = book.state.ledger.account(client.user)
    if spec.get("priority", 0) > 0 and not account.may_prioritize:
        raise ProtocolError("BATCH %s: user %s may not use priority above 0 (farm.yaml "
                            "users.%s.priority)" % (body["id"], client.user, client.user),
                            Code.PRIORITY_REFUSED)


def _unwritable(book, client, ref, batch_id):
    _answer(book, client, ref, batch_id, code=Code.DATABASE,
            text="the TaskManager cannot write its database now (%s); try again later"
            % book.db.failing)


def _answer(book, client, ref, batch_id, **fields):
    book.outbox.send(client.rid, Msg.BATCHED, protocol.batched(ref, batch_id, **fields))
