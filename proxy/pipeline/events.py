"""A stream's two ends: the app's (Sink) and the store's (EventLog).

Every event a turn sends is written to both: to the app as it comes, and to
the store behind it, numbered, for resume (`?stream=true&starting_after=`,
`Last-Event-ID`) and for replay.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from ..codecs.base import Frame
from ..sse import SSE_CONTENT_TYPE
from ..store import StoreUnavailable
from ..store.protocol import Frame as StoredFrame
from ..store.protocol import Store
from .answers import STORED_HEADER
from .running import Runs

_FLUSH_BYTES = 64 * 1024
_FLUSH_SECONDS = 0.05
# Bytes of events handed to the store and not yet committed before the stream waits for the
# disk: a provider faster than the disk would otherwise queue its whole stream in memory.
_MAX_BEHIND_BYTES = 4 * 1024 * 1024


class Sink:
    """The app's end of a stream. Writes stop quietly once the app has gone."""

    def __init__(self, request: web.Request, stored: bool) -> None:
        self.request = request
        self.response = web.StreamResponse(
            status=200, headers={"Content-Type": SSE_CONTENT_TYPE, "Cache-Control": "no-cache",
                                 STORED_HEADER: "true" if stored else "false"},
        )
        self.connected = True

    async def open(self, *, with_first_event: bool = False) -> None:
        """Begin the app's answer. `with_first_event`: its headers wait to go out in one write with
        the first event, which is on its way (the provider's stream is open): a send, and a wake-up
        of the app, fewer before its first byte."""
        if with_first_event:
            self.response._send_headers_immediately = False  # aiohttp's own switch (web.Response's default)
        await self.response.prepare(self.request)

    async def send(self, data: bytes) -> None:
        if not self.connected or not data:
            return
        try:
            await self.response.write(data)
        except (ConnectionResetError, RuntimeError):
            self.connected = False

    async def close(self) -> None:
        if self.connected:
            try:
                await self.response.write_eof()
            except (ConnectionResetError, RuntimeError):
                self.connected = False


class EventLog:
    """The events of one stream, numbered and written to the store behind it."""

    def __init__(self, store: Store, runs: Runs, interaction_id: str | None, enabled: bool) -> None:
        # Followers of the run (pipeline/runs.py) are woken as each batch is committed.
        self._store, self._runs = store, runs
        self.interaction_id = interaction_id
        self._enabled = enabled
        self._started = time.perf_counter()
        self._last_flush = self._started
        self._seq = 0
        self.count = 0
        self._pending: list[StoredFrame] = []
        self._pending_bytes = 0
        self._writes: list[asyncio.Future[Any]] = []
        self._behind = 0

    @property
    def recording(self) -> bool:
        """Whether the events are written to the store (a stored turn's)."""
        return self._enabled

    def add(self, frames: list[Frame]) -> None:
        self._number(frames)
        if self._pending_bytes >= _FLUSH_BYTES or time.perf_counter() - self._last_flush >= _FLUSH_SECONDS:
            self.flush()

    def _number(self, frames: list[Frame]) -> None:
        self.count += len(frames)
        if not self._enabled:
            return
        at_ms = (time.perf_counter() - self._started) * 1000
        for item in frames:
            self._seq += 1
            self._pending.append((self._seq, item.event_id, at_ms, item.data))
            self._pending_bytes += len(item.data)

    async def ending(self, frames: list[Frame]) -> list[StoredFrame]:
        """The stream's last events (those not yet written, then `frames`), numbered, for the
        commit that ends its node (Store.save_interaction): every earlier batch is committed
        first, so that no reader ever finds a later event without the ones before it."""
        self._number(frames)
        last, self._pending, self._pending_bytes = self._pending, [], 0
        await self._settle()
        return last if self.interaction_id is not None else []

    def flush(self) -> None:
        if not self._pending or self.interaction_id is None:
            return
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        self._last_flush = time.perf_counter()
        interaction_id = self.interaction_id
        write = self._store.append_frames(interaction_id, batch)
        size = sum(len(frame[3]) for frame in batch)
        self._behind += size
        write.add_done_callback(lambda _: self._written(interaction_id, size))
        self._writes.append(write)
        self._writes = [w for w in self._writes if not w.done()]

    def _written(self, interaction_id: str, size: int) -> None:
        self._behind -= size
        self._runs.notify(interaction_id)

    async def keep_up(self) -> None:
        """Wait while the store is far behind the stream (a slow disk), so that memory stays flat."""
        while self._behind > _MAX_BEHIND_BYTES and (pending := [w for w in self._writes if not w.done()]):
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    async def close(self) -> None:
        """Write what is left and wait until every event is committed (or the database refused them)."""
        self.flush()
        await self._settle()

    async def _settle(self) -> None:
        """Wait until every batch handed to the store is committed (or the database refused it)."""
        if self._writes:
            for outcome in await asyncio.gather(*self._writes, return_exceptions=True):
                if isinstance(outcome, StoreUnavailable):
                    outcome.report()
                elif isinstance(outcome, BaseException):
                    raise outcome
