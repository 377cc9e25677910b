"""What the store's operations take and give besides the model's Interaction, and the
errors its reads and erases raise: one set of records whatever the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model import Interaction

# Owner of the recordings loaded from a cassette: shared test fixtures, visible to any key.
RECORDED_OWNER = "recorded"


@dataclass(slots=True)
class Exchange:
    """The audit record of one HTTP exchange between an app and recall.

    Credentials are removed before a record is made (auth.redacted_*). In
    emulate mode the body sent upstream is derived data: only its digest is kept.
    """

    upstream: str
    method: str
    path: str
    created: float
    status: int | None = None
    latency_ms: float | None = None
    interaction_id: str | None = None
    owner: str | None = None
    front: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    stored: bool = True
    request_headers: dict[str, str] | None = None
    request_body: bytes | None = None
    response_headers: dict[str, str] | None = None
    response_body: bytes | None = None
    upstream_digest: str | None = None
    error: str | None = None
    # The request's replay key (proxy.pipeline.cache) and how it was answered: live, miss (forwarded in auto mode) or hit.
    cache_key: str | None = None
    cache: str | None = None

    def metadata_only(self) -> Exchange:
        """The same record with no content: what a store=false call leaves."""
        return Exchange(
            upstream=self.upstream, method=self.method, path=self.path, created=self.created,
            status=self.status, latency_ms=self.latency_ms, owner=self.owner, front=self.front,
            model=self.model, input_tokens=self.input_tokens, output_tokens=self.output_tokens,
            stored=False, error=self.error, cache=self.cache,
            # A hash, not content: it ties a replay hit's row to its recording (its model, in stats).
            cache_key=self.cache_key,
        )


@dataclass(slots=True)
class Conversation:
    """An OpenAI conversation object recall keeps (its items are stored beside it)."""

    id: str
    owner: str
    upstream: str
    created: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Removed:
    """What an erase took out of the database."""

    interactions: int = 0  # nodes whose content was erased
    exchanges: int = 0  # recorded HTTP exchanges deleted
    threads: int = 0  # threads with nothing left to keep, deleted row and all


# -- the audit side's reads (AuditStore in protocol.py) --------------------------

# Markers around a search hit inside a snippet; renderers swap them for their own.
HIT_START = "\x02"
HIT_END = "\x03"

# `recall stats --by`: what figures can be grouped by (columns of the stats query).
STATS_KEYS = ("day", "upstream", "model")
# What `ls --status` and the viewer's status filter offer: threads with a live interaction in that state.
THREAD_STATUSES = ("completed", "failed", "in_progress", "requires_action", "incomplete", "cancelled")


@dataclass(slots=True)
class Node:
    """A stored interaction with its place in the tree; a tombstone if deleted."""

    interaction: Interaction
    depth: int
    deleted_at: float | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(slots=True)
class ThreadSummary:
    thread_id: str
    interactions: int
    upstreams: list[str]
    models: list[str]
    input_tokens: int | None
    output_tokens: int | None
    started: float
    last_activity: float
    title: str | None
    # Live interactions that failed, and that are still going (shown as marks in the lists).
    failed: int = 0
    in_progress: int = 0


# Where a page of threads ended: (last activity, thread id) of its last thread.
ThreadKey = tuple[float, str]


@dataclass(slots=True)
class SearchHit:
    interaction_id: str
    thread_id: str
    created: float
    upstream: str
    model: str | None
    # Excerpts around the matched words (wrapped in HIT_START and HIT_END) of
    # each side where any of them was found; None where none was.
    input_snippet: str | None
    output_snippet: str | None
    title: str | None = None  # its thread's first user text, to show instead of ids


@dataclass(slots=True)
class Served:
    """How recall answered the call that made a node, from its recorded exchanges."""

    exchanges: int
    status: int | None  # of the first exchange, as are latency and cache
    latency_ms: float | None
    cache: str | None  # live, miss (forwarded in auto mode) or hit (replayed)
    stream_events: int


@dataclass(slots=True)
class StreamEvent:
    """One recorded SSE event as the app was sent it, `at_ms` after the stream began."""

    seq: int
    event_id: str | None
    at_ms: float
    frame: bytes


@dataclass(slots=True)
class StatsRow:
    key: dict[str, str | None]  # the --by columns, e.g. {"day": "2026-01-31", "model": "gemini-3"}
    requests: int
    interactions: int
    input_tokens: int
    output_tokens: int
    errors: int
    p50_latency_ms: float | None
    replay_hits: int = 0
    # Priced by proxy.audit.prices: None when a model in the row has no known price.
    cost_usd: float | None = None
    unpriced_models: list[str] = field(default_factory=list)


class WalBusy(Exception):
    """The erase is committed, but a reader kept the WAL from being truncated:
    old copies of the erased pages stay there until the next checkpoint."""

    def __init__(self, removed: Removed) -> None:
        super().__init__("another connection is reading the database; the WAL could not be truncated")
        self.removed = removed


class StoreError(Exception):
    """The database cannot be used, or it refused an operation (a load, say), whatever the backend.

    The message is one line. When the database cannot be used at all, it names the file, the
    problem and the way out; when an operation is refused, it says why (the caller names what
    was refused)."""


class IdNotFound(LookupError):
    """No interaction id is, or starts with, what was given; or several start with it."""

    def __init__(self, given: str, candidates: list[str]) -> None:
        super().__init__(given)
        self.given = given
        self.candidates = candidates
