"""recall's request log: one line per request, never a credential, never a body.

    POST /gemini/v1beta/interactions 200 41.7ms model=gemini-3-flash-preview cache=recorded id=v1_Ab3…
    POST /openai/v1/responses 400 2.1ms model=gpt-5.5 cache=live error="previous_response_not_found: …"

What LiteLLM's proxy and other gateways log: method, path, status, latency, then
the model, how the cache answered (`live` forwarded, `recorded` forwarded and
recorded in auto mode, `hit` replayed, `miss` not in the recordings), the
interaction id the app was given, and for an error its reason (the message the
app received, which never holds a credential). `--log-format json` writes the
same fields as one JSON object per line.

The path is logged as it came, percent-encoded (so a crafted path cannot forge
log lines), with the credential query parameters (`?key=`) removed. Headers and
bodies are never logged: they carry keys and people's conversations.

The model and the interaction id come from the audit record the request left
(`pipeline/log_note.py`, noted where turns and exchanges are recorded), through a context
variable, so the request path does not have to carry them here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ..auth import redacted_query
from ..pipeline.log_note import AccessNote, current_note

access_log = logging.getLogger("recall.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# How the cache answered a request (hit, miss or live), set by the server; X-Recall-Cache says it too.
CACHE_STATUS = web.RequestKey("recall_cache", str)


def log_path(request: web.Request) -> str:
    """The request's path and query fit for a log line: encoded, credentials removed."""
    path, _, query = request.raw_path.partition("?")
    query = redacted_query(query)
    return f"{path}?{query}" if query else path


def _error_message(body: Any) -> str | None:
    """The `message` of an error body in any front API's shape ({"error": {"message"}}, Parallel's, …)."""
    if not isinstance(body, (bytes, bytearray)) or len(body) > 65536:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("message"), str):
                code = item.get("code") or item.get("type")
                return f"{code}: {item['message']}" if isinstance(code, str) and code else item["message"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _cache_status(request: web.Request, response: web.StreamResponse | None, note: AccessNote) -> str | None:
    cache = request.get(CACHE_STATUS)
    if cache == "miss" and note.interaction_id is not None or (
            cache == "miss" and response is not None and response.headers.get("X-Recall-Stored") == "true"):
        return "recorded"  # auto mode: forwarded, and now in the recordings
    return cache


def access_fields(request: web.Request, status: str, elapsed_ms: float, note: AccessNote,
                  response: web.StreamResponse | None) -> dict[str, Any]:
    error = note.error
    if response is not None and response.status >= 400 and isinstance(response, web.Response):
        error = _error_message(response.body) or error
    return {"method": request.method, "path": log_path(request), "status": status,
            "latency_ms": round(elapsed_ms, 1), "model": note.model, "cache": _cache_status(request, response, note),
            "interaction_id": note.interaction_id, "error": error}


def access_line(fields: dict[str, Any]) -> str:
    line = f"{fields['method']} {fields['path']} {fields['status']} {fields['latency_ms']:.1f}ms"
    for name, label in (("model", "model"), ("cache", "cache"), ("interaction_id", "id")):
        if fields.get(name):
            line += f" {label}={fields[name]}"
    if fields.get("error"):
        # JSON-quoted: a message cannot break the line or forge another.
        line += " error=" + orjson.dumps(str(fields["error"])[:300]).decode()
    return line


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    note = AccessNote()
    token = current_note.set(note)
    status = "-"  # the app went away before an answer
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = str(response.status)
        return response
    except web.HTTPException as exc:
        status = str(exc.status)
        response = exc if isinstance(exc, web.Response) else None
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        note.error = note.error or "the app closed the connection before the answer was complete"
        raise
    except Exception:
        status = "500"
        raise
    finally:
        current_note.reset(token)
        fields = access_fields(request, status, (time.perf_counter() - started) * 1000, note, response)
        access_log.info(access_line(fields), extra={"access": fields})


# -- how `recall serve` writes its log -------------------------------------------------

# Failures that are part of a proxy's life (an app hanging up, a provider going away):
# one line saying what happened, never a traceback.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (ConnectionResetError, BrokenPipeError, asyncio.CancelledError,
                                                       asyncio.TimeoutError)


def _expected(record: logging.LogRecord) -> bool:
    return bool(record.exc_info and record.exc_info[0] and issubclass(record.exc_info[0], EXPECTED_FAILURES))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if _expected(record):
            assert record.exc_info is not None
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None,
                                            "msg": f"{record.getMessage()}: {record.exc_info[1]!r}", "args": ()})
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the access fields for requests, the message for the rest."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
                               "level": record.levelname.lower(), "logger": record.name}
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out.update(access)
        else:
            out["message"] = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            out["exception"] = repr(record.exc_info[1])
            if not _expected(record):
                out["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str = "info", fmt: str = "text", quiet: bool = False) -> None:
    """recall serve's log on stderr. --quiet keeps warnings and errors only (no access lines)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else getattr(logging, level.upper()))
