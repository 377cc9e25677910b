"""How many requests recall takes at once, so that it never runs out of file descriptors.

Each app connection holds a descriptor, and the call it makes to a provider another. Past
the open-files limit (RLIMIT_NOFILE) accept(), connect() and SQLite all fail with EMFILE,
which used to surface as 500s and 502s. recall answers a connection past
`[server] max_connections` with a 503 (which SDKs retry, after Retry-After) and closes it,
and any EMFILE that still happens becomes the same 503.
"""

from __future__ import annotations

import errno
import logging
import resource

from .errors import ApiError

# Descriptors recall keeps for itself: stdio, the database's two connections and the viewer's
# (each with its WAL and SHM files), SQLite's temporary files, the listener, the event loop.
RESERVED_FILES = 32
# An app's connection, and the connection to the provider it is relaying for.
FILES_PER_CONNECTION = 2
# When there is no limit to size from.
UNLIMITED_DEFAULT = 4096
RETRY_AFTER_S = "1"


def open_files_limit() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def max_connections(configured: int) -> int:
    """`[server] max_connections`, or (0) what the open-files limit leaves room for."""
    if configured > 0:
        return configured
    limit = open_files_limit()
    if limit is None:
        return UNLIMITED_DEFAULT
    return max(2, (limit - RESERVED_FILES) // FILES_PER_CONNECTION)


def out_of_files(exc: BaseException) -> bool:
    """Whether an error is the process (EMFILE) or the system (ENFILE) out of file descriptors."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.EMFILE, errno.ENFILE):
            return True
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return False


def overloaded(limit: int) -> ApiError:
    files = open_files_limit()
    return ApiError(503, "overloaded",
                    f"recall is at its limit of {limit} connections at once ([server] max_connections"
                    + (f", sized from the open-files limit {files}" if files else "")
                    + "); retry shortly, or raise the limit (ulimit -n, then [server] max_connections)")


class AcceptPausedFilter(logging.Filter):
    """asyncio's event loop, out of descriptors at accept(), logs a traceback and waits a second
    before accepting again (the app's connection waits in the backlog meanwhile): that is
    expected under a burst, so it is said in one line, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("socket.accept() out of system resource"):
            record.msg, record.args, record.exc_info, record.exc_text = (
                "out of file descriptors at accept(): new connections wait a second; see [server] max_connections",
                (), None, None)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_accept_errors() -> None:
    """Install AcceptPausedFilter once on asyncio's logger."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, AcceptPausedFilter) for f in logger.filters):
        logger.addFilter(AcceptPausedFilter())
