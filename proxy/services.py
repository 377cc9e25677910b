"""The long-lived parts a request handler needs, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from .cache import Cache
from .config import Config
from .request_log import note_exchange
from .runs import Runs
from .state import ConversationState
from .store.records import Exchange
from .store.sqlite import SQLiteStore
from .task_registry import TaskRegistry
from .upstream import UpstreamClient


@dataclass(slots=True)
class Services:
    config: Config
    store: SQLiteStore
    upstreams: UpstreamClient
    state: ConversationState
    runs: Runs
    cache: Cache
    tasks: TaskRegistry = field(default_factory=TaskRegistry)

    async def record(self, exchange: Exchange, *, content: bool) -> None:
        """Keep an audit row: whole, or metadata only for calls that opted out of storage."""
        note_exchange(exchange)  # the request's log line names its model and interaction id
        if content:
            await self.store.record_exchange(exchange)
        elif self.config.log_unstored:
            await self.store.record_exchange(exchange.metadata_only())
