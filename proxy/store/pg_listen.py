"""What other instances say on a shared PostgreSQL, heard on a connection of its own (LISTEN).

Nodes never change once written, so an instance's chain cache (chain_cache.py) is made
stale only by an erase; erases and purges NOTIFY `recall_erased` in their transaction, and
every instance drops its cached chains when it hears it. A connection that was away may
have missed some: each (re)connection starts by dropping them all. Cancels asked of a run
on another instance arrive on `recall_cancel`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .pg_erase import ERASED_CHANNEL
from .pg_writes import CANCEL_CHANNEL

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("recall")

# How often an idle listening connection is checked (a server that vanished without closing
# the socket would otherwise go unnoticed), and how long to wait between reconnections.
_PING_EVERY_S = 5.0
_RECONNECT_AFTER_S = 0.5


class Listener:
    """Keeps one listening connection up for as long as it runs; calls `erased()` on every erase
    heard and on every (re)connection, and `cancel(payload)` on every cancel heard."""

    def __init__(self, connect: Callable[[], Any], erased: Callable[[], None],
                 cancel: Callable[[str], None]) -> None:
        self._connect = connect
        self._erased = erased
        self._cancel = cancel
        self.connected = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                db: asyncpg.Connection = await self._connect()
            except Exception:  # away: the pool's requests say so (503); this tries again
                await asyncio.sleep(_RECONNECT_AFTER_S)
                continue
            try:
                await self._listen(db)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("the PostgreSQL listener lost its connection (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                await _close(db)
            await asyncio.sleep(_RECONNECT_AFTER_S)

    async def _listen(self, db: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        db.add_termination_listener(lambda _: lost.set())
        await db.add_listener(ERASED_CHANNEL, lambda *_: self._erased())
        await db.add_listener(CANCEL_CHANNEL, lambda _db, _pid, _channel, payload: self._cancel(payload))
        self._erased()  # whatever was erased while no one listened
        self.connected.set()
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), _PING_EVERY_S)
            except TimeoutError:
                await db.execute("SELECT 1", timeout=_PING_EVERY_S)


async def _close(db: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(db.close(), 2.0)
    except Exception:
        db.terminate()
