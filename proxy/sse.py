"""Server-sent events: an incremental parser and the frames recall writes.

The parser follows the WHATWG framing every SDK here uses: `\\n`, `\\r\\n` or
`\\r` line ends, `event:` and multi-line `data:` fields, `:` comments ignored.
It keeps each event's raw bytes, so a relay can pass events on untouched.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

DONE = b"[DONE]"
# A line end followed by an empty line, in any of the three line-end styles.
_BLANK_LINE = re.compile(rb"\r\n\r\n|\n\n|\r\r")


_UNPARSED = object()


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: bytes
    # The event exactly as it arrived, blank line included.
    raw: bytes
    _parsed: Any = field(default=_UNPARSED, repr=False, compare=False)

    def json(self) -> Any:
        """The data as JSON (parsed once), or None for `[DONE]`, empty or non-JSON data."""
        if self._parsed is _UNPARSED:
            self._parsed = None
            if self.data and self.data != DONE:
                try:
                    self._parsed = orjson.loads(self.data)
                except orjson.JSONDecodeError:
                    pass
        return self._parsed

    @property
    def malformed(self) -> bool:
        """Data that should be JSON and is not: a broken chunk from the provider."""
        return bool(self.data) and self.data != DONE and self.json() is None


class SSEParser:
    """Feed bytes as they arrive; get back the events they completed."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        # The buffer's bytes already searched: no blank line starts before the last 3 of them.
        self._scanned = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer
        buffer += chunk
        events: list[SSEEvent] = []
        start = 0
        # Each byte is scanned once, whatever the chunking: an event of many megabytes
        # in small chunks would otherwise be rescanned from its start at every chunk.
        # An event ends at the first blank line (at most 4 bytes, so it may begin in
        # the last 3 bytes scanned before).
        for match in _BLANK_LINE.finditer(buffer, max(self._scanned - 3, 0)):
            raw = bytes(buffer[start:match.end()])
            # A comment-only block (a keep-alive) is an event with no data, so
            # that a relay passing events on keeps every byte.
            event, data = _parse_block(raw[: match.start() - start])
            events.append(SSEEvent(event, data, raw))
            start = match.end()
        del buffer[:start]
        self._scanned = len(buffer)
        return events

    def flush(self) -> list[SSEEvent]:
        """The last event of a stream that ended without a blank line."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        if not rest:
            return []
        event, data = _parse_block(rest)
        return [SSEEvent(event, data, rest)]

    @property
    def pending(self) -> int:
        return len(self._buffer)


def _parse_block(block: bytes) -> tuple[str | None, bytes]:
    event: str | None = None
    data: list[bytes] = []
    for line in block.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    return event, b"\n".join(data)


def frame(data: bytes, event: str | None = None) -> bytes:
    """One SSE event as recall writes it (no `id:` line: it trips the Stainless SDKs)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"


async def iter_events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[bytes, list[SSEEvent]]]:
    """Each chunk as it arrives from the provider, with the events it completed."""
    parser = SSEParser()
    async for chunk in content.iter_any():
        yield chunk, parser.feed(chunk)
    tail = parser.flush()
    if tail:
        yield b"", tail
