"""`recall db copy`: every row of one database into another, SQLite and PostgreSQL either way.

What moves: interactions (tombstones included), exchanges, stream events, and OpenAI
conversations with their items; ids, JSON text and bytes as they are, exchange ids too.
What each backend derives is made again on the target: SQLite's full-text index, or
PostgreSQL's searchable text (search.searchable_text, as the stores write it). Each
backend's own bookkeeping stays: schema_migrations (each target is migrated by its own
list), PostgreSQL's replay_positions and cancel flags (a copy is history, not a live run).

The source is read in one snapshot and the target written in one transaction, BATCH rows a
trip: a copy that fails leaves the target as it was. A target that holds rows is refused
unless `append`: then rows whose key the target has are left as they are (ids are random,
so the same id is the same node, copied before), and exchanges are numbered after the
target's own (their ids are only an order). Appending the same source twice adds its
exchanges twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .locations import Location, is_postgres, shown
from .pg_audit import is_database_error
from .pg_connect import explain, open_pool
from .recordings import stored_turns
from .records import StoreError
from .search import index_interaction, searchable_text
from .sqlite import open_private, open_sync

if TYPE_CHECKING:
    import asyncpg

BATCH = 500


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]  # what both backends hold, in this order
    key: tuple[str, ...]  # read in this order


INTERACTIONS = Table("interactions", (
    "id", "owner", "upstream", "front", "mode", "model", "status", "parent_id", "root_id", "depth", "input", "output",
    "request", "usage", "input_tokens", "output_tokens", "error", "provider_id", "created_at", "updated_at",
    "deleted_at", "run_id", "run_owner", "lease_until"), ("id",))
EXCHANGES = Table("exchanges", (
    "id", "interaction_id", "owner", "upstream", "front", "method", "path", "status", "latency_ms", "model",
    "input_tokens", "output_tokens", "stored", "request_headers", "request_body", "response_headers", "response_body",
    "upstream_digest", "error", "created_at", "cache_key", "cache"), ("id",))
TABLES = (
    INTERACTIONS,
    EXCHANGES,
    Table("stream_events", ("interaction_id", "seq", "event_id", "at_ms", "frame"), ("interaction_id", "seq")),
    Table("openai_conversations", ("id", "owner", "upstream", "metadata", "created_at", "updated_at"), ("id",)),
    Table("openai_conversation_items", ("conversation_id", "seq", "item_id", "item", "created_at"),
          ("conversation_id", "seq")),
)
_STORED = EXCHANGES.columns.index("stored")
_INPUT, _OUTPUT = INTERACTIONS.columns.index("input"), INTERACTIONS.columns.index("output")


def _search_texts(row: tuple[Any, ...]) -> tuple[str | None, str | None]:
    """A node's searchable input and output text (none for a tombstone)."""
    return searchable_text(stored_turns(row[_INPUT])), searchable_text(stored_turns(row[_OUTPUT]))


class _SQLite:
    """One side of a copy on a SQLite file."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @classmethod
    def open(cls, path: Path, *, create: bool) -> _SQLite:
        if create:
            open_private(path)
        try:
            return cls(open_sync(path))
        except FileNotFoundError:
            raise StoreError(f"no database at {path}: name an existing SQLite file") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a recall database: {exc}") from None

    async def begin_reading(self) -> None:
        self.db.execute("BEGIN")  # one snapshot of the file for the whole copy (WAL)

    async def rows(self, table: Table) -> AsyncIterator[list[tuple[Any, ...]]]:
        cursor = self.db.execute(f"SELECT {', '.join(table.columns)} FROM {table.name}"
                                 f" ORDER BY {', '.join(table.key)}")
        while batch := cursor.fetchmany(BATCH):
            yield batch

    async def begin_writing(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    async def count(self, table: Table) -> int:
        counted: int = self.db.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
        return counted

    async def write(self, table: Table, rows: list[tuple[Any, ...]], *, append: bool) -> None:
        columns = table.columns[1:] if append and table is EXCHANGES else table.columns
        values = [row[1:] for row in rows] if append and table is EXCHANGES else rows
        verb = "INSERT OR IGNORE" if append else "INSERT"
        insert = f"{verb} INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        if table is not INTERACTIONS:
            self.db.executemany(insert, values)
            return
        for row in values:
            # The full-text index is SQLite's own: made for every node copied in that has content.
            if self.db.execute(insert, row).rowcount and (row[_INPUT] is not None or row[_OUTPUT] is not None):
                index_interaction(self.db, row[0], stored_turns(row[_INPUT]), stored_turns(row[_OUTPUT]))

    async def finish(self, *, commit: bool) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT" if commit else "ROLLBACK")

    async def close(self) -> None:
        self.db.close()


class _Postgres:
    """One side of a copy on a PostgreSQL database."""

    def __init__(self, url: str, pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
        self.url = url
        self.pool = pool
        self.db = db
        self.transaction: Any = None

    @classmethod
    async def open(cls, url: str) -> _Postgres:
        pool = await open_pool(url, min_size=1, max_size=1)
        return cls(url, pool, await pool.acquire())

    async def begin_reading(self) -> None:
        self.transaction = self.db.transaction(isolation="repeatable_read", readonly=True)
        await self.transaction.start()

    async def rows(self, table: Table) -> AsyncIterator[list[tuple[Any, ...]]]:
        cursor = await self.db.cursor(f"SELECT {', '.join(table.columns)} FROM {table.name}"
                                      f" ORDER BY {', '.join(table.key)}")
        while batch := await cursor.fetch(BATCH):
            yield [tuple(row) for row in batch]

    async def begin_writing(self) -> None:
        self.transaction = self.db.transaction()
        await self.transaction.start()

    async def count(self, table: Table) -> int:
        counted: int = await self.db.fetchval(f"SELECT count(*) FROM {table.name}")
        return counted

    async def write(self, table: Table, rows: list[tuple[Any, ...]], *, append: bool) -> None:
        columns, values = list(table.columns), [list(row) for row in rows]
        if table is EXCHANGES:
            for row in values:
                row[_STORED] = None if row[_STORED] is None else bool(row[_STORED])
            if append:
                columns, values = columns[1:], [row[1:] for row in values]
        if table is INTERACTIONS:
            columns += ["search_input", "search_output"]
            values = [[*row, *_search_texts(tuple(row))] for row in values]
        override = " OVERRIDING SYSTEM VALUE" if table is EXCHANGES and not append else ""
        conflict = " ON CONFLICT DO NOTHING" if append else ""
        await self.db.executemany(
            f"INSERT INTO {table.name} ({', '.join(columns)}){override}"
            f" VALUES ({', '.join(f'${n}' for n in range(1, len(columns) + 1))}){conflict}", values)

    async def finish(self, *, commit: bool) -> None:
        if self.transaction is None:
            return
        if commit:
            # Exchanges copied with their ids: the next one the server records comes after them.
            await self.db.execute("SELECT setval(pg_get_serial_sequence('exchanges', 'id'),"
                                  " coalesce((SELECT max(id) FROM exchanges), 0) + 1, false)")
            await self.transaction.commit()
        else:
            await self.transaction.rollback()
        self.transaction = None

    async def close(self) -> None:
        await self.pool.release(self.db)
        await self.pool.close()


_Side = _SQLite | _Postgres


async def _open(location: Location, *, create: bool) -> _Side:
    if isinstance(location, str):
        return await _Postgres.open(location)
    return _SQLite.open(location, create=create)


async def _copy(source: _Side, target: _Side, *, append: bool, target_name: str) -> dict[str, int]:
    await target.begin_writing()
    before = {table.name: await target.count(table) for table in TABLES}
    if not append and any(before.values()):
        held = ", ".join(f"{n} {name}" for name, n in before.items() if n)
        raise StoreError(f"{target_name} already holds rows ({held}): copy into an empty database,"
                         " or pass --append to add to it")
    await source.begin_reading()
    for table in TABLES:
        async for batch in source.rows(table):
            await target.write(table, batch, append=append)
    return {table.name: await target.count(table) - before[table.name] for table in TABLES}


async def _run(source_location: Location, target_location: Location, append: bool) -> dict[str, int]:
    source = await _open(source_location, create=False)
    try:
        target = await _open(target_location, create=True)
    except BaseException:
        await source.close()
        raise
    done = False
    try:
        copied = await _copy(source, target, append=append, target_name=shown(target_location))
        done = True
        return copied
    finally:
        await target.finish(commit=done)
        await source.finish(commit=False)
        await target.close()
        await source.close()


def copy_database(source: Location, target: Location, *, append: bool = False) -> dict[str, int]:
    """Copy every row of `source` into `target` (module docstring); the rows added, per table.
    StoreError with one line when either cannot be used or the target refuses the rows."""
    if source == target:
        raise StoreError(f"{shown(source)} is both the source and the target: name two databases")
    try:
        return asyncio.run(_run(source, target, append))
    except StoreError:
        raise
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite refused the copy: {exc}") from None
    except Exception as exc:
        url = next((str(loc) for loc in (target, source) if is_postgres(loc)), None)
        if url is None or not is_database_error(exc):
            raise
        raise StoreError(explain(url, exc)) from None
