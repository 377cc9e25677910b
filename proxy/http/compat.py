"""An HTTP server that accepts what real SDKs send.

google-genai 1.56 sends `User-Agent` twice. aiohttp's request parsers reject a
repeated singleton header with 400 and offer no setting for it; Google's
servers accept it, so recall must too. Here the repeated User-Agent lines are
folded into one before aiohttp's own header parser runs; every other check
(duplicate Host, Content-Length, Transfer-Encoding...) stays as strict as it is.

The folding needs aiohttp's pure-Python request parser (the C one has no hook),
which costs some tens of microseconds more per request than the C one. So a
connection keeps aiohttp's C parser unless the head of its first request repeats
User-Agent, or is not whole in its first chunk (then it cannot be told): an SDK
sends the same headers on every request of a connection, in one write. A later
request that repeats User-Agent on a connection that did not gets aiohttp's 400.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.http_parser import HeadersParser, HttpRequestParserPy
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_server import Server

_FOLDED = b"user-agent"
# A User-Agent header line within a request head (the request line comes first).
_USER_AGENT_LINE = re.compile(rb"\r\nuser-agent[ \t]*:", re.IGNORECASE)


def fold_repeated_user_agent(lines: list[bytes]) -> list[bytes]:
    """Header lines with every User-Agent after the first merged into the first."""
    first: int | None = None
    folded: list[bytes] = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == _FOLDED:
            if first is None:
                first = len(folded)
            else:
                folded[first] = folded[first] + b" " + value.strip()
                continue
        folded.append(line)
    return folded


class _FoldingHeadersParser(HeadersParser):
    def parse_headers(self, lines: list[bytes]) -> Any:
        return super().parse_headers(fold_repeated_user_agent(lines))


class _FoldingRequestParser(HttpRequestParserPy):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers_parser = _FoldingHeadersParser(
            self.max_line_size, self.max_headers, self.max_field_size, self.lax
        )


def needs_folding(first_chunk: bytes) -> bool:
    """Whether a connection whose first bytes are `first_chunk` needs the folding parser: its
    first request's head repeats User-Agent, or does not end within the chunk."""
    head_end = first_chunk.find(b"\r\n\r\n")
    if head_end < 0:
        return True
    return len(_USER_AGENT_LINE.findall(first_chunk, 0, head_end + 2)) > 1


class _TolerantRequestHandler(RequestHandler):
    def __init__(self, manager: Server, *, loop: Any, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._tolerant_loop = loop
        self._first_chunk = True

    def data_received(self, data: bytes) -> None:
        if self._first_chunk and data:
            self._first_chunk = False
            if needs_folding(data):
                self._parser = _FoldingRequestParser(
                    self,
                    self._tolerant_loop,
                    self._read_bufsize,
                    max_line_size=self.max_line_size,
                    max_field_size=self.max_field_size,
                    max_headers=self.max_headers,
                    payload_exception=RequestPayloadError,
                    auto_decompress=True,
                    max_msg_queue_size=self._max_msg_queue_size,
                )
        super().data_received(data)


class _TolerantServer(Server):
    def __call__(self) -> RequestHandler:
        return _TolerantRequestHandler(self, loop=self._loop, **self._kwargs)


class TolerantAppRunner(web.AppRunner):
    """An AppRunner whose connections accept a repeated User-Agent header."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        # aiohttp builds its Server internally; only the connection factory changes.
        server.__class__ = _TolerantServer
        return server
