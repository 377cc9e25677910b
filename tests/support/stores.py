"""Both server stores behind one face, for tests that hold every backend to the same contract.

`Backend.open()` opens a fresh store of its kind on the same database every time it is
called (so a second call is a second instance); `query` reads that database directly, its
SQL written with `?` markers (PostgreSQL's `$n` are made from them).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.store.postgres import PostgresStore
from proxy.store.protocol import Store
from proxy.store.sqlite import SQLiteStore


def dollar_markers(sql: str) -> str:
    """`?` markers as PostgreSQL's `$1, $2, …`."""
    count = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


@dataclass
class Backend:
    name: str
    location: str | Path

    @property
    def postgres(self) -> bool:
        return self.name == "postgres"

    async def open(self, **options: Any) -> Store:
        if self.postgres:
            return await PostgresStore.open(str(self.location), **options)
        return await SQLiteStore.open(Path(self.location), **options)

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.postgres:
            import asyncpg

            db = await asyncpg.connect(str(self.location))
            try:
                return [tuple(row) for row in await db.fetch(dollar_markers(sql), *params)]
            finally:
                await db.close()
        with sqlite3.connect(self.location) as db:
            return db.execute(sql, params).fetchall()

    async def execute(self, sql: str, *params: Any) -> None:
        if self.postgres:
            import asyncpg

            db = await asyncpg.connect(str(self.location))
            try:
                await db.execute(dollar_markers(sql), *params)
            finally:
                await db.close()
            return
        with sqlite3.connect(self.location) as db:
            db.execute(sql, params)
