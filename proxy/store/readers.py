"""Readers for the viewer's reads (the AuditStore's), off the event loop.

The AuditStore's reads are synchronous. On a SQLite file each reader here is an aiosqlite
connection, which runs its statements on a thread of its own: a slow query (stats over a
big file) never stalls the proxy, and the proxy's own reader (state lookups on the request
path) never waits behind the viewer. On PostgreSQL each reader is a read-only PgAudit
(its own loop and thread), called from a worker thread so the viewer's loop never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import aiosqlite

from .audit_db import AuditDB
from .locations import Location, shown
from .protocol import AuditStore
from .threads import on_thread

T = TypeVar("T")

# Two, so that one slow query (stats) does not hold up the page's other requests.
READERS = 2
BUSY_TIMEOUT_S = 10.0


class _Reader(Protocol):
    async def run(self, query: Callable[[AuditStore], T]) -> T: ...

    async def close(self) -> None: ...


class _SQLiteReader:
    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._connection = connection
        self._path = path

    @classmethod
    async def open(cls, path: Path) -> _SQLiteReader:
        connection = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        try:
            # The viewer only reads: make a bug that tries to write fail loudly instead.
            await connection.execute("PRAGMA query_only=ON")
        except BaseException:
            await connection.close()
            raise
        return cls(connection, path)

    async def run(self, query: Callable[[AuditStore], T]) -> T:
        return await on_thread(self._connection, query, AuditDB(self._connection._conn, self._path))

    async def close(self) -> None:
        await self._connection.close()


class _PgReader:
    def __init__(self, audit: AuditStore) -> None:
        self._audit = audit

    @classmethod
    async def open(cls, url: str) -> _PgReader:
        from .pg_audit import PgAudit  # asyncpg is only needed for a postgresql:// location

        # Migrated already: by the server that mounts the viewer, or by `recall ui`'s check.
        return cls(await asyncio.to_thread(PgAudit.open, url, migrate=False, read_only=True))

    async def run(self, query: Callable[[AuditStore], T]) -> T:
        return await asyncio.to_thread(query, self._audit)

    async def close(self) -> None:
        await asyncio.to_thread(self._audit.close)


class Readers:
    """A small pool of readers of one database, each used by one query at a time."""

    def __init__(self, location: str, readers: list[_Reader]) -> None:
        self.location = location
        self._readers = readers
        self._idle: asyncio.Queue[_Reader] = asyncio.Queue()
        for reader in readers:
            self._idle.put_nowait(reader)

    @classmethod
    async def open(cls, location: Location, size: int = READERS) -> Readers:
        """Readers of an existing, migrated database: a SQLite file's Path, or a postgresql:// URL
        as a str (the server's store or the command that checked it made it so)."""
        readers: list[_Reader] = []
        try:
            for _ in range(size):
                reader: _Reader = (await _PgReader.open(location) if isinstance(location, str)
                                   else await _SQLiteReader.open(location))
                readers.append(reader)
        except BaseException:
            for opened in readers:
                await opened.close()
            raise
        return cls(shown(location), readers)

    async def run(self, query: Callable[[AuditStore], T]) -> T:
        """Run `query` on an idle reader, off the event loop."""
        reader = await self._idle.get()
        try:
            return await reader.run(query)
        finally:
            self._idle.put_nowait(reader)

    async def close(self) -> None:
        for reader in self._readers:
            await reader.close()
