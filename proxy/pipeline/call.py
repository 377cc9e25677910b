"""One app request as the pipeline sees it: who, where, what, and since when; and its route."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from multidict import CIMultiDictProxy, MultiMapping

from ..auth import redacted_headers, redacted_query
from ..codecs.base import Codec
from ..config import Upstream
from ..errors import bad_request
from ..model import Interaction, TurnRequest
from ..store.records import Exchange
from .cache import MAX_JSON_DEPTH, canonical_form, nested_deeper_than, request_key


@dataclass(frozen=True, slots=True)
class Route:
    """Which front API and operation a path names (proxy/http/routes.py matches it)."""

    codec: Codec
    operation: str
    resource_id: str | None = None
    # An item inside the resource (a conversation's item).
    item_id: str | None = None


@dataclass(slots=True)
class Call:
    upstream: Upstream
    route: Route
    method: str
    # The path under the upstream's mount point, raw (still percent-encoded).
    raw_tail: str
    query: MultiMapping[str]
    query_string: str
    headers: CIMultiDictProxy[str]
    body: bytes
    owner: str
    # False when the app sent `X-Recall-Store: false`.
    recording: bool = True
    # The body fields the replay key leaves out ([replay] ignore_fields).
    ignore_fields: list[str] = field(default_factory=list)
    # How this call is being answered.
    cache_status: str = "live"
    started: float = field(default_factory=time.perf_counter)
    created: float = field(default_factory=time.time)
    # Call.native, decided once: a codec may read the body to decide it (Parallel's model rule).
    _native: bool | None = None
    _cache_key: str | None = None

    @property
    def cache_key(self) -> str:
        """The replay key (proxy.pipeline.cache), worked out when first asked: by a replay's
        look-up at once, by a live call only for its audit row, after a stream's first byte."""
        if self._cache_key is None:
            self._cache_key = request_key(self.canonical())
        return self._cache_key

    @property
    def native(self) -> bool:
        """The provider keeps this conversation itself (it has this API's state, and state = native):
        recall relays and records beside."""
        if self._native is None:
            self._native = self.upstream.state == "native" and self.route.codec.keeps_state_on(self.upstream.api,
                                                                                               self.body)
        return self._native

    def stores(self, req: TurnRequest) -> bool:
        """Whether this turn's content is kept: the API's `store` and recall's own `X-Recall-Store`."""
        return req.store and self.recording

    def json_body(self) -> Any:
        if not self.body.strip():
            raise bad_request("the request body is empty; expected a JSON object")
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"the request body is not valid JSON: {exc}") from None
        if nested_deeper_than(value, MAX_JSON_DEPTH):
            raise bad_request(f"the request body is nested more than {MAX_JSON_DEPTH} levels deep; flatten it")
        return value

    def canonical(self) -> dict[str, Any]:
        """The parts of this request that decide its answer (its replay key is their digest)."""
        return canonical_form(self.upstream.name, self.method, self.raw_tail, self.query.items(), self.body,
                              self.ignore_fields)

    def query_flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() == "true"

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def exchange(self, status: int, response_headers: dict[str, str] | None, response_body: bytes | None) -> Exchange:
        """The audit record of this call, credentials removed."""
        query = redacted_query(self.query_string)
        return Exchange(
            upstream=self.upstream.name,
            method=self.method,
            path=self.raw_tail + (f"?{query}" if query else ""),
            created=self.created,
            status=status,
            latency_ms=self.elapsed_ms(),
            owner=self.owner,
            front=self.route.codec.name,
            # The body is kept as aiohttp decoded it: a Content-Encoding header beside it would mislabel it.
            request_headers=redacted_headers((k, v) for k, v in self.headers.items()
                                             if k.lower() != "content-encoding"),
            request_body=self.body or None,
            response_headers=response_headers,
            response_body=response_body,
            cache_key=self.cache_key,
            cache=self.cache_status,
        )

    def turn_exchange(self, node: Interaction, status: int, content_type: str, body: bytes | None) -> Exchange:
        """The audit record of a call that made a turn: what was answered, and the turn's model and tokens."""
        exchange = self.exchange(status, {"content-type": content_type}, body)
        exchange.model, exchange.error = node.model, node.error
        exchange.input_tokens, exchange.output_tokens = node.usage.input_tokens, node.usage.output_tokens
        return exchange
