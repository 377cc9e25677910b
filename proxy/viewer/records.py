"""The JSON the viewer's API answers with (docs/VIEWER.md describes every field).

Built on the audit command's JSON forms (proxy.audit.render), with what a page
needs besides: snippets as segments to mark without parsing markup, how each
turn was served, and a streamed turn's event timings.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from ..audit.render import exchange_record, interaction_record, search_record
from ..auth import redacted_headers
from ..sse import SSEParser
from ..store.records import HIT_END, HIT_START, Exchange, Node, SearchHit, Served, StreamEvent, ThreadKey


def encode_cursor(value: Any) -> str:
    """An opaque page cursor (URL-safe): where the next page starts."""
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    """The value inside a cursor; ValueError if it is not one encode_cursor made."""
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise ValueError(f"cursor {cursor!r} is not one this viewer gave out") from None


def thread_cursor(key: Any) -> ThreadKey:
    if not (isinstance(key, list) and len(key) == 2 and isinstance(key[0], int | float) and isinstance(key[1], str)):
        raise ValueError("cursor does not belong to the conversation list")
    return float(key[0]), key[1]


def snippet_segments(snippet: str | None) -> list[dict[str, Any]] | None:
    """A search snippet as [{"text", "hit"}] pieces on one line; `hit` marks the matched words."""
    if snippet is None:
        return None
    segments: list[dict[str, Any]] = []
    rest = " ".join(snippet.split())
    while HIT_START in rest:
        before, _, tail = rest.partition(HIT_START)
        word, _, rest = tail.partition(HIT_END)
        segments += [{"text": before, "hit": False}, {"text": word, "hit": True}]
    segments.append({"text": rest, "hit": False})
    return [s for s in segments if s["text"]]


def search_hit_record(hit: SearchHit) -> dict[str, Any]:
    return {**search_record(hit), "input_snippet": snippet_segments(hit.input_snippet),
            "output_snippet": snippet_segments(hit.output_snippet)}


def served_record(served: Served | None) -> dict[str, Any]:
    if served is None:
        return {"exchanges": 0, "status": None, "latency_ms": None, "cache": None, "stream_events": 0}
    return {"exchanges": served.exchanges, "status": served.status, "latency_ms": served.latency_ms,
            "cache": served.cache, "stream_events": served.stream_events}


def node_record(node: Node, served: Served | None) -> dict[str, Any]:
    """A stored interaction (as `recall export` writes it) and how its call was served."""
    return {**interaction_record(node), "served": served_record(served)}


def exchange_view(ex: Exchange) -> dict[str, Any]:
    """A recorded exchange; headers pass the credential filter again, whatever wrote the row."""
    record = exchange_record(ex)
    for side in ("request_headers", "response_headers"):
        if record[side] is not None:
            record[side] = redacted_headers(record[side].items())
    return {**record, "upstream": ex.upstream, "cache": ex.cache}


def _event_of(frame: bytes) -> tuple[str, str]:
    """The SSE event name (`message` when the frame names none, as in SSE) and its data as text."""
    parser = SSEParser()
    parsed = parser.feed(frame) + parser.flush()
    if not parsed:
        return "message", ""
    first = parsed[0]
    return first.event or "message", first.data.decode("utf-8", "replace")


def events_record(interaction_id: str, events: list[StreamEvent]) -> dict[str, Any]:
    """A streamed turn's events with the gap before each (the first one's from the stream's start)."""
    rows = []
    previous = 0.0
    largest: dict[str, Any] | None = None
    for event in events:
        name, data = _event_of(event.frame)
        gap = event.at_ms - previous
        previous = event.at_ms
        rows.append({"seq": event.seq, "event_id": event.event_id, "at_ms": round(event.at_ms, 3),
                     "gap_ms": round(gap, 3), "event": name, "bytes": len(event.frame), "data": data})
        if len(rows) > 1 and (largest is None or gap > largest["gap_ms"]):
            largest = {"gap_ms": round(gap, 3), "before_seq": event.seq}
    return {
        "interaction_id": interaction_id,
        "events": rows,
        "first_event_ms": rows[0]["at_ms"] if rows else None,
        "last_event_ms": rows[-1]["at_ms"] if rows else None,
        "largest_gap": largest,
    }
