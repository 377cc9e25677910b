"""The single owner of every write: a task that commits queued writes in groups.

One aiosqlite connection shared by concurrent handlers would interleave their
transactions. Instead every write is a small function queued here; the writer
takes everything queued so far, runs it in one transaction in one trip to the
database thread (group commit), and resolves each caller's future. A failing
write is rolled back to its own savepoint and fails only its own caller.
Deletes go through the same queue, so they are ordered behind pending writes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import aiosqlite

from .threads import on_thread

WriteOp = Callable[[sqlite3.Connection], Any]

log = logging.getLogger("recall")


class StoreUnavailable(Exception):
    """The database cannot take a write now (disk full, out of file descriptors, locked
    past the busy timeout, an I/O error): the machine's trouble, not the request's."""

    # When each cause was last logged: once a minute is enough for an operator.
    _reported: dict[str, float] = {}

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause

    def report(self) -> None:
        """Log it, once per cause per minute (not a traceback per request)."""
        now = time.monotonic()
        if now - self._reported.get(self.cause, -60.0) >= 60.0:
            StoreUnavailable._reported[self.cause] = now
            log.error("recall cannot write its database: %s (said once a minute while it lasts)", self.cause)


def _unavailable(exc: BaseException) -> BaseException:
    """A database error the machine caused, as StoreUnavailable; any other error as it is."""
    if isinstance(exc, sqlite3.OperationalError | OSError):
        return StoreUnavailable(str(exc) or type(exc).__name__)
    return exc

_MAX_BATCH = 512


def _run_batch(db: sqlite3.Connection, ops: list[WriteOp]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for op in ops:
            db.execute("SAVEPOINT op")
            try:
                outcomes.append((True, op(db)))
                db.execute("RELEASE op")
            except Exception as exc:  # one bad write must not sink the batch
                db.execute("ROLLBACK TO op")
                db.execute("RELEASE op")
                outcomes.append((False, exc))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes


class Writer:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._queue: asyncio.Queue[tuple[WriteOp, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="recall-store-writer")

    def submit(self, op: WriteOp) -> asyncio.Future[Any]:
        """Queue a write; the future resolves once it is committed."""
        if self._task is None or self._task.done():
            raise RuntimeError("the store's writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        return future

    async def stop(self) -> None:
        """Commit everything queued so far, then end the task."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def _loop(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < _MAX_BATCH and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[WriteOp, asyncio.Future[Any]]]) -> None:
        ops = [op for op, _ in batch]
        try:
            # The whole group is one hop to the database thread and one transaction, not one per statement.
            outcomes = await on_thread(self._connection, _run_batch, self._connection._conn, ops)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(_unavailable(exc))
            return
        for (ok, value), (_, future) in zip(outcomes, batch, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(_unavailable(value))
