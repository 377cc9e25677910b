"""Erasing on PostgreSQL: one node, a whole thread, or everything older than a moment.

The same rules as erase.py (read its docstring): an erased node stays a content-free
tombstone while anything hangs under it, a turn still running keeps its tombstone, and
every path deletes the node's exchanges and stream events. Here the tombstone also
clears the node's searchable text (`search_input`, `search_output`), so that its
tsvector and trigram entries go with it.

Every erase tells the other recall instances on the database, in the transaction that
erases (so only once it commits): `NOTIFY recall_erased` with the erased interaction ids,
comma-separated, or `*` for a purge (and for a list too long for one notification). They
drop those chains from their caches (nodes never change otherwise).

What PostgreSQL frees is not zeroed: a plain VACUUM after the erase (which never blocks a
running server) marks the old row versions' space reusable, and later writes overwrite
it. VACUUM FULL, which locks the tables, rewrites them without it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model import IN_PROGRESS
from .erase import PurgeProgress
from .records import Removed

if TYPE_CHECKING:
    import asyncpg

# The channel erasures are announced on, and what a purge (or too many ids) announces.
ERASED_CHANNEL = "recall_erased"
EVERYTHING = "*"
# A notification's payload must stay under 8000 bytes.
_MAX_PAYLOAD = 7900

# A tombstone keeps nothing said, no lease and no cancel: its run's last write finds it erased.
_TOMBSTONE = (
    "UPDATE interactions SET input = NULL, output = NULL, request = NULL, error = NULL, search_input = NULL,"
    " search_output = NULL, status = 'deleted', deleted_at = $1, updated_at = $1, run_owner = NULL,"
    " lease_until = NULL, cancel_requested = false"
)
_STILL_RUNNING = "status = 'in_progress' AND deleted_at IS NULL"
# The tables an erase leaves dead rows in, vacuumed after it.
ERASED_TABLES = ("interactions", "exchanges", "stream_events")


async def announce(db: asyncpg.Connection, ids: Iterable[str]) -> None:
    """Tell the other instances (on commit) which interactions were erased."""
    payload = ",".join(ids)
    if not payload:
        return
    await db.execute("SELECT pg_notify($1, $2)", ERASED_CHANNEL,
                     payload if len(payload.encode()) <= _MAX_PAYLOAD else EVERYTHING)


async def erase_interactions(db: asyncpg.Connection, ids: list[str]) -> Removed:
    """Tombstone these nodes and delete their exchanges and events (inside the caller's transaction)."""
    now = time.time()
    removed = Removed()
    removed.interactions = len(await db.fetch(f"{_TOMBSTONE} WHERE id = ANY($2::text[]) AND deleted_at IS NULL"
                                              " RETURNING id", now, ids))
    removed.exchanges = count_of(await db.execute("DELETE FROM exchanges WHERE interaction_id = ANY($1::text[])", ids))
    await db.execute("DELETE FROM stream_events WHERE interaction_id = ANY($1::text[])", ids)
    await announce(db, ids)
    return removed


async def erase_thread(db: asyncpg.Connection, thread_id: str) -> Removed:
    """Delete every node of a thread (root id) and their exchanges, rows and all; a turn still
    running keeps a tombstone (its run's last write must find it erased)."""
    removed = Removed()
    ids = [row[0] for row in await db.fetch("SELECT id FROM interactions WHERE root_id = $1", thread_id)]
    removed.exchanges = count_of(await db.execute(
        "DELETE FROM exchanges WHERE interaction_id IN (SELECT id FROM interactions WHERE root_id = $1)", thread_id))
    await db.execute("DELETE FROM stream_events WHERE interaction_id IN"
                     " (SELECT id FROM interactions WHERE root_id = $1)", thread_id)
    removed.interactions = await db.fetchval(
        "SELECT count(*) FROM interactions WHERE root_id = $1 AND deleted_at IS NULL", thread_id)
    running = [row[0] for row in await db.fetch(f"{_TOMBSTONE} WHERE root_id = $2 AND {_STILL_RUNNING} RETURNING id",
                                                time.time(), thread_id)]
    if count_of(await db.execute("DELETE FROM interactions WHERE root_id = $1 AND NOT (id = ANY($2::text[]))",
                               thread_id, running)):
        removed.threads = 1
    await announce(db, ids)
    return removed


def count_of(status: str) -> int:
    """The row count of a command's status (`DELETE 3`)."""
    last = status.rsplit(" ", 1)[-1] if status else ""
    return int(last) if last.isdigit() else 0


@dataclass(slots=True)
class Purge(PurgeProgress):
    """Everything recorded before `cutoff`, erased a step (one short transaction) at a time:
    erase.Purge's phases and rules, in PostgreSQL's dialect."""

    async def step(self, db: asyncpg.Connection) -> bool:
        """Erase one batch (inside the caller's transaction); whether there is more to do."""
        phases = (self._nodes, self._exchanges, self._threads)
        while self._phase < len(phases):
            if await phases[self._phase](db):
                await announce(db, [EVERYTHING])
                return True
            self._phase += 1
        return False

    async def _nodes(self, db: asyncpg.Connection) -> bool:
        # SKIP LOCKED: a node another instance is writing right now is taken on a later step.
        rows = await db.fetch("SELECT id, root_id, status FROM interactions WHERE created_at < $1"
                              " AND deleted_at IS NULL LIMIT $2 FOR UPDATE SKIP LOCKED", self.cutoff, self.batch)
        if not rows:
            return False
        ids = [row[0] for row in rows]
        self.running.update(row[1] for row in rows if row[2] == IN_PROGRESS)
        await db.execute(f"{_TOMBSTONE} WHERE id = ANY($2::text[])", time.time(), ids)
        self.removed.interactions += len(ids)
        self.removed.exchanges += count_of(await db.execute(
            "DELETE FROM exchanges WHERE interaction_id = ANY($1::text[])", ids))
        await db.execute("DELETE FROM stream_events WHERE interaction_id = ANY($1::text[])", ids)
        return True

    async def _exchanges(self, db: asyncpg.Connection) -> bool:
        deleted = count_of(await db.execute(
            "DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges WHERE created_at < $1 LIMIT $2)",
            self.cutoff, self.batch))
        self.removed.exchanges += deleted
        return deleted > 0

    async def _threads(self, db: asyncpg.Connection) -> bool:
        if self._dead is None:  # found once: a scan of every node is no step's work
            self._dead = [row[0] for row in await db.fetch(
                "SELECT root_id FROM interactions GROUP BY root_id"
                " HAVING bool_and(deleted_at IS NOT NULL) AND max(created_at) < $1", self.cutoff)
                if row[0] not in self.running]
        dead, self._dead = self._dead[: self.batch], self._dead[self.batch:]
        if not dead:
            return False
        # Still dead: nothing newer came under the thread since it was found.
        for thread_id in dead:
            self.removed.threads += count_of(await db.execute(
                "DELETE FROM interactions WHERE root_id = $1 AND NOT EXISTS (SELECT 1 FROM interactions"
                " WHERE root_id = $1 AND (deleted_at IS NULL OR created_at >= $2))", thread_id, self.cutoff)) > 0
        return True


async def vacuum(db: asyncpg.Connection) -> None:
    """Mark the erased rows' space reusable (outside any transaction; never blocks the server)."""
    await db.execute(f"VACUUM {', '.join(ERASED_TABLES)}")


async def database_size(db: asyncpg.Connection) -> int:
    size: int = await db.fetchval("SELECT pg_database_size(current_database())")
    return size
