"""The answers recall makes itself: JSON bodies, and the header saying whether a call was stored."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSON = "application/json"
# On every proxied answer: whether recall kept the call's content ("false" for store=false,
# X-Recall-Store: false, or a database that could not take it).
STORED_HEADER = "X-Recall-Stored"


def stored_header(stored: bool) -> dict[str, str]:
    return {STORED_HEADER: "true" if stored else "false"}


def json_response(payload: Any, *, status: int = 200, stored: bool = True,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type=JSON,
                        headers={**stored_header(stored), **(headers or {})})


def json_bytes_response(body: bytes, *, stored: bool, status: int = 200) -> web.Response:
    """A JSON answer already serialised (the provider's own bytes, or a body also recorded)."""
    return web.Response(body=body, status=status, content_type=JSON, headers=stored_header(stored))
