"""Server-sent events: an incremental parser and the frames recall writes.

The parser follows the WHATWG framing every SDK here uses: `\\n`, `\\r\\n` or
`\\r` line ends, `event:` and multi-line `data:` fields, `:` comments ignored.
It keeps each event's raw bytes, so a relay can pass events on untouched.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

DONE = b"[DONE]"
SSE_CONTENT_TYPE = "text/event-stream"
# A line end followed by an empty line, in any of the three line-end styles.
_BLANK_LINE = re.compile(rb"\r\n\r\n|\n\n|\r\r")


_UNPARSED = object()


class SSEEvent:
    """One event: its raw bytes, blank line included, and its `event` and `data` fields,
    read from them when first asked for (a relay that passes a burst of events on sends the
    first before it has read the others)."""

    __slots__ = ("raw", "_body_end", "_event", "_data", "_parsed")

    def __init__(self, raw: bytes, body_end: int | None = None) -> None:
        # The event exactly as it arrived, blank line included.
        self.raw = raw
        # Where the fields end (the blank line begins); None: the whole of `raw`.
        self._body_end = body_end
        self._event: str | None | object = _UNPARSED
        self._data: bytes = b""
        self._parsed: Any = _UNPARSED

    def _fields(self) -> None:
        if self._event is _UNPARSED:
            block = self.raw if self._body_end is None else self.raw[: self._body_end]
            self._event, self._data = _parse_block(block)

    @property
    def event(self) -> str | None:
        self._fields()
        return self._event  # type: ignore[return-value]

    @property
    def data(self) -> bytes:
        self._fields()
        return self._data

    @property
    def is_comment(self) -> bool:
        """A block with no field at all (a keep-alive comment)."""
        return self.event is None and not self.data

    def json(self) -> Any:
        """The data as JSON (parsed once), or None for `[DONE]`, empty or non-JSON data."""
        if self._parsed is _UNPARSED:
            self._parsed = None
            data = self.data
            if data and data != DONE:
                try:
                    self._parsed = orjson.loads(data)
                except orjson.JSONDecodeError:
                    pass
        return self._parsed

    @property
    def malformed(self) -> bool:
        """Data that should be JSON and is not: a broken chunk from the provider."""
        data = self.data
        return bool(data) and data != DONE and self.json() is None

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data!r})"


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
            # A comment-only block (a keep-alive) is an event with no data, so
            # that a relay passing events on keeps every byte.
            events.append(SSEEvent(bytes(buffer[start:match.end()]), match.start() - start))
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
        return [SSEEvent(rest)]

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


class StreamLimit(TimeoutError):
    """A provider's stream went past a limit of its upstream (`stream_idle_s`, `stream_max_s`).

    A TimeoutError, so that every reader that handles a stalled provider handles it; its
    message names the limit and the key that sets it, for the node's failure reason."""


async def iter_events(content: aiohttp.StreamReader, *, idle_s: float | None = None, max_s: float | None = None,
                      upstream: str = "") -> AsyncIterator[tuple[bytes, list[SSEEvent]]]:
    """Each chunk as it arrives from the provider, with the events it completed.

    `idle_s`: at most this long waiting for the provider's next event (keep-alive comments
    do not count: a provider that trickles them forever is idle); `max_s`: at most this long
    in all. Either raises StreamLimit. Time the caller spends between chunks (writing to a
    slow app) is not idle time: only the waits for the provider count."""
    parser = SSEParser()
    loop = asyncio.get_running_loop()
    started = loop.time()
    idle = 0.0  # seconds spent waiting for the provider since its last event
    while True:
        limit, which = _next_deadline(idle_s, idle, max_s, started, loop.time())
        waiting_from = loop.time()
        if limit is not None and limit <= 0:
            raise _limit_error(which, idle_s, max_s, upstream)
        try:
            if limit is None:
                chunk = await content.readany()
            else:
                # A deadline on this task, not a task per read (as wait_for makes): a chunk already
                # buffered is read without a trip through the event loop.
                async with asyncio.timeout(limit):
                    chunk = await content.readany()
        except TimeoutError:
            if limit is not None and loop.time() - waiting_from >= limit:
                raise _limit_error(which, idle_s, max_s, upstream) from None
            raise  # the socket's own read timeout (timeout_s)
        if not chunk:
            break
        events = parser.feed(chunk)
        idle = 0.0 if not all(e.is_comment for e in events) else idle + loop.time() - waiting_from
        yield chunk, events
    tail = parser.flush()
    if tail:
        yield b"", tail


def _next_deadline(idle_s: float | None, idle: float, max_s: float | None, started: float, now: float
                   ) -> tuple[float | None, str]:
    """Seconds the next read may wait, and which limit that is."""
    options = []
    if idle_s:
        options.append((idle_s - idle, "idle"))
    if max_s:
        options.append((started + max_s - now, "max"))
    if not options:
        return None, ""
    return min(options)


def _limit_error(which: str, idle_s: float | None, max_s: float | None, upstream: str) -> StreamLimit:
    if which == "idle":
        return StreamLimit(f"the provider sent no event for {idle_s:g} s ([upstreams.{upstream}] stream_idle_s)")
    return StreamLimit(f"the provider's stream went on past {max_s:g} s ([upstreams.{upstream}] stream_max_s)")
