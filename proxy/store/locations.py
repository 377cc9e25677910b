"""Where a database is, and opening it: a SQLite file (a Path) or a PostgreSQL database (its
postgresql:// URL, a str). The command line decides which a user's text names
(cli/common.py parse_location); `open_audit` gives the AuditStore of either, `migrate` brings
either's schema to this version and says what it applied (`recall db migrate`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from .audit_db import AuditDB
from .pg_connect import explain, open_pool, redacted
from .pg_migrations import PG_MIGRATIONS
from .pg_migrations import migrate as migrate_postgres
from .protocol import AuditStore
from .records import StoreError
from .sqlite import open_private

# A SQLite file's path, or a PostgreSQL database's URL.
Location = Path | str


def is_postgres(location: Location) -> bool:
    return isinstance(location, str)


def shown(location: Location) -> str:
    """The location for messages: a URL's password hidden."""
    return redacted(location) if isinstance(location, str) else str(location)


def open_audit(location: Location, *, create: bool = False, read_only: bool = False) -> AuditStore:
    """The AuditStore of a location, its schema migrated. For a file: FileNotFoundError when it
    is missing, unless `create` makes it (private to its owner); StoreError when it is not a
    recall database. For a URL: StoreError with one line when it cannot be used."""
    if isinstance(location, str):
        from .pg_audit import PgAudit  # asyncpg is only needed for a postgresql:// location

        return PgAudit.open(location, read_only=read_only)
    return AuditDB.open(location, create=create)


def _sqlite_migrations(path: Path) -> list[str]:
    """The names of the migrations a SQLite file records (none for a new file)."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT name FROM schema_migrations ORDER BY version")]
    except sqlite3.DatabaseError:
        return []  # not migrated yet, or not a database (AuditDB.open says which)
    finally:
        db.close()


async def _migrate_postgres(url: str) -> list[str]:
    pool = await open_pool(url, min_size=1, max_size=1, migrate_schema=False)
    try:
        async with pool.acquire() as db:
            return await migrate_postgres(db)
    except Exception as exc:
        raise StoreError(explain(url, exc)) from None
    finally:
        await pool.close()


def migrate(location: Location) -> tuple[list[str], int]:
    """Bring the database's schema to this version (creating a missing SQLite file): the names
    of the migrations applied now (none when it was up to date) and the version it is at."""
    if isinstance(location, str):
        return asyncio.run(_migrate_postgres(location)), len(PG_MIGRATIONS)
    path = location
    before = _sqlite_migrations(path)
    open_private(path)
    AuditDB.open(path).close()
    after = _sqlite_migrations(path)
    return [name for name in after if name not in before], len(after)
