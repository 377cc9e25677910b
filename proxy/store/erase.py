"""Erasing stored content: one node, a whole thread, or everything older than a moment.

Plain functions on a sqlite3 connection. The server queues them on its writer
(one transaction with the writes around them); the CLI runs them on its own
connection. An erased node stays as a content-free tombstone (status
'deleted') while other nodes hang under it, so their chains keep working; the
erased id itself is unknown from then on (404). Every path also removes the
node's exchanges, its recorded stream events and its full-text entry (the search triggers do that);
its caller then merges the search index (merge_search_index_step, in short steps) so that
no segment keeps the erased words.

A delete always wins: a node erased while its turn still runs stays a tombstone
(even where its thread goes row and all), so that the run's last write, which
`is_erased` refuses, cannot bring it back.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .records import Removed

_TOMBSTONE = (
    "UPDATE interactions SET input = NULL, output = NULL, request = NULL, error = NULL,"
    " status = 'deleted', deleted_at = :now, updated_at = :now"
)


def is_erased(db: sqlite3.Connection, interaction_id: str) -> bool:
    """Whether this node was erased: nothing may be written for it any more."""
    return db.execute("SELECT 1 FROM interactions WHERE id = ? AND deleted_at IS NOT NULL",
                      (interaction_id,)).fetchone() is not None


_STILL_RUNNING = "status = 'in_progress' AND deleted_at IS NULL"


def merge_search_index_step(db: sqlite3.Connection, pages: int = 500) -> bool:
    """Merge a bounded piece of the full-text index; whether there is more to merge.

    FTS5 marks deleted rows in new segments and keeps the old ones, words
    included, until a merge. A merge with a negative size, repeated until it does
    nothing, leaves the index as 'optimize' would (no segment keeps an erased word),
    one short transaction at a time; secure_delete then zeroes the freed pages.
    Every erase is followed by these steps (its caller runs them)."""
    before = db.total_changes
    db.execute("INSERT INTO search_index (search_index, rank) VALUES ('merge', ?)", (-pages,))
    return db.total_changes - before >= 2


def erase_interactions(db: sqlite3.Connection, ids: Iterable[str]) -> Removed:
    """Tombstone these nodes and delete their exchanges."""
    now = time.time()
    removed = Removed()
    for interaction_id in ids:
        removed.interactions += db.execute(
            f"{_TOMBSTONE} WHERE id = :id AND deleted_at IS NULL", {"now": now, "id": interaction_id}
        ).rowcount
        removed.exchanges += db.execute("DELETE FROM exchanges WHERE interaction_id = ?", (interaction_id,)).rowcount
        db.execute("DELETE FROM stream_events WHERE interaction_id = ?", (interaction_id,))
    return removed


def erase_thread(db: sqlite3.Connection, thread_id: str) -> Removed:
    """Delete every node of a thread (root id) and their exchanges, rows and all."""
    removed = Removed()
    removed.exchanges = db.execute(
        "DELETE FROM exchanges WHERE interaction_id IN (SELECT id FROM interactions WHERE root_id = ?)", (thread_id,)
    ).rowcount
    db.execute("DELETE FROM stream_events WHERE interaction_id IN (SELECT id FROM interactions WHERE root_id = ?)",
               (thread_id,))
    removed.interactions = db.execute(
        "SELECT count(*) FROM interactions WHERE root_id = ? AND deleted_at IS NULL", (thread_id,)
    ).fetchone()[0]
    # A turn still running keeps a tombstone: its run's last write must find it erased.
    running = [row[0] for row in db.execute(f"SELECT id FROM interactions WHERE root_id = ? AND {_STILL_RUNNING}",
                                            (thread_id,))]
    db.execute(f"{_TOMBSTONE} WHERE root_id = :id AND {_STILL_RUNNING}", {"now": time.time(), "id": thread_id})
    marks = ",".join("?" * len(running))
    if db.execute(f"DELETE FROM interactions WHERE root_id = ? AND id NOT IN ({marks})",
                  (thread_id, *running)).rowcount:
        removed.threads = 1
    return removed


# Rows (or index pages) one purge step erases: each step is its own short transaction,
# well under the server's busy timeout, so a purge of any size never stalls the server.
PURGE_BATCH = 500
# How long a truncating checkpoint may hold the server's writes off while it waits for readers.
_TRUNCATE_WAIT_MS = 200


@dataclass(slots=True)
class PurgeProgress:
    """How far a purge has come: what it erased, which threads keep their tombstones, and its
    phase (the same on both stores; each store's Purge steps it in its own dialect)."""

    cutoff: float
    batch: int = PURGE_BATCH
    removed: Removed = field(default_factory=Removed)
    # Threads with a turn running when its node was erased: they keep their tombstones.
    running: set[str] = field(default_factory=set)
    _phase: int = 0
    _dead: list[str] | None = None


@dataclass(slots=True)
class Purge(PurgeProgress):
    """Erasing everything recorded before `cutoff` (epoch seconds), one short step at a time.

    A node's ancestors are older than it, so what goes is the old start of a
    thread: newer nodes keep their place under tombstones. A thread left with
    no live node and nothing newer than the cutoff is deleted outright, unless
    one of its turns was still running (its run's last write must find it erased).
    Each `step` is a transaction's worth; run steps until one says it was the last.
    Then, as after every erase, the caller merges the search index.
    """

    def step(self, db: sqlite3.Connection) -> bool:
        """Erase one batch; whether there is more to do."""
        phases = (self._nodes, self._exchanges, self._threads)
        while self._phase < len(phases):
            if phases[self._phase](db):
                return True
            self._phase += 1
        return False

    def _nodes(self, db: sqlite3.Connection) -> bool:
        rows = db.execute("SELECT id, root_id, status FROM interactions WHERE created_at < ? AND deleted_at IS NULL"
                          " LIMIT ?", (self.cutoff, self.batch)).fetchall()
        if not rows:
            return False
        now = time.time()
        ids = [(row[0],) for row in rows]
        self.running.update(row[1] for row in rows if row[2] == "in_progress")
        db.executemany(f"{_TOMBSTONE} WHERE id = :id", [{"now": now, "id": i} for (i,) in ids])
        self.removed.interactions += len(ids)
        self.removed.exchanges += db.executemany("DELETE FROM exchanges WHERE interaction_id = ?", ids).rowcount
        db.executemany("DELETE FROM stream_events WHERE interaction_id = ?", ids)
        return True

    def _exchanges(self, db: sqlite3.Connection) -> bool:
        deleted = db.execute("DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges WHERE created_at < ? LIMIT ?)",
                             (self.cutoff, self.batch)).rowcount
        self.removed.exchanges += deleted
        return deleted > 0

    def _threads(self, db: sqlite3.Connection) -> bool:
        if self._dead is None:  # found once: a scan of every node is no step's work
            self._dead = [row[0] for row in db.execute(
                "SELECT root_id FROM interactions GROUP BY root_id"
                " HAVING max(deleted_at IS NULL) = 0 AND max(created_at) < ?", (self.cutoff,))
                if row[0] not in self.running]
        dead, self._dead = self._dead[: self.batch], self._dead[self.batch:]
        if not dead:
            return False
        # Still dead: nothing newer came under the thread since it was found.
        for thread_id in dead:
            self.removed.threads += db.execute(
                "DELETE FROM interactions WHERE root_id = ?1 AND NOT EXISTS (SELECT 1 FROM interactions"
                " WHERE root_id = ?1 AND (deleted_at IS NULL OR created_at >= ?2))", (thread_id, self.cutoff)
            ).rowcount > 0
        return True


def purge_before(db: sqlite3.Connection, cutoff: float) -> Removed:
    """Erase everything recorded before `cutoff` in one transaction (the dry run's count)."""
    purge = Purge(cutoff)
    while purge.step(db):
        pass
    return purge.removed


def reclaim_space(db: sqlite3.Connection) -> bool:
    """Give freed pages back to the file system and fold the WAL in, truncated.

    Must run outside a transaction. A database created before incremental
    vacuum was switched on is converted once with a full VACUUM. Returns False
    when a reader kept the WAL from being truncated within the busy timeout:
    erased pages may then linger in the WAL until its next checkpoint.
    """
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("VACUUM")
    else:
        while vacuum_step(db):
            pass
    # Copy the WAL into the database alongside the server's writes first (PASSIVE blocks
    # no one); the truncating checkpoint then has little left to do while it holds writers off.
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    # A truncating checkpoint holds the writer lock while it waits for readers: it waits
    # briefly, so a busy server's writes stall for a moment at most (busy is reported).
    waited = db.execute("PRAGMA busy_timeout").fetchone()[0]
    db.execute(f"PRAGMA busy_timeout = {_TRUNCATE_WAIT_MS}")
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(waited)}")
    return not busy


def vacuum_step(db: sqlite3.Connection, pages: int = 2000) -> bool:
    """Give up to `pages` free pages back to the file system, in a transaction of their own
    (outside any other); whether free pages remain."""
    db.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()  # fetched: each row is a page freed
    return bool(db.execute("PRAGMA freelist_count").fetchone()[0])
