"""The contract check hooked into an aiohttp app: every answer it sends is checked as it is sent.

aiohttp calls `on_response_prepare` handlers with each response just before its
headers go out; there the status and headers are final, a `web.Response`'s body
is known, and a `StreamResponse` (a stream, or a relayed body written in pieces)
can be followed by wrapping that one response object's `write`/`write_eof`.
Nothing of aiohttp's own is patched: only the response instance the signal hands us.

An answer a fake is told to get wrong on purpose is marked with `off_contract(response,
why)` before it is prepared, and only that answer is let through.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from . import StreamCheck, Violation, check_answer, check_status, contract_for, record

_OFF_CONTRACT = web.ResponseKey("tests.contract.off_contract", str)
#: Deliberately off-contract answers let through, with why (a test can assert its switch was used).
EXEMPTED: list[str] = []


def off_contract(response: web.StreamResponse, why: str) -> web.StreamResponse:
    """Mark one answer as off contract on purpose (a fake's misbehaviour switch)."""
    response[_OFF_CONTRACT] = why
    return response


def _decompressor(encoding: str) -> Callable[[bytes], bytes] | None:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    if encoding == "deflate":
        return zlib.decompressobj().decompress
    return None


def contract_tap(side: str, path_of: Callable[[web.Request], str | None], *, answers_apps: bool = False,
                 api_of: Callable[[web.Request], str | None] = lambda request: None,
                 ) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An on_response_prepare handler checking each answer of `path_of(request)` (None: not checked).
    `answers_apps`: the server answers apps directly (recall), so the app's SDK revision matters.
    `api_of`: the upstream `api` of the provider answering, where a path alone does not say it."""

    async def tap(request: web.Request, response: web.StreamResponse) -> None:
        try:
            path = path_of(request)
            if answers_apps and path is not None and await _earlier_gemini_revision(request, path):
                return
            _follow(side, request, response, path, api_of(request))
        except Exception as exc:  # a crash of the check must fail the test, not the answer
            record([Violation(side, request.method, request.path, response.status, "(checker)", repr(exc))])

    return tap


_GENAI_1X = re.compile(r"google-genai-sdk/1\.")


async def _earlier_gemini_revision(request: web.Request, path: str) -> bool:
    """Whether an Interactions call comes from an app on google-genai 1.5x, which speaks the
    API's earlier revision (`outputs`, `content.*` events; shared/specs/gemini-interactions.md).
    Its contract is google-genai 1.5x's models, which this environment does not install (only
    tests/test_gemini_legacy_sdk.py's own virtual environment has them): such answers are not
    checked here; that test runs the real 1.56 SDK against them instead. The SDK names itself
    in its headers; raw-HTTP callers of that revision send `{role, content}` input turns."""
    if "/interactions" not in path:
        return False
    if any(_GENAI_1X.search(request.headers.get(h, "")) for h in ("x-goog-api-client", "user-agent")):
        return True
    try:
        body = orjson.loads(await request.read())  # the handler read it already: aiohttp keeps it
    except (orjson.JSONDecodeError, web.HTTPException, ConnectionError, RuntimeError):
        return False
    turns = body.get("input") if isinstance(body, dict) else None
    return isinstance(turns, list) and any(isinstance(t, dict) and "role" in t for t in turns)


def _follow(side: str, request: web.Request, response: web.StreamResponse, path: str | None,
            upstream_api: str | None) -> None:
    if path is None or (contract := contract_for(path, upstream_api)) is None:
        return
    if _OFF_CONTRACT in response:
        EXEMPTED.append(f"{side} {request.method} {path}: {response[_OFF_CONTRACT]}")
        return
    method, status = request.method, response.status
    content_type = response.headers.get("Content-Type", response.content_type or "")
    encoding = response.headers.get("Content-Encoding", "identity").lower()
    if isinstance(response, web.Response):
        body = response.body
        if isinstance(body, bytes | bytearray) and encoding == "identity":
            record(check_answer(side, method, path, status, content_type, bytes(body), contract))
        return
    found = check_status(side, method, path, status, content_type, contract)
    if found:
        record(found)
        return
    decode = (lambda data: data) if encoding == "identity" else _decompressor(encoding)
    if decode is None:
        return  # an encoding we cannot read (br, zstd): relayed bytes, checked at the fake already
    if content_type.split(";")[0].strip().lower() == "text/event-stream":
        stream = StreamCheck(side, method, path, status, contract)
        _wrap(response, on_data=lambda data: record(stream.feed(decode(data))), on_end=None)
        return
    pieces: list[bytes] = []
    _wrap(response, on_data=lambda data: pieces.append(decode(data)),
          on_end=lambda: record(check_answer(side, method, path, status, content_type, b"".join(pieces), contract)))


def _wrap(response: web.StreamResponse, on_data: Callable[[bytes], None], on_end: Callable[[], None] | None) -> None:
    write, write_eof = response.write, response.write_eof

    async def tapped_write(data: bytes | bytearray | memoryview) -> None:
        await write(data)
        on_data(bytes(data))

    async def tapped_write_eof(data: bytes = b"") -> None:
        await write_eof(data)
        if data:
            on_data(bytes(data))
        if on_end is not None:
            on_end()

    response.write = tapped_write  # type: ignore[method-assign]
    response.write_eof = tapped_write_eof  # type: ignore[method-assign]


def check_recall(config: object) -> Callable[[web.Application], None]:
    """recall's `extend` hook (proxy.http.app.start) that checks every answer recall sends under a
    mounted upstream, against the contract of the front API its path names (`/<mount>/v1/messages`:
    Anthropic's). recall's own endpoints (/_recall/…) and unknown mounts have no provider contract."""
    mounts = getattr(config, "upstreams", {})

    def path_of(request: web.Request) -> str | None:
        name, _, rest = request.path.lstrip("/").partition("/")
        return "/" + rest if name in mounts else None

    def api_of(request: web.Request) -> str | None:
        upstream = mounts.get(request.path.lstrip("/").partition("/")[0])
        return getattr(upstream, "api", None)

    def extend(app: web.Application) -> None:
        app.on_response_prepare.append(contract_tap("recall", path_of, answers_apps=True, api_of=api_of))

    return extend
