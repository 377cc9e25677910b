"""Running a function on an aiosqlite connection's own thread, in one trip.

aiosqlite runs each connection's statements on a thread of its own; its
`_execute` runs any function there. The store uses it to put a whole batch
of statements (a group commit, a query read to its last row) in one hop
instead of one per statement. `_execute` is untyped: this is its one typed door.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import aiosqlite

T = TypeVar("T")


async def on_thread(connection: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on the connection's thread; its result, or its exception."""
    run = cast(Callable[..., Any], connection._execute)
    return cast(T, await run(fn, *args))
