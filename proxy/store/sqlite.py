"""The SQLite store (the Store protocol on one file): interaction nodes, audit exchanges,
stream events and conversations, and the queries on them.

Writes go through one Writer (group commit); reads use a second connection,
which WAL lets run beside the writer. A node stores only its own new input and
its output; a conversation's history is rebuilt by one recursive query over
parent pointers, so storage grows linearly with a conversation. The statements of
conversations, run leases, erasing and recordings are in modules of their own
(conversations.py, run_leases.py, erase.py, recordings.py); this class runs them.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite
import orjson

from ..files import create_private
from ..model import IN_PROGRESS, Interaction
from . import conversations, run_leases
from .chain_cache import RECENT_PER_THREAD, ChainCache, last_of_threads, warm
from .erase import Purge, erase_interactions, is_erased, merge_search_index_step, vacuum_step
from .migrations import migrate
from .preflight import BUSY_TIMEOUT_S, PageCheck, check_database
from .recordings import Row, insert_recordings
from .records import Conversation, Exchange, Removed, StoreError
from .rows import (
    EXCHANGE_COLUMNS,
    INTERACTION_COLUMNS,
    chain_query,
    dumps,
    exchange_from_row,
    insert_exchange,
    interaction_from_row,
    recent_nodes_query,
    turns_json,
)
from .search import index_interaction
from .threads import on_thread
from .writer import StoreUnavailable, Writer

log = logging.getLogger("recall")

# How long the server's writer waits for another process's write transaction before it gives up (503).
WRITER_BUSY_TIMEOUT_S = 15.0
# The WAL is checkpointed (beside the writer) when it has grown past this, looked at this often.
_CHECKPOINT_AT_BYTES = 4 * 1024 * 1024
_CHECKPOINT_EVERY_S = 1.0


def open_private(path: Path) -> None:
    """Create the database file readable by its owner only (SQLite gives the WAL and
    SHM files the database's mode), in a directory of the owner's if recall makes it."""
    create_private(path)


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a database (SQLite's online backup), private to its owner.

    SQLite only, like check_database: replay mode serves a copy of the file it is given."""
    open_private(target)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _prepare(db: sqlite3.Connection) -> None:
    # Only takes effect on a new, empty file; erase.reclaim_space converts older ones.
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    # The foreign keys migration m010 declares are for tools that read the file; enforcing them
    # would refuse cassettes whose threads were cut by --since (see its docstring).
    db.execute("PRAGMA foreign_keys=OFF")
    # Deleted content is overwritten, not just unlinked: a delete must take the
    # text out of the file for real.
    db.execute("PRAGMA secure_delete=ON")
    migrate(db)


def open_sync(path: Path, *, busy_timeout_s: float = 10.0) -> sqlite3.Connection:
    """A plain synchronous connection, migrated, for the command line.

    The path must exist: a typo must not create an empty database. A running
    server may be writing at the same time; waits up to `busy_timeout_s` for it.
    """
    if not path.is_file():
        raise FileNotFoundError(path)
    db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s)
    _prepare(db)
    return db


_CHAIN = chain_query("?")
_RECENT_NODES = recent_nodes_query("?", "?")

async def _fetch(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """A query's rows, read on the connection's thread in one trip."""
    return list(await db.execute_fetchall(sql, params))


def _insert_frames(db: sqlite3.Connection, interaction_id: str,
                   frames: list[tuple[int, str | None, float, bytes]]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO stream_events (interaction_id, seq, event_id, at_ms, frame) VALUES (?,?,?,?,?)",
        [(interaction_id, *row) for row in frames],
    )


# A turn's end, written over its in-progress row: only what a run changes (its place in the
# tree, owner and creation stay). Not over a tombstone (a delete wins) nor an ended row.
_END_IN_PLACE = (
    "UPDATE interactions SET model = ?, status = ?, input = ?, output = ?, request = ?, usage = ?, error = ?,"
    " provider_id = ?, updated_at = ?, run_id = ?, input_tokens = ?, output_tokens = ?, run_owner = NULL,"
    f" lease_until = NULL WHERE id = ? AND status = '{IN_PROGRESS}' AND deleted_at IS NULL"
)


def _ended_in_place(db: sqlite3.Connection, it: Interaction) -> bool:
    """Whether `it` (ended) was written over its in-progress row; False when there is none."""
    return db.execute(_END_IN_PLACE, (
        it.model, it.status, turns_json(it.input), turns_json(it.output), dumps(it.request),
        dumps(it.usage.to_json()), it.error, it.provider_id, it.updated, it.run_id,
        it.usage.input_tokens, it.usage.output_tokens, it.id,
    )).rowcount == 1


class SQLiteStore:
    """The Store (proxy/store/protocol.py) on one SQLite file."""

    def __init__(self, path: Path, writer_db: aiosqlite.Connection, reader_db: aiosqlite.Connection) -> None:
        self.path = path
        self._writer_db = writer_db
        self._reader = reader_db
        self._writer = Writer(writer_db)
        self._chains = ChainCache()
        self._version = 0  # the last outside version seen (see chain)
        # The start's warming of the chain cache (open's warm_chains), while it runs and after; its connection.
        self.warming: asyncio.Task[None] | None = None
        self._warm_db: aiosqlite.Connection | None = None
        # This process's name on the in-progress nodes it runs (see m009_run_leases).
        self.instance = run_leases.new_instance()
        # The run-lease heartbeat and the WAL checkpointer.
        self._background: list[asyncio.Task[None]] = []
        self._page_check: PageCheck | None = None
        # Nodes whose end could not be written (the database refused): failed once it can (id -> why).
        self._unsaved: dict[str, str] = {}
        # The replay session's count of identical requests served (one process: in memory).
        self._served: Counter[str] = Counter()

    @property
    def location(self) -> Path:
        return self.path

    @classmethod
    async def open(cls, path: str | Path, *, warm_chains: int = 0) -> SQLiteStore:
        """Open (creating and migrating) the file; `warm_chains`: how many recently active threads'
        chains are read into the chain cache in the background (0: none)."""
        path = Path(path)
        try:
            open_private(path)
        except OSError as exc:
            raise StoreError(f"{path} cannot be created ({exc.strerror}); check that its directory is"
                             " writable, or pass --db with another path") from None
        # The same patience as the writer's: a lock that outlasts it would fail the first write anyway.
        pages_later = check_database(path, busy_timeout_s=WRITER_BUSY_TIMEOUT_S)
        # Each aiosqlite connection runs a thread that is not a daemon: one left open by a
        # failure here would keep the process from exiting. Close what was opened, then raise.
        opened: list[aiosqlite.Connection] = []
        try:
            # The writer waits for a lock held by another process (a CLI erase step) rather than failing.
            writer_db = await aiosqlite.connect(path, isolation_level=None, timeout=WRITER_BUSY_TIMEOUT_S)
            opened.append(writer_db)
            await on_thread(writer_db, _prepare, writer_db._conn)
            # The WAL is copied into the database by a connection of its own (_checkpoints), never
            # inside a commit: a checkpoint there would hold up every request's write behind it.
            await writer_db.execute("PRAGMA wal_autocheckpoint = 0")
            reader_db = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            opened.append(reader_db)
            await reader_db.execute("PRAGMA query_only=ON")
            checkpointer = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
            opened.append(checkpointer)
            # The warm's reads go beside the request path's reader, never ahead of it in its queue.
            warm_db = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S) if warm_chains else None
            if warm_db is not None:
                opened.append(warm_db)
                await warm_db.execute("PRAGMA query_only=ON")
        except BaseException as exc:
            for db in opened:
                await db.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{path} cannot be used: {exc}") from None
            raise
        store = cls(path, writer_db, reader_db)
        store._writer.start()
        await store._fail_interrupted()
        store._background = [asyncio.create_task(store._keep_leases(), name="recall-run-leases"),
                             asyncio.create_task(store._checkpoints(checkpointer), name="recall-wal-checkpoints")]
        if pages_later:
            store._page_check = PageCheck(path)
            store._background.append(asyncio.create_task(store._check_pages(store._page_check),
                                                         name="recall-page-check"))
        if warm_db is not None:
            store._warm_db = warm_db
            store.warming = asyncio.create_task(store._warm_chains(warm_db, warm_chains), name="recall-warm-chains")
            store._background.append(store.warming)
        return store

    async def _warm_chains(self, reader: aiosqlite.Connection, count: int) -> None:
        """The chains of the `count` most recently active threads, read into the chain cache on a
        connection of its own (closed when done, or by close); best effort."""
        try:
            recent = await _fetch(reader, _RECENT_NODES, (IN_PROGRESS, count * RECENT_PER_THREAD))
            leaves = last_of_threads(recent, count)

            async def read(leaf: str) -> tuple[int, list[Any]]:
                version = await self._outside_version()
                return version, await _fetch(reader, _CHAIN, (leaf,))

            warmed = await warm(self._chains, leaves, read)
            log.debug("warmed the chains of %d recently active threads", warmed)
        except sqlite3.Error as exc:
            log.debug("chains not warmed: %s", exc)
        finally:
            await reader.close()

    async def _check_pages(self, check: PageCheck) -> None:
        """A large file's pages, checked once recall is listening (preflight: start-up stays under a
        second at any size). Corruption found this way is logged in one line; the requests that meet
        it fail on their own (a 503 for a write the database refuses)."""
        problem = await asyncio.to_thread(check.run)
        if problem is not None:
            log.error("%s", problem)

    async def close(self) -> None:
        if self._page_check is not None:
            self._page_check.stop()  # its thread would otherwise hold the process until the whole file is read
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._warm_db is not None:  # closed by the warm when it ran to its end; not if it never began
            await self._warm_db.close()
        await self._writer.stop()
        await self._reader.close()
        await self._writer_db.close()

    async def _checkpoints(self, checkpointer: aiosqlite.Connection) -> None:
        """Copy the WAL into the database once it has grown, beside the writer, never in its way
        (PASSIVE: no reader or writer waits for it). Owns, and at the end closes, its connection."""
        wal = Path(f"{self.path}-wal")
        try:
            while True:
                await asyncio.sleep(_CHECKPOINT_EVERY_S)
                try:
                    if wal.stat().st_size >= _CHECKPOINT_AT_BYTES:
                        await checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except (OSError, sqlite3.Error):
                    continue  # the next look tries again
        finally:
            await checkpointer.close()

    async def _fail_interrupted(self) -> None:
        """Interactions left in progress by a recall that is gone can never finish: mark
        them failed. Those of a recall still running on this file (its lease is current) are
        its own; a recall of this machine whose process has ended is gone at once, lease or not."""
        await self._writer.submit(lambda db: run_leases.fail_interrupted(db, self.instance))

    async def fail_unsaved(self, interaction_id: str, reason: str) -> None:
        """A turn whose end the database refused: failed with `reason` now if it takes that
        write, else on a later beat (its lease is no longer renewed meanwhile)."""
        self._unsaved[interaction_id] = reason
        try:
            await self._fail_unsaved()
        except StoreUnavailable:
            pass

    async def _fail_unsaved(self) -> None:
        if not self._unsaved:
            return
        failing = dict(self._unsaved)
        await self._writer.submit(lambda db: run_leases.fail_running(db, failing))
        for interaction_id in failing:
            self._unsaved.pop(interaction_id, None)

    async def running_elsewhere(self, interaction_id: str) -> bool:
        rows = await self._read(
            "SELECT 1 FROM interactions WHERE id = ? AND status = ? AND run_owner IS NOT ? AND lease_until >= ?",
            (interaction_id, IN_PROGRESS, self.instance, time.time()))
        return bool(rows)

    async def request_cancel(self, interaction_id: str) -> bool:
        """A file has no channel between processes: a run is cancelled by the recall that runs it."""
        return False

    def watch_cancels(self, cancel: Callable[[str], Awaitable[object]]) -> None:
        """Nothing to watch: no other process asks this one to cancel (see request_cancel)."""

    async def _keep_leases(self) -> None:
        """Renew the leases of this process's runs, and fail the runs of a recall that died."""
        while True:
            await asyncio.sleep(run_leases.HEARTBEAT_S)
            try:
                await self._fail_unsaved()
                await self._writer.submit(lambda db: run_leases.renew_leases(db, self.instance))
                await self._fail_interrupted()
            except (StoreUnavailable, sqlite3.Error, RuntimeError):
                continue  # the next beat tries again; a lease is three beats long

    # -- writes ---------------------------------------------------------------

    async def save_interaction(self, it: Interaction, exchange: Exchange | None = None,
                               frames: list[tuple[int, str | None, float, bytes]] | None = None) -> bool:
        """Insert or replace a node (and its exchange and last stream events); returns once committed.

        A node erased meanwhile (its turn deleted while it ran) stays erased: nothing
        of it is written, and the answer is False."""

        def op(db: sqlite3.Connection) -> bool:
            if it.status != IN_PROGRESS and _ended_in_place(db, it):
                # The usual end of a turn admitted in progress: one UPDATE, no lookups.
                index_interaction(db, it.id, it.input, it.output, new=True)
                _and_its_records(db)
                return True
            if is_erased(db, it.id):
                return False
            depth = 0
            root_id = it.root_id or it.id
            if it.parent_id:
                found = db.execute(
                    "SELECT root_id, depth FROM interactions WHERE id = ?", (it.parent_id,)
                ).fetchall()
                if found:
                    root_id, depth = found[0][0], found[0][1] + 1
            it.root_id = root_id
            running = it.status == IN_PROGRESS
            db.execute(
                f"INSERT OR REPLACE INTO interactions ({INTERACTION_COLUMNS}, input_tokens, output_tokens,"
                " run_owner, lease_until) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    it.id, it.owner, it.upstream, it.front, it.mode, it.model, it.status, it.parent_id, root_id,
                    depth, turns_json(it.input), turns_json(it.output), dumps(it.request),
                    dumps(it.usage.to_json()), it.error, it.provider_id, it.created, it.updated, it.run_id,
                    it.usage.input_tokens, it.usage.output_tokens,
                    self.instance if running else None, time.time() + run_leases.RUN_LEASE_S if running else None,
                ),
            )
            if not running:
                # Indexed once, when it ends (a turn is saved in progress first, then ended):
                # a running turn is found by `recall search` when it has ended.
                index_interaction(db, it.id, it.input, it.output)
            _and_its_records(db)
            return True

        def _and_its_records(db: sqlite3.Connection) -> None:
            if exchange is not None:
                exchange.interaction_id = it.id
                insert_exchange(db, exchange)
            if frames:
                _insert_frames(db, it.id, frames)

        saved: bool = await self._writer.submit(op)
        if saved and it.status != IN_PROGRESS:
            # The next turn most likely continues this one: its chain is its parent's plus itself.
            self._chains.extend(it, self._version)
        return saved

    async def load_recordings(self, rows: list[tuple[str, Row]], owner: str) -> dict[str, int]:
        """Load recorded rows under `owner` in one commit (recordings.insert_recordings says how)."""
        counts: dict[str, int] = await self._writer.submit(lambda db: insert_recordings(db, rows, owner))
        return counts

    async def record_exchange(self, exchange: Exchange) -> None:
        """Record an exchange, unless the node it belongs to was erased (a delete always wins)."""

        def op(db: sqlite3.Connection) -> None:
            if not (exchange.interaction_id and is_erased(db, exchange.interaction_id)):
                insert_exchange(db, exchange)

        await self._writer.submit(op)

    async def discard_unstarted(self, interaction_id: str) -> None:
        """Remove a node saved in progress whose turn never started (the provider refused it).

        Its id never reached the app, so nothing can refer to it: the row goes entirely."""
        await self._writer.submit(lambda db: db.execute(
            "DELETE FROM interactions WHERE id = ? AND status = ?", (interaction_id, IN_PROGRESS)))

    async def delete_interaction(self, interaction_id: str) -> bool:
        """Erase a node's content and every exchange that holds it.

        The row stays as a content-free tombstone so that its children keep
        their place in the tree; their history skips the erased turn.
        """
        removed: Removed = await self._writer.submit(lambda db: erase_interactions(db, [interaction_id]))
        self._chains.clear()
        await self._merge_search_index(removed)
        await self._scrub_wal()
        return removed.interactions > 0

    async def purge_older_than(self, cutoff: float) -> Removed:
        """Erase everything recorded before `cutoff` (epoch seconds) and free the space.

        In short steps queued behind the requests' writes: a purge of any size never
        holds the database for long, whatever is being served meanwhile."""
        purge = Purge(cutoff)
        while await self._writer.submit(purge.step):
            self._chains.clear()
        self._chains.clear()
        await self._merge_search_index(purge.removed)
        # Outside the writer's transactions, between its batches, on the same connection.
        while await on_thread(self._writer_db, vacuum_step, self._writer_db._conn):
            pass
        await self._scrub_wal()
        return purge.removed

    async def _merge_search_index(self, removed: Removed) -> None:
        """After an erase, the search index merged in short writer jobs (requests' writes go between)."""
        if removed.interactions:
            while await self._writer.submit(merge_search_index_step):
                pass

    async def _scrub_wal(self) -> None:
        """Fold the WAL into the database and truncate it: old page images in the
        WAL would otherwise still hold erased content until the next checkpoint."""
        # One trip, so that no statement of it is still open when the writer's next batch begins.
        await on_thread(self._writer_db, lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(),
                        self._writer_db._conn)

    def append_frames(self, interaction_id: str, frames: list[tuple[int, str | None, float, bytes]]) -> asyncio.Future[None]:
        """Queue stream events (seq, event id, ms since start, bytes); the future resolves on commit.

        Not awaited by the stream it comes from: events are written behind the
        stream in small batches, so relaying never waits on the disk."""

        def op(db: sqlite3.Connection) -> None:
            if not is_erased(db, interaction_id):  # deleted while it streamed: its events are not kept
                _insert_frames(db, interaction_id, frames)

        return self._writer.submit(op)

    # -- reads ----------------------------------------------------------------

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run a query to its last row in one trip to the reader's thread.

        A cursor left open across an await keeps its connection's read
        transaction, and so its snapshot, open; under load, overlapping cursors
        of concurrent requests would keep one snapshot open indefinitely, and a
        turn committed a moment ago would not be found. One trip per query
        starts each read from the latest commit (read-your-writes)."""

        def run(db: sqlite3.Connection) -> list[Any]:
            cursor = db.execute(sql, params)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()

        return await on_thread(self._reader, run, self._reader._conn)

    async def stream_frames(self, interaction_id: str, after_seq: int = 0,
                            limit: int | None = None) -> list[tuple[int, bytes]]:
        """Recorded stream events after `after_seq`, in order: (seq, frame bytes); at most `limit`."""
        rows = await self._read(
            "SELECT seq, frame FROM stream_events WHERE interaction_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (interaction_id, after_seq, -1 if limit is None else limit),
        )
        return [(row[0], row[1]) for row in rows]

    async def event_seq(self, interaction_id: str, event_id: str) -> int | None:
        rows = await self._read(
            "SELECT seq FROM stream_events WHERE interaction_id = ? AND event_id = ?", (interaction_id, event_id)
        )
        return rows[0][0] if rows else None

    async def get_interaction(self, interaction_id: str) -> Interaction | None:
        """A live (not deleted) node by id, or None."""
        rows = await self._read(
            f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE id = ? AND deleted_at IS NULL",
            (interaction_id,),
        )
        return interaction_from_row(rows[0]) if rows else None

    async def get_interaction_by_run(self, run_id: str) -> Interaction | None:
        """A live node by the run id its front API names it by (Parallel's `run_id`), or None."""
        rows = await self._read(
            f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE run_id = ? AND deleted_at IS NULL",
            (run_id,),
        )
        return interaction_from_row(rows[0]) if rows else None

    async def _outside_version(self) -> int:
        """Changes when another process commits to the file (this process's writes leave it alone)."""
        rows = await on_thread(self._writer_db, lambda: self._writer_db._conn.execute("PRAGMA data_version").fetchall())
        return int(rows[0][0]) if rows else 0

    async def chain(self, interaction_id: str) -> list[Interaction]:
        """The conversation from its root to this node, oldest first, erased nodes skipped."""
        version = self._version = await self._outside_version()
        cached = self._chains.get(interaction_id, version)
        if cached is not None:
            return cached
        chain = await self._query_chain(interaction_id)
        if chain and chain[-1].id == interaction_id:
            self._chains.put(interaction_id, version, chain)
        return list(chain)

    async def _query_chain(self, interaction_id: str) -> list[Interaction]:
        rows = await self._read(_CHAIN, (interaction_id,))
        return [interaction_from_row(row) for row in rows]

    async def recordings(self, cache_key: str) -> list[Exchange]:
        """Recorded answers to requests with this replay key, oldest first (replays are not recordings)."""
        return await self._exchanges(
            "cache_key = ? AND stored = 1 AND status IS NOT NULL AND (cache IS NULL OR cache != 'hit') ORDER BY id",
            (cache_key,),
        )

    async def next_replay(self, cache_key: str) -> int:
        nth = self._served[cache_key]
        self._served[cache_key] += 1
        return nth

    async def recent_requests(self, upstream: str, limit: int) -> list[Exchange]:
        return await self._exchanges(
            "upstream = ? AND stored = 1 AND cache_key IS NOT NULL ORDER BY id DESC LIMIT ?", (upstream, limit)
        )

    async def stream_frames_timed(self, interaction_id: str) -> list[tuple[float, bytes]]:
        rows = await self._read(
            "SELECT at_ms, frame FROM stream_events WHERE interaction_id = ? ORDER BY seq", (interaction_id,)
        )
        return [(row[0], row[1]) for row in rows]

    async def _exchanges(self, where: str, params: tuple[Any, ...]) -> list[Exchange]:
        rows = await self._read(f"SELECT {EXCHANGE_COLUMNS} FROM exchanges WHERE {where}", params)
        return [exchange_from_row(r) for r in rows]

    # -- conversations (OpenAI Conversations API) ------------------------------

    async def create_conversation(self, conversation: Conversation, items: list[tuple[str, Any]]) -> None:
        """Insert a conversation and its first items (item id, item JSON), in one commit."""
        await self._writer.submit(lambda db: conversations.insert_conversation(db, conversation, items))

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        rows = await self._read(conversations.SELECT_CONVERSATION, (conversation_id,))
        return conversations.conversation_from_row(rows[0]) if rows else None

    async def update_conversation(self, conversation_id: str, metadata: dict[str, Any]) -> None:
        now = time.time()
        await self._writer.submit(lambda db: conversations.update_metadata(db, conversation_id, metadata, now))

    async def delete_conversation(self, conversation_id: str) -> None:
        """Erase a conversation, every item in it and the recorded calls made on it, from the file."""
        await self._writer.submit(lambda db: conversations.delete_conversation(db, conversation_id))
        await self._scrub_wal()

    async def append_conversation_items(self, conversation_id: str, items: list[tuple[str, Any]]) -> None:
        now = time.time()
        await self._writer.submit(lambda db: conversations.append_items(db, conversation_id, items, now))

    async def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        """A conversation's items, oldest first."""
        rows = await self._read(conversations.SELECT_ITEMS, (conversation_id,))
        return [orjson.loads(row[0]) for row in rows]

    async def delete_conversation_item(self, conversation_id: str, item_id: str) -> bool:
        deleted = bool(await self._writer.submit(lambda db: conversations.delete_item(db, conversation_id, item_id)))
        await self._scrub_wal()
        return deleted


if TYPE_CHECKING:
    from .protocol import Store

    # mypy holds SQLiteStore to the protocol here (tests/test_store_boundary.py checks the signatures at run time).
    _sqlitestore_is_a_store: type[Store] = SQLiteStore
