"""recall's request log: one line per request, never a credential, never a body.

    POST /gemini/v1beta/interactions 200 41.7ms

The path is logged as it came, percent-encoded (so a crafted path cannot forge
log lines), with the credential query parameters (`?key=`) removed. Headers and
bodies are never logged: they carry keys and people's conversations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .auth import redacted_query
from .origin import REFUSED

access_log = logging.getLogger("recall.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def log_path(request: web.Request) -> str:
    """The request's path and query fit for a log line: encoded, credentials removed."""
    path, _, query = request.raw_path.partition("?")
    query = redacted_query(query)
    return f"{path}?{query}" if query else path


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = "-"  # the app went away before an answer
    try:
        response = await handler(request)
        status = str(response.status)
        return response
    except web.HTTPException as exc:
        status = str(exc.status)
        raise
    except Exception:
        status = "500"
        raise
    finally:
        refused = request.get(REFUSED)
        # A refused request (proxy/origin.py) says why on its one line: nothing else is logged for it.
        access_log.info("%s %s %s %.1fms%s", request.method, log_path(request), status,
                        (time.perf_counter() - started) * 1000, f" refused: {refused}" if refused else "")
