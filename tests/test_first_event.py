"""A stream's first event reaches the app before the rest of a burst is read (issue 21).

A provider that writes many events at once hands recall one chunk holding them all;
the app's first byte must not wait for recall to decode and pass on every one of them.
Driven at the run's level, with the real codec and SSE parser, so that the order of
"decoded" and "sent" is observed exactly rather than guessed from socket timing.
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

import orjson

from proxy.codecs import CODECS
from proxy.config import Upstream
from proxy.model import IN_PROGRESS, Interaction
from proxy.pipeline.run import NATIVE, Run
from proxy.sse import SSEParser

INTERACTIONS = next(c for c in CODECS if c.name == "gemini-interactions")


def event(payload: dict[str, Any]) -> bytes:
    return b"event: " + payload["event_type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


BURST = event({"event_type": "interaction.created", "event_id": "p0",
               "interaction": {"id": "v1_burst", "status": "in_progress"}}) + b"".join(
    event({"event_type": "step.delta", "event_id": f"p{n}", "index": 0, "delta": {"type": "text", "text": "tok "}})
    for n in range(1, 50))


class OneChunk:
    """A provider's answer whose whole stream arrives as one chunk."""

    def __init__(self, data: bytes) -> None:
        self.content = self
        self._chunks = [data]

    async def readany(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    async def __aenter__(self) -> OneChunk:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


class CountingDecoder:
    """The codec's own decoder, counting the events it was given."""

    def __init__(self) -> None:
        self.inner = INTERACTIONS.stream_decoder()
        self.fed = 0

    def feed(self, event: Any) -> Any:
        self.fed += 1
        return self.inner.feed(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class SeeingSink:
    """The app's end: what each write held, and how many events had been decoded by then."""

    def __init__(self, decoder: CountingDecoder) -> None:
        self.decoder = decoder
        self.writes: list[tuple[bytes, int]] = []

    async def send(self, data: bytes) -> None:
        self.writes.append((data, self.decoder.fed))


def test_the_first_event_of_a_burst_is_sent_before_the_rest_is_decoded() -> None:
    decoder = CountingDecoder()
    sink = SeeingSink(decoder)
    node = Interaction(id="", owner="o", upstream="up", front=INTERACTIONS.name, mode="native", model="m",
                       status=IN_PROGRESS, input=[], output=[], created=1.0, updated=1.0)
    call = types.SimpleNamespace(upstream=Upstream("up", "http://127.0.0.1:9", "gemini"))
    run = Run(None, call, node, mode=NATIVE, storing=False, encoder=None,  # type: ignore[arg-type]
              decoder=decoder, sink=sink, response=OneChunk(BURST))  # type: ignore[arg-type]
    assert asyncio.run(run._read_stream([])) is None
    events = SSEParser().feed(BURST)
    first, rest = sink.writes[0], sink.writes[1:]
    assert first == (events[0].raw, 1)  # alone, and before the second event was decoded
    assert b"".join(data for data, _ in rest) == b"".join(e.raw for e in events[1:])  # the rest, byte for byte
    assert len(rest) == 1 and decoder.fed == len(events)  # in one write, as the chunk came
