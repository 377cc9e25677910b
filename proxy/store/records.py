"""Rows the store keeps besides interactions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
