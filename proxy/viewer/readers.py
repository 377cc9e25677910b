"""Read-only connections for the viewer, off the event loop.

The audit queries (proxy.audit.queries) are synchronous. Each reader here is
an aiosqlite connection, which runs its statements on a thread of its own:
a slow query (stats over a big file) never stalls the proxy, and the proxy's
own reader (state lookups on the request path) never waits behind the viewer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from ..audit.queries import AuditDB

T = TypeVar("T")

# Two, so that one slow query (stats) does not hold up the page's other requests.
READERS = 2
BUSY_TIMEOUT_S = 10.0


class Readers:
    """A small pool of read-only connections to one database file."""

    def __init__(self, path: Path, connections: list[aiosqlite.Connection]) -> None:
        self.path = path
        self._connections = connections
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for connection in connections:
            self._idle.put_nowait(connection)

    @classmethod
    async def open(cls, path: Path, size: int = READERS) -> Readers:
        """Connect to an existing, migrated database (the server's store or AuditDB.open made it so)."""
        connections = []
        try:
            for _ in range(size):
                connection = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
                connections.append(connection)
                # The viewer only reads: make a bug that tries to write fail loudly instead.
                await connection.execute("PRAGMA query_only=ON")
        except BaseException:
            for connection in connections:
                await connection.close()
            raise
        return cls(path, connections)

    async def run(self, query: Callable[[AuditDB], T]) -> T:
        """Run `query` against an idle connection, on that connection's thread."""
        connection = await self._idle.get()
        try:
            # aiosqlite's own way to run a function on its thread (SQLiteStore does the same); it is
            # untyped, so its type is said here.
            on_its_thread: Callable[[Callable[[AuditDB], T], AuditDB], Awaitable[T]] = connection._execute
            return await on_its_thread(query, AuditDB(connection._conn, self.path))
        finally:
            self._idle.put_nowait(connection)

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()
