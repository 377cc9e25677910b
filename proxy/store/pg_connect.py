"""Reaching a PostgreSQL database: a migrated connection pool, and one clear line when it fails.

asyncpg is an optional dependency (`pip install 'recall-proxy[postgres]'`): it is imported
here, when a postgresql:// URL is used, never by a recall on SQLite.

Behind PgBouncer in transaction mode, prepared statements cannot be cached per
connection: add `?statement_cache_size=0` to the URL (read here, not by asyncpg's DSN
parser, which does not know it).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .pg_migrations import SchemaTooNew, migrate
from .records import StoreError

if TYPE_CHECKING:
    import asyncpg

# Options recall reads off the URL's query and passes to asyncpg itself.
_RECALL_OPTIONS = ("statement_cache_size",)
CONNECT_TIMEOUT_S = 10.0


def redacted(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def connect_options(url: str) -> tuple[str, dict[str, Any]]:
    """The DSN asyncpg is given, and the options recall read off the URL for it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {key: int(value) for key, value in query if key in _RECALL_OPTIONS}
    rest = [(key, value) for key, value in query if key not in _RECALL_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(rest))), options


def _import_asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:
        raise StoreError("a postgresql:// database needs asyncpg: pip install 'recall-proxy[postgres]'") from None
    return asyncpg


def explain(url: str, exc: BaseException) -> str:
    """One line on why the database at `url` cannot be used, and what to do."""
    where = redacted(url)
    asyncpg = _import_asyncpg()
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f"PostgreSQL at {where} refused the password: check the user and password in the URL"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"PostgreSQL at {where}: the database does not exist: create it (createdb) or fix the URL"
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return f"PostgreSQL at {where}: the user may not use this database ({exc}): grant it or use its owner"
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror, TimeoutError, asyncio.TimeoutError, OSError)):
        return f"cannot reach PostgreSQL at {where} ({exc or type(exc).__name__}): is it running, and is the host right?"
    if isinstance(exc, SchemaTooNew):
        return f"PostgreSQL at {where}: {exc}"
    return f"PostgreSQL at {where}: {type(exc).__name__}: {exc}"


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10, migrate_schema: bool = True,
                    command_timeout: float | None = None) -> asyncpg.Pool:
    """A pool on the database at `url`, its schema migrated (under the migration lock) unless
    told not to. Raises StoreError with one line (explain) when it cannot be used.
    `command_timeout`: how long one statement may take before it fails (asyncpg's)."""
    asyncpg = _import_asyncpg()
    dsn, options = connect_options(url)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, timeout=CONNECT_TIMEOUT_S,
                                         command_timeout=command_timeout, **options)
    except Exception as exc:  # asyncpg raises OS, timeout and server errors alike at connect
        raise StoreError(explain(url, exc)) from None
    if migrate_schema:
        try:
            async with pool.acquire() as db:
                await migrate(db)
        except Exception as exc:
            await pool.close()
            raise StoreError(explain(url, exc)) from None
    return pool
