"""The long-lived parts a request handler needs, built once at start-up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from ..config import Config
from ..model import Interaction
from ..seal import Sealer
from ..store.protocol import Frame as StoredFrame
from ..store.protocol import Store
from ..store.records import Exchange
from ..store.writer import StoreUnavailable
from .cache import Cache
from .client import UpstreamClient
from .log_note import note_exchange, note_interaction
from .running import Runs
from .state import ConversationState

T = TypeVar("T")


@dataclass(slots=True)
class Services:
    config: Config
    store: Store
    upstreams: UpstreamClient
    state: ConversationState
    runs: Runs
    cache: Cache
    # Seals the compaction summaries recall writes itself (pipeline/compaction.py).
    sealer: Sealer
    _held: dict[type, Any] = field(default_factory=dict)

    def held(self, kind: type[T]) -> T:
        """This server's one `kind()`, made on first use: what an endpoint keeps between calls."""
        if kind not in self._held:
            self._held[kind] = kind()
        return cast(T, self._held[kind])

    async def record(self, exchange: Exchange, *, content: bool) -> None:
        """Keep an audit row: whole, or metadata only for calls that opted out of storage.

        An audit row the database cannot take is logged and let go: the app's answer,
        which the provider may already have billed, matters more than its record."""
        note_exchange(exchange)  # the request's log line names its model and interaction id
        try:
            if content:
                await self.store.record_exchange(exchange)
            elif self.config.log_unstored:
                await self.store.record_exchange(exchange.metadata_only())
        except StoreUnavailable as trouble:
            trouble.report()

    async def admit(self, node: Interaction, exchange: Exchange | None = None) -> None:
        """Commit a turn's in-progress node before its provider is asked (and bills it): a
        database that cannot write fails the request here, at once, with a 503 that costs
        the app nothing (StoreUnavailable is raised)."""
        note_interaction(node.id, node.model)
        await self.store.save_interaction(node, exchange)

    async def forget_unstarted(self, interaction_id: str) -> None:
        """Drop the in-progress node of a turn the provider refused (its id never reached the app)."""
        try:
            await asyncio.shield(self.store.discard_unstarted(interaction_id))
        except StoreUnavailable as trouble:
            trouble.report()  # left in progress: failed when its lease runs out

    async def keep_answer(self, node: Interaction, exchange: Exchange | None = None,
                          frames: list[StoredFrame] | None = None) -> bool:
        """Commit a turn the provider has answered (with the last events of its stream); whether it was kept.

        A database that cannot take it costs the record, never the answer the app
        paid for: the trouble is logged, and the node is failed with the reason (now,
        or as soon as the database takes writes again)."""
        note_interaction(node.id, node.model)
        try:
            return await self.store.save_interaction(node, exchange, frames)
        except StoreUnavailable as trouble:
            trouble.report()
            await self.store.fail_unsaved(node.id, f"recall could not write this turn's result ({trouble.cause});"
                                                   " the app got its answer, unrecorded")
            return False
