"""Erasing stored content: one node, a whole thread, or everything older than a moment.

Plain functions on a sqlite3 connection. The server queues them on its writer
(one transaction with the writes around them); the CLI runs them on its own
connection. An erased node stays as a content-free tombstone (status
'deleted') while other nodes hang under it, so their chains keep working; the
erased id itself is unknown from then on (404). Every path also removes the
node's exchanges, its recorded stream events and its full-text entry (the search triggers do that), and
merges the search index so that no segment keeps the erased words.

A delete always wins: a node erased while its turn still runs stays a tombstone
(even where its thread goes row and all), so that the run's last write, which
`is_erased` refuses, cannot bring it back.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class Removed:
    """What an erase took out of the database."""

    interactions: int = 0  # nodes whose content was erased
    exchanges: int = 0  # recorded HTTP exchanges deleted
    threads: int = 0  # threads with nothing left to keep, deleted row and all


_TOMBSTONE = (
    "UPDATE interactions SET input = NULL, output = NULL, request = NULL, error = NULL,"
    " status = 'deleted', deleted_at = :now, updated_at = :now"
)


def is_erased(db: sqlite3.Connection, interaction_id: str) -> bool:
    """Whether this node was erased: nothing may be written for it any more."""
    return db.execute("SELECT 1 FROM interactions WHERE id = ? AND deleted_at IS NOT NULL",
                      (interaction_id,)).fetchone() is not None


_STILL_RUNNING = "status = 'in_progress' AND deleted_at IS NULL"


def _merge_search_index(db: sqlite3.Connection) -> None:
    # FTS5 marks deleted rows in new segments and keeps the old ones, words
    # included, until a merge. 'optimize' rewrites the index without them;
    # secure_delete then zeroes the pages the old segments freed.
    db.execute("INSERT INTO search_index (search_index) VALUES ('optimize')")


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
    if removed.interactions:
        _merge_search_index(db)
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
    if removed.interactions:
        _merge_search_index(db)
    return removed


def purge_before(db: sqlite3.Connection, cutoff: float) -> Removed:
    """Erase every node and exchange recorded before `cutoff` (epoch seconds).

    A node's ancestors are older than it, so what goes is the old start of a
    thread: newer nodes keep their place under tombstones. A thread left with
    no live node and nothing newer than the cutoff is deleted outright.
    """
    now = time.time()
    removed = Removed()
    # Threads with a turn still running keep their tombstones: its run's last write must find them erased.
    running = {row[0] for row in db.execute(
        f"SELECT root_id FROM interactions WHERE created_at < ? AND {_STILL_RUNNING}", (cutoff,))}
    removed.interactions = db.execute(
        f"{_TOMBSTONE} WHERE created_at < :cutoff AND deleted_at IS NULL", {"now": now, "cutoff": cutoff}
    ).rowcount
    removed.exchanges = db.execute(
        "DELETE FROM exchanges WHERE created_at < :cutoff"
        " OR interaction_id IN (SELECT id FROM interactions WHERE created_at < :cutoff)",
        {"cutoff": cutoff},
    ).rowcount
    db.execute("DELETE FROM stream_events WHERE interaction_id IN (SELECT id FROM interactions WHERE created_at < ?)",
               (cutoff,))
    dead = [
        row[0] for row in db.execute(
            "SELECT root_id FROM interactions GROUP BY root_id"
            " HAVING max(deleted_at IS NULL) = 0 AND max(created_at) < ?",
            (cutoff,),
        ) if row[0] not in running
    ]
    for thread_id in dead:
        db.execute("DELETE FROM interactions WHERE root_id = ?", (thread_id,))
    removed.threads = len(dead)
    if removed.interactions:
        _merge_search_index(db)
    return removed


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
        # executescript steps the pragma to the end; execute() frees one page only.
        db.executescript("PRAGMA incremental_vacuum;")
    busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy
