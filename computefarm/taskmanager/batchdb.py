"""The TaskManager's database: batches, their commands and their tasks' results.

An embedded SQLite file (write-ahead log; no server to install) that only the
TaskManager writes: a lock file beside it keeps a second TaskManager out, and
readers (a backup) may open it while it runs. Writes are queued in memory and
applied in one transaction by ``commit``; a write that fails (a full disk)
is rolled back and kept, so the next ``commit`` tries it again and nothing
acknowledged on the strength of it is lost: the TaskManager acknowledges a
result to its worker only once ``commit`` succeeded.

A task of a batch is ``n`` in ``range(commands * replicas)``: command
``n // replicas``, replica ``n % replicas``; it has a row in ``results`` once it
finished (the first result wins), none before.
"""

import fcntl
import json
import logging
import os
import sqlite3

import msgpack

from .. import addresses, defaults
from ..exceptions import StorageError
from ..storage.cas import location

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    spec TEXT NOT NULL,             -- JSON: capability, requires, priority, ...
    commands INTEGER NOT NULL,      -- how many the client said it sends
    received INTEGER NOT NULL,      -- how many have arrived
    replicas INTEGER NOT NULL,
    state TEXT NOT NULL,            -- open, active, cancelled, finished
    loaded_to INTEGER NOT NULL DEFAULT 0,   -- no task from here on was ever dispatched
    created REAL NOT NULL,          -- wall clock
    ended REAL
);
CREATE TABLE IF NOT EXISTS commands (
    batch TEXT NOT NULL, c INTEGER NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (batch, c)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    batch TEXT NOT NULL, n INTEGER NOT NULL, attempt INTEGER, status TEXT NOT NULL,
    exit_code INTEGER, code TEXT, error TEXT, host TEXT, worker TEXT,
    duration REAL, started REAL, ended REAL, copies INTEGER, winner INTEGER,
    output BLOB,
    PRIMARY KEY (batch, n)) WITHOUT ROWID;
"""

RESULT_FIELDS = ("n", "attempt", "status", "exit_code", "code", "error", "host", "worker",
                 "duration", "started", "ended", "copies", "winner")


class BatchDB:
    """``path`` None: in memory (a TaskManager on a port chosen at random)."""

    def __init__(self, path):
        self.path = path
        self.pending = []            # (sql, rows) not yet in a committed transaction
        self.lock = None
        self.failing = None          # why the last commit failed (a full disk), or None
        if path is None:
            self.db = sqlite3.connect(":memory:", isolation_level=None,
                                      check_same_thread=False)
            self.db.executescript(_SCHEMA)
            return
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
            self.lock = open(path + ".lock", "a+")
        except OSError as exc:
            raise StorageError("database %s: cannot create it: %s"
                               % (path, exc.strerror)) from None
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.lock.seek(0)
            holder = self.lock.read().strip() or "?"
            self.lock.close()
            raise StorageError("database %s is in use by another TaskManager (pid %s); "
                               "give this one another taskmanager.database"
                               % (path, holder)) from None
        self.lock.truncate(0)
        self.lock.write(str(os.getpid()))
        self.lock.flush()
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=0,
                                      check_same_thread=False)
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError("quick_check: %s" % check)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError("database %s was written by a newer ComputeFarm "
                                   "(schema %d, this one knows %d)"
                                   % (path, version, SCHEMA_VERSION))
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")   # kill -9 safe; see README
            self.db.executescript(_SCHEMA)
            self.db.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
        except sqlite3.OperationalError as exc:
            self.close()
            raise StorageError("database %s cannot be opened: %s" % (path, exc)) from None
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StorageError("database %s is corrupt (%s): move it away to start with an "
                               "empty one, or put a backup in its place" % (path, exc)) from None

    def close(self):
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
            self.db = None
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    # -- writes: queued, applied by commit ------------------------------------
    def create(self, batch_id, user, spec, commands, replicas, created):
        self._write("INSERT OR IGNORE INTO batches (id, user, spec, commands, received, "
                    "replicas, state, created) VALUES (?, ?, ?, ?, 0, ?, 'open', ?)",
                    [(batch_id, user, json.dumps(spec), commands, replicas, created)])

    def add_commands(self, batch_id, first, texts):
        self._write("INSERT OR IGNORE INTO commands (batch, c, text) VALUES (?, ?, ?)",
                    [(batch_id, first + i, text) for i, text in enumerate(texts)])

    def set_received(self, batch_id, received, state):
        self._write("UPDATE batches SET received = ?, state = ? WHERE id = ?",
                    [(received, state, batch_id)])

    def set_loaded_to(self, batch_id, n):
        self._write("UPDATE batches SET loaded_to = ? WHERE id = ? AND loaded_to < ?",
                    [(n, batch_id, n)])

    def set_state(self, batch_id, state, ended=None):
        self._write("UPDATE batches SET state = ?, ended = ? WHERE id = ?",
                    [(state, ended, batch_id)])

    def record(self, batch_id, rows):
        """Results (dicts of ``RESULT_FIELDS`` and ``output``); a task's first stays."""
        self._write("INSERT OR IGNORE INTO results (batch, %s, output) VALUES (?, %s, ?)"
                    % (", ".join(RESULT_FIELDS), ", ".join("?" * len(RESULT_FIELDS))),
                    [(batch_id,) + tuple(row.get(f) for f in RESULT_FIELDS)
                     + (_pack_output(row.get("output")),) for row in rows])

    def drop(self, batch_id):
        for table, column in (("results", "batch"), ("commands", "batch"), ("batches", "id")):
            self._write("DELETE FROM %s WHERE %s = ?" % (table, column), [(batch_id,)])

    def _write(self, sql, rows):
        self.pending.append((sql, rows))

    def commit(self):
        """Apply the queued writes in one transaction: True once they are on disk
        (as SQLite's write-ahead log keeps them through a crash of this process);
        False when it failed (they stay queued, ``failing`` says why)."""
        if not self.pending:
            return True
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for sql, rows in self.pending:
                self.db.executemany(sql, rows)
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if self.failing is None:
                log.error("TaskManager: cannot write the database %s: %s; results wait in "
                          "memory, unacknowledged, until it can", self.path, exc)
            self.failing = str(exc)
            return False
        if self.failing is not None:
            log.warning("TaskManager: the database %s is written again", self.path)
            self.failing = None
        self.pending = []
        return True

    # -- reads -------------------------------------------------------------------
    def batches(self):
        rows = self.db.execute("SELECT id, user, spec, commands, received, replicas, state, "
                               "created, ended, loaded_to FROM batches ORDER BY created"
                               ).fetchall()
        return [{"id": r[0], "user": r[1], "spec": json.loads(r[2]), "commands": r[3],
                 "received": r[4], "replicas": r[5], "state": r[6], "created": r[7],
                 "ended": r[8], "loaded_to": r[9]} for r in rows]

    def counts(self, batch_id):
        """``{status: tasks}`` of the batch's finished tasks."""
        return dict(self.db.execute("SELECT status, count(*) FROM results WHERE batch = ? "
                                    "GROUP BY status", (batch_id,)).fetchall())

    def finished_in(self, batch_id, low, high):
        """The tasks in ``range(low, high)`` that have a result."""
        return {r[0] for r in self.db.execute(
            "SELECT n FROM results WHERE batch = ? AND n >= ? AND n < ?",
            (batch_id, low, high))}

    def commands(self, batch_id, low, high):
        """``{c: text}`` for the commands in ``range(low, high)``."""
        return dict(self.db.execute("SELECT c, text FROM commands WHERE batch = ? AND c >= ? "
                                    "AND c < ?", (batch_id, low, high)).fetchall())

    def results(self, batch_id, after, limit, output=False):
        """Results of tasks after ``after`` (-1: from the first), in task order."""
        columns = ", ".join(RESULT_FIELDS) + (", output" if output else "")
        rows = self.db.execute("SELECT %s FROM results WHERE batch = ? AND n > ? ORDER BY n "
                               "LIMIT ?" % columns, (batch_id, after, limit)).fetchall()
        items = []
        for row in rows:
            item = dict(zip(RESULT_FIELDS, row))
            if output:
                item["output"] = _unpack_output(row[-1])
            items.append(item)
        return items


def _pack_output(tails):
    """A result's output tail, its last ``BATCH_OUTPUT_MAX`` characters, as bytes."""
    if not tails:
        return None
    budget = defaults.BATCH_OUTPUT_MAX
    kept = []
    for tail in reversed(tails):
        lines = []
        for line in reversed(tail.get("lines") or []):
            budget -= len(line) + 1
            if budget < 0:
                break
            lines.append(line)
        if lines:
            kept.append([tail.get("stream", "stdout"), lines[::-1]])
        if budget < 0:
            break
    return msgpack.packb(kept[::-1], use_bin_type=True)


def _unpack_output(data):
    if not data:
        return []
    return [{"stream": stream, "lines": lines}
            for stream, lines in msgpack.unpackb(data, raw=False)]


def database_path(configured, bind):
    """The batches' database file (None: in memory): farm.yaml's, else one per port
    in the data folder; a port chosen at random (0) keeps them in memory, as no
    TaskManager started later would find them."""
    if configured == "memory":
        return None
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    port = addresses.split(bind, "bind", allow_port_zero=True)[1]
    if port == 0:
        return None
    return os.path.join(location(None, defaults.DATA_ENV, defaults.DATA_DIR),
                        "taskmanager-%d.sqlite" % port)
