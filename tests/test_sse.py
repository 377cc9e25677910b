"""The SSE parser: every framing the SDKs accept, any chunking, every byte kept."""

from __future__ import annotations

import pytest

from proxy.sse import SSEParser

STREAMS = {
    "lf": b'event: a\ndata: {"n": 1}\n\n: ping\n\ndata: {"n": 2}\ndata: {"m": 3}\n\ndata: [DONE]\n\n',
    "crlf": b'data: {"n": 1}\r\n\r\ndata: {"n": 2}\r\n\r\n',
    "cr": b'data: {"n": 1}\r\rdata: {"n": 2}\r\r',
    "no space": b'data:{"n": 1}\n\n',
}


@pytest.mark.parametrize("name", STREAMS)
@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_events_survive_any_chunking_byte_for_byte(name: str, size: int) -> None:
    stream = STREAMS[name]
    parser = SSEParser()
    events = []
    for start in range(0, len(stream), size):
        events += parser.feed(stream[start:start + size])
    events += parser.flush()
    assert b"".join(e.raw for e in events) == stream
    whole = SSEParser().feed(stream)
    assert [(e.event, e.data) for e in events] == [(e.event, e.data) for e in whole]


def test_fields_are_read_as_the_sdks_read_them() -> None:
    events = SSEParser().feed(STREAMS["lf"])
    assert [(e.event, e.data) for e in events] == [
        ("a", b'{"n": 1}'), (None, b""), (None, b'{"n": 2}\n{"m": 3}'), (None, b"[DONE]")]
    assert events[0].json() == {"n": 1} and events[1].json() is None and not events[1].malformed
    assert events[3].json() is None and not events[3].malformed
    broken = SSEParser().feed(b"data: {not json\n\n")[0]
    assert broken.malformed


def test_a_stream_without_a_final_blank_line_keeps_its_last_event() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a": 1}\n\ndata: {"b": 2}') and parser.pending
    tail = parser.flush()
    assert [e.json() for e in tail] == [{"b": 2}] and tail[0].raw == b'data: {"b": 2}'


def test_one_large_event_over_many_chunks_is_parsed_in_linear_time() -> None:
    """A provider's multi-megabyte event (a generated image, a long completed response)
    arrives in many small chunks; each must not rescan what came before, or the event
    loop stalls for seconds (quadratic: this one took ~20 s so)."""
    import time

    event = b'data: {"image": "' + b"A" * (16 * 1024 * 1024) + b'"}\n\n'
    parser = SSEParser()
    started = time.perf_counter()
    events = []
    for start in range(0, len(event), 16 * 1024):
        events += parser.feed(event[start:start + 16 * 1024])
    took = time.perf_counter() - started
    assert [e.raw for e in events] == [event] and not parser.pending
    assert took < 2, f"{took:.1f} s to parse one 16 MB event"
