"""The AuditStore (protocol.py) on PostgreSQL: the audit commands', the cassette commands'
and the viewer's reads, and the erase commands, synchronous as the protocol is.

asyncpg is the only PostgreSQL driver recall uses, and it is asynchronous: each PgAudit
runs a private event loop on a thread of its own and every operation is one coroutine
sent there and waited for. The caller's thread blocks as it would on sqlite3; an event
loop the caller may be running (the viewer's) is never touched.

The statements live in the pg_audit_* modules by concern (reads, search, stats, erase,
recordings); this module holds the connection and the transactions. Errors the database
raises while a command runs become records.StoreError with one line (pg_connect.explain).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from . import pg_audit_reads, pg_audit_search, pg_audit_stats, pg_erase, pg_recordings
from .pg_connect import explain, open_pool, redacted
from .recordings import Row
from .records import (
    STATS_KEYS,
    Exchange,
    Node,
    Removed,
    SearchHit,
    Served,
    StatsRow,
    StoreError,
    StreamEvent,
    ThreadKey,
    ThreadSummary,
)

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")

# Connections per PgAudit: one for an export being streamed, one for what runs beside it.
POOL_SIZE = 2
# Rows carried back per trip to the loop's thread while a stream is read.
STREAM_BATCH = 200


class _LoopThread:
    """An event loop running on a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="recall-pg-audit", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def is_database_error(exc: BaseException) -> bool:
    """Whether PostgreSQL (or the way to it) failed, rather than recall."""
    import asyncpg

    return isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError))


async def _take(items: AsyncIterator[T], size: int) -> list[T]:
    taken: list[T] = []
    while len(taken) < size:
        try:
            taken.append(await items.__anext__())
        except StopAsyncIteration:
            break
    return taken


class PgAudit:
    """The database at a postgresql:// URL as the audit commands and the viewer see it."""

    def __init__(self, url: str, loop: _LoopThread, pool: asyncpg.Pool, *, read_only: bool) -> None:
        self._url = url
        self._loop = loop
        self._pool = pool
        self._read_only = read_only

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, read_only: bool = False) -> PgAudit:
        """Connect (and migrate, under the migration lock, unless told not to); StoreError with one
        line when the database cannot be used. `read_only` runs every operation in a read-only
        transaction (the viewer's), so a bug that writes fails instead."""
        loop = _LoopThread()
        try:
            pool = loop.run(open_pool(url, min_size=1, max_size=POOL_SIZE, migrate_schema=migrate))
        except BaseException:
            loop.stop()
            raise
        return cls(url, loop, pool, read_only=read_only)

    @property
    def location(self) -> str:
        """The URL with its password hidden."""
        return redacted(self._url)

    def close(self) -> None:
        try:
            self._loop.run(self._pool.close())
        finally:
            self._loop.stop()

    # -- running an operation ---------------------------------------------------------

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`fn(connection, *args, **kwargs)` on the loop's thread, on a connection of the pool."""
        async def run() -> T:
            async with self._pool.acquire() as db:
                if self._read_only:
                    async with db.transaction(readonly=True):
                        return await fn(db, *args, **kwargs)
                return await fn(db, *args, **kwargs)
        return self._run(run())

    def _in_transaction(self, fn: Callable[..., Awaitable[T]], *args: Any, keep: bool = True) -> T:
        """`fn(connection, *args)` in one transaction: committed if it returns (rolled back if it
        raises, or always when `keep` is False: a dry run)."""
        class _DryRun(Exception):
            def __init__(self, result: Any) -> None:
                self.result = result

        async def run() -> T:
            async with self._pool.acquire() as db:
                try:
                    async with db.transaction(readonly=self._read_only):
                        result = await fn(db, *args)
                        if not keep:
                            raise _DryRun(result)
                        return result
                except _DryRun as dry:
                    kept: T = dry.result
                    return kept
        return self._run(run())

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        try:
            return self._loop.run(work)
        except Exception as exc:
            if is_database_error(exc):
                raise StoreError(explain(self._url, exc)) from None
            raise

    def _stream(self, make: Callable[[Any], AsyncIterator[T]]) -> Iterator[T]:
        """The items of `make(connection)`, fetched STREAM_BATCH at a time, the connection held
        until the last (or until the caller stops reading)."""
        async def acquire() -> Any:
            return await self._pool.acquire()

        db = self._run(acquire())
        try:
            items = make(db)
            while batch := self._run(_take(items, STREAM_BATCH)):
                yield from batch
        finally:
            self._run(self._pool.release(db))

    # -- threads and nodes --------------------------------------------------------------

    def complete_id(self, given: str) -> str:
        return self._call(pg_audit_reads.complete_id, given)

    def last_id(self) -> str | None:
        return self._call(pg_audit_reads.last_id)

    def threads(self, *, upstream: str | None = None, model: str | None = None, since: float | None = None,
                until: float | None = None, limit: int = 50, after: ThreadKey | None = None,
                status: str | None = None) -> list[ThreadSummary]:
        return self._call(pg_audit_reads.threads, upstream=upstream, model=model, since=since, until=until,
                          limit=limit, after=after, status=status)

    def node(self, interaction_id: str) -> Node | None:
        return self._call(pg_audit_reads.node, interaction_id)

    def chain(self, interaction_id: str) -> list[Node]:
        return self._call(pg_audit_reads.chain, interaction_id)

    def thread(self, thread_id: str) -> list[Node]:
        return self._call(pg_audit_reads.thread, thread_id)

    def exchanges(self, interaction_id: str) -> list[Exchange]:
        return self._call(pg_audit_reads.exchanges, interaction_id)

    def served(self, thread_id: str) -> dict[str, Served]:
        return self._call(pg_audit_reads.served, thread_id)

    def stream_events(self, interaction_id: str, after_seq: int = 0, limit: int | None = None) -> list[StreamEvent]:
        return self._call(pg_audit_reads.stream_events, interaction_id, after_seq, limit)

    def search(self, query: str, *, limit: int = 20, offset: int = 0, since: float | None = None,
               until: float | None = None, upstream: str | None = None) -> list[SearchHit]:
        """Best matches first; `query` in FTS5 syntax, matched as substrings (pg_audit_search.py)."""
        return self._call(pg_audit_search.search, query, limit=limit, offset=offset, since=since, until=until,
                          upstream=upstream)

    # -- export and stats -----------------------------------------------------------------

    def count(self, *, since: float | None = None, until: float | None = None, thread: str | None = None) -> int:
        return self._call(pg_audit_reads.count, since, until, thread)

    def export_rows(self, *, since: float | None = None, until: float | None = None,
                    thread: str | None = None) -> Iterator[Node]:
        """Nodes thread by thread (oldest thread first), parents before children, one thread a trip."""
        for root_id in self._call(pg_audit_reads.export_roots, since, until, thread):
            yield from self._call(pg_audit_reads.export_thread, since, until, root_id)

    def stats(self, *, by: tuple[str, ...] = STATS_KEYS, since: float | None = None,
              until: float | None = None) -> list[StatsRow]:
        return self._call(pg_audit_stats.stats, by=by, since=since, until=until)

    def token_usage(self, *, by: tuple[str, ...], since: float | None = None,
                    until: float | None = None) -> list[tuple[dict[str, str | None], str | None, int, int]]:
        return self._call(pg_audit_stats.token_usage, by=by, since=since, until=until)

    # -- cassettes ------------------------------------------------------------------------

    def export_recordings(self, *, thread: str | None = None, since: float | None = None,
                          upstream: str | None = None, skip_owner: str | None = None) -> Iterator[tuple[str, Row]]:
        """The recordings a cassette takes, streamed (pg_recordings.select_recordings);
        LookupError at once when `thread` names no interaction."""
        root = None
        if thread:
            root = self._call(pg_recordings.thread_root, thread)
            if root is None:
                raise LookupError(f"no interaction '{thread}' in this database")
        return self._stream(lambda db: pg_recordings.select_recordings(
            db, root=root, since=since, upstream=upstream, skip_owner=skip_owner))

    def load_recordings(self, rows: list[tuple[str, Row]], owner: str) -> dict[str, int]:
        """Load rows under `owner` in one transaction; StoreError, and nothing loaded, if the
        database refuses any of it."""
        return self._in_transaction(pg_recordings.insert_recordings, rows, owner)

    # -- erasing --------------------------------------------------------------------------

    def bytes_on_disk(self) -> int:
        """The database's size (pg_database_size): every table, index and TOAST of it."""
        return self._call(pg_erase.database_size)

    def purge_preview(self, cutoff: float) -> list[tuple[str, int, bool, str | None]]:
        return self._call(pg_audit_reads.purge_preview, cutoff)

    def _erased(self, removed: Removed) -> Removed:
        if removed.interactions or removed.exchanges or removed.threads:
            self._call(pg_erase.vacuum)
        return removed

    def rm(self, interaction_id: str) -> Removed:
        """Erase one node; its children keep their place under its tombstone."""
        return self._erased(self._in_transaction(pg_erase.erase_interactions, [interaction_id]))

    def rm_thread(self, thread_id: str) -> Removed:
        return self._erased(self._in_transaction(pg_erase.erase_thread, thread_id))

    def purge(self, cutoff: float, *, dry_run: bool = False) -> Removed:
        """Erase everything recorded before `cutoff`, one short transaction a step (a running
        server's writes go between them); `dry_run` runs every step in one transaction, rolled back."""
        purge = pg_erase.Purge(cutoff)
        if dry_run:
            async def every_step(db: asyncpg.Connection) -> Removed:
                while await purge.step(db):
                    pass
                return purge.removed
            return self._in_transaction(every_step, keep=False)
        while self._in_transaction(purge.step):
            pass
        return self._erased(purge.removed)


if TYPE_CHECKING:
    from .protocol import AuditStore

    _pgaudit_is_a_auditstore: type[AuditStore] = PgAudit
