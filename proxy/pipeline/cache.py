"""The offline cache: matching requests to recordings, and answering from them.

A request's key is the digest of its canonical form: upstream, method, path,
query without credentials, and the JSON body with key order normalised and
volatile fields (`[cache] ignore_fields`) removed. The conversation state is
part of the body (previous ids, or the whole history for stateless APIs), so
chains match turn by turn. Credentials never are: a recording made with a real
key replays for an app holding a dummy one.

The n-th identical request in a run gets the n-th recording; after the last,
the last repeats.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from ..auth import SECRET_QUERY_PARAMS
from ..codecs import REPLAYED_HEADERS
from ..errors import ApiError
from ..store.protocol import Store
from ..store.records import Exchange

# Deeper bodies are refused: recall wraps what it stores and sends in a few more
# levels, and orjson stops at 255. Protocol-buffer APIs such as Google's stop at 100.
MAX_JSON_DEPTH = 100


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects in `value` nest more than `limit` levels (walked without recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


LIVE, REPLAY, AUTO = "live", "replay", "auto"
CACHE_HEADER = "X-Recall-Cache"
# Response headers worth replaying; the rest (dates, request ids of the
# provider's infrastructure) are either volatile or re-made by aiohttp.
_REPLAYED_HEADERS = ("content-type", "x-recall-stored", "retry-after", *REPLAYED_HEADERS)
_NEAREST_CANDIDATES = 200


def canonical_form(upstream: str, method: str, path: str, query: Iterable[tuple[str, str]], body: bytes,
                   ignore_fields: list[str]) -> dict[str, Any]:
    """The parts of a request that decide its answer, in a stable form."""
    parsed: Any = None
    if body:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        # Bodies that are not JSON, or nest too deep to be re-encoded, are keyed by their bytes.
        if parsed is None or nested_deeper_than(parsed, MAX_JSON_DEPTH):
            parsed = {"sha256": hashlib.sha256(body).hexdigest()}
        if isinstance(parsed, dict):
            parsed = {k: v for k, v in parsed.items() if k not in ignore_fields}
    kept = sorted((k, v) for k, v in query if k not in SECRET_QUERY_PARAMS)
    return {"upstream": upstream, "method": method, "path": path, "query": kept, "body": parsed}


def request_key(canonical: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


# How to record what missed; the pytest plugin names its own flag and the cassette instead.
DEFAULT_MISS_HINT = "Record it with `recall serve --mode auto` (or live), or fix the request."


class Cache:
    def __init__(self, store: Store, mode: str, ignore_fields: list[str], *, timing: str = "fast",
                 hint: str | None = None) -> None:
        self.store = store
        self.hint = hint or DEFAULT_MISS_HINT
        self.mode = mode
        self.ignore_fields = ignore_fields
        self.timing = timing

    @property
    def replaying(self) -> bool:
        return self.mode in (REPLAY, AUTO)

    async def find(self, key: str) -> Exchange | None:
        """The recording for the next identical request of this run, if any."""
        recordings = await self.store.recordings(key)
        if not recordings:
            return None
        # Counted by the store: instances sharing a database share the count.
        nth = await self.store.next_replay(key)
        return recordings[min(nth, len(recordings) - 1)]

    async def serve(self, request: web.Request, recording: Exchange) -> web.StreamResponse:
        headers = {name: value for name, value in (recording.response_headers or {}).items()
                   if name in _REPLAYED_HEADERS}
        headers[CACHE_HEADER] = "hit"
        if recording.response_body is not None or recording.interaction_id is None:
            return web.Response(status=recording.status or 200, body=recording.response_body or b"", headers=headers)
        frames = await self.store.stream_frames_timed(recording.interaction_id)
        response = web.StreamResponse(status=recording.status or 200, headers=headers)
        await response.prepare(request)
        previous_ms = 0.0
        for at_ms, data in frames:
            if self.timing == "recorded" and at_ms > previous_ms:
                await asyncio.sleep((at_ms - previous_ms) / 1000)
            previous_ms = at_ms
            await response.write(data)
        await response.write_eof()
        return response

    async def miss(self, canonical: dict[str, Any], key: str) -> ApiError:
        """The replay_miss error for a request (its canonical form): the key, and the nearest
        recorded request with a short diff."""
        nearest = await self._nearest(canonical)
        message = f"no recording matches this request (key {key})"
        if nearest is None:
            message += (f"; nothing was recorded for {canonical['method']} {canonical['path']}"
                        f" on upstream '{canonical['upstream']}'")
        else:
            other_key, differences = nearest
            message += f"; nearest recorded request is {other_key}, which differs in: {'; '.join(differences)}"
        message += f". {self.hint}"
        return ApiError(400, "replay_miss", message)

    async def _nearest(self, canonical: dict[str, Any]) -> tuple[str, list[str]] | None:
        best: tuple[int, str, list[str]] | None = None
        upstream = canonical["upstream"]
        for exchange in await self.store.recent_requests(upstream, _NEAREST_CANDIDATES):
            path, _, query = exchange.path.partition("?")
            other = canonical_form(upstream, exchange.method, path, parse_qsl(query, keep_blank_values=True),
                                   exchange.request_body or b"", self.ignore_fields)
            differences = _diff(canonical, other)
            if best is None or len(differences) < best[0]:
                best = (len(differences), exchange.cache_key or "?", differences)
        return (best[1], best[2][:5]) if best else None


def _diff(wanted: dict[str, Any], recorded: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key in sorted(set(wanted) | set(recorded)):
        where = f"{prefix}{key}"
        if key not in recorded:
            out.append(f"{where} is new")
        elif key not in wanted:
            out.append(f"{where} was recorded but is absent")
        elif isinstance(wanted[key], dict) and isinstance(recorded[key], dict):
            out.extend(_diff(wanted[key], recorded[key], f"{where}."))
        elif wanted[key] != recorded[key]:
            out.append(f"{where}: {_short(recorded[key])} -> {_short(wanted[key])}")
    return out


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."
