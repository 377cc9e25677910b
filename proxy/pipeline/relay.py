"""Relaying a call to the provider unchanged, streaming the answer back as it comes.

Used for native-mode calls and for every path recall does not model, so an SDK
never breaks on an endpoint recall has not learnt. The body is teed into the
audit record as it passes (bounded by [server] max_body_mb).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web

from ..auth import redacted_headers
from ..codecs import UPSTREAM_CODECS
from ..errors import succeeded, upstream_bad_response, upstream_timeout
from .call import Call
from .client import DROPPED_RESPONSE_HEADERS, forward_headers, forward_query
from .services import Services

# Called with the relayed status and the full response body once it has passed; returns
# the id of the interaction it stored from them, if any, so that the exchange is filed
# under that interaction (shown with it, erased with it).
OnRelayed = Callable[[int, bytes], Awaitable[str | None]]

STORED_HEADER = "X-Recall-Stored"


async def relay(
    request: web.Request,
    call: Call,
    services: Services,
    *,
    store_content: bool = True,
    on_relayed: OnRelayed | None = None,
    whole_json: bool = False,
    refusal_as_metadata: bool = False,
) -> web.StreamResponse:
    """Relay the call; `whole_json` holds the answer until it has all arrived and
    parses, for modelled JSON answers: a provider that breaks off or sends
    something unreadable then gets a clear 502, never a truncated 200.
    `refusal_as_metadata`: a create the provider refused (4xx, 5xx) made no turn,
    so its row keeps no bodies, as the row of a call recall refused itself."""
    response = await open_relayed(call, services)
    return await relay_response(request, call, services, response, store_content=store_content,
                                on_relayed=on_relayed, whole_json=whole_json,
                                refusal_as_metadata=refusal_as_metadata)


async def open_relayed(call: Call, services: Services) -> aiohttp.ClientResponse:
    """The call sent to the provider as it is; the answer with its body still unread."""
    upstream = call.upstream
    return await services.upstreams.open(
        upstream,
        call.method,
        call.raw_tail,
        headers=forward_headers(call.headers, upstream, UPSTREAM_CODECS.get(upstream.api)),
        body=call.body or None,
        query=forward_query(call.query, upstream),
    )


async def relay_response(
    request: web.Request,
    call: Call,
    services: Services,
    response: aiohttp.ClientResponse,
    *,
    store_content: bool = True,
    on_relayed: OnRelayed | None = None,
    whole_json: bool = False,
    refusal_as_metadata: bool = False,
) -> web.StreamResponse:
    """Pass on a provider's answer to a relayed call (see relay)."""
    upstream = call.upstream
    out = web.StreamResponse(status=response.status, reason=response.reason)
    for name, value in response.headers.items():
        if name.lower() not in DROPPED_RESPONSE_HEADERS:
            out.headers.add(name, value)
    out.headers[STORED_HEADER] = "true" if store_content else "false"
    limit = services.config.max_body_mb * 1024 * 1024
    kept = bytearray()
    error: str | None = None
    app_connected = True
    async with response:
        try:
            async for chunk in response.content.iter_any():
                if app_connected and not whole_json:
                    try:
                        if not out.prepared:
                            await out.prepare(request)
                        await out.write(chunk)
                    except ConnectionResetError:
                        # The app went away: read the provider to the end anyway,
                        # so that what it answered is still recorded.
                        app_connected = False
                if whole_json:
                    kept += chunk
                elif len(kept) < limit:
                    kept += chunk[: limit - len(kept)]
        except TimeoutError:
            if not out.prepared:
                raise upstream_timeout(upstream.name, upstream.timeout_s) from None
            error = "the provider stopped answering mid-body"
        except aiohttp.ClientError as exc:
            if not out.prepared:
                raise upstream_bad_response(upstream.name, str(exc) or type(exc).__name__) from None
            error = f"the provider's connection broke mid-body: {exc or type(exc).__name__}"
    body = bytes(kept)
    if whole_json and succeeded(response.status):
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise upstream_bad_response(upstream.name, f"its answer is not valid JSON ({exc})") from None
    exchange = call.exchange(response.status, redacted_headers(out.headers.items()), body)
    exchange.error = error
    if on_relayed is not None and error is None:
        exchange.interaction_id = await on_relayed(response.status, body)
    if refusal_as_metadata and response.status >= 400:
        store_content = False
        if not out.prepared:
            out.headers[STORED_HEADER] = "false"
    await services.record(exchange, content=store_content and call.recording)
    if error is not None and out.prepared:
        # The app has part of a body: cut its connection too, so that it sees a
        # broken answer (and may retry) rather than a short one that looks whole.
        if request.transport is not None:
            request.transport.abort()
        return out
    if app_connected:
        try:
            if not out.prepared:
                await out.prepare(request)
            if whole_json:
                await out.write(body)
            await out.write_eof()
        except ConnectionResetError:
            pass
    return out
