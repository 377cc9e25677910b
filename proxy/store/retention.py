"""`[storage] retention_days`: purge what is older, once at start and then daily."""

from __future__ import annotations

import asyncio
import logging
import time

from .protocol import Store

log = logging.getLogger("recall")

DAY_S = 86400.0


class Retention:
    """Keeps the database within `days` of history while the server runs (0 = forever)."""

    def __init__(self, store: Store, days: int, *, every_s: float = DAY_S) -> None:
        self._store = store
        self._days = days
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Purge now (before the first request is served), then every `every_s`."""
        if self._days <= 0:
            return
        await self.purge()
        self._task = asyncio.create_task(self._daily(), name="recall-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def purge(self) -> None:
        removed = await self._store.purge_older_than(time.time() - self._days * DAY_S)
        log.info(
            "retention (%d days): erased %d interactions, %d exchanges, %d threads",
            self._days, removed.interactions, removed.exchanges, removed.threads,
        )

    async def _daily(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self.purge()
            except Exception:  # a failed purge must not stop the next one
                log.exception("retention purge failed; will try again in %g s", self._every_s)
