"""An HTTP server that accepts what real SDKs send.

google-genai 1.56 sends `User-Agent` twice. aiohttp's request parsers reject a
repeated singleton header with 400 and offer no setting for it; Google's
servers accept it, so recall must too. Here the repeated User-Agent lines are
folded into one before aiohttp's own header parser runs; every other check
(duplicate Host, Content-Length, Transfer-Encoding...) stays as strict as it is.

The folding needs aiohttp's pure-Python request parser (the C one has no hook),
so the server's connection handler is swapped for one that uses it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_parser import HeadersParser, HttpRequestParserPy
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_server import Server

_FOLDED = b"user-agent"


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


class _TolerantRequestHandler(RequestHandler):
    def __init__(self, manager: Server, *, loop: Any, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._parser = _FoldingRequestParser(
            self,
            loop,
            self._read_bufsize,
            max_line_size=self.max_line_size,
            max_field_size=self.max_field_size,
            max_headers=self.max_headers,
            payload_exception=RequestPayloadError,
            auto_decompress=True,
        )


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
