"""One conversation turn through the pipeline, and the stored-turn operations.

create: front codec decodes the request → state resolves the previous id →
upstream codec builds a self-contained call → the reply is decoded → the node
is committed → the front codec renders it. In native mode the provider keeps
the conversation: the call is relayed byte for byte and recorded beside.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from . import conversations, streaming
from .call import Call
from .codecs import Codec, UpstreamCall, upstream_codec_for
from .errors import ApiError, bad_request, upstream_bad_response
from .ids import mint_id
from .model import IN_PROGRESS, Interaction, ModelReply, Turn, TurnRequest
from .pages import cursor_page
from .relay import STORED_HEADER, relay
from .services import Services
from .upstream import translated_headers

JSON = "application/json"


def json_response(payload: Any, *, status: int = 200, stored: bool = True) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type=JSON,
        headers={STORED_HEADER: "true" if stored else "false"},
    )


def is_native(call: Call) -> bool:
    """The provider keeps this conversation itself (it has this API's state, and state = native)."""
    return call.upstream.api in call.route.codec.stateful_on and call.upstream.state == "native"


def relays_as_is(call: Call, req: TurnRequest) -> bool:
    """Whether the app's call goes to the provider unchanged (recall records beside it):
    native mode, or a stateless API's call that names no earlier turn, so that
    there is no history for recall to rebuild."""
    codec = call.route.codec
    if is_native(call):
        return True
    return codec.stateless and req.previous_id is None and call.upstream.api in codec.same_wire


async def create(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    codec = call.route.codec
    req = codec.parse_create(call.json_body())
    if req.background and not req.store:
        raise bad_request("background interactions must be stored; remove store=false or background=true",
                          param="background")
    if relays_as_is(call, req):
        if req.stream:
            return await streaming.relay_native(request, call, services, req)
        return await create_native(request, call, services, req)
    if req.stream or req.background:
        return await streaming.start_emulated(request, call, services, req)
    return await _create_emulated(call, services, req)


async def create_native(request: web.Request, call: Call, services: Services, req: TurnRequest) -> web.StreamResponse:
    """The provider keeps the conversation: relay the create, record the node it names."""
    codec = call.route.codec
    if req.previous_id and await services.state.foreign(req.previous_id, call.owner):
        raise codec.previous_not_found(req.previous_id)
    storing = req.store and call.recording

    async def remember(status: int, body: bytes) -> None:
        if status != 200 or not storing:
            return
        try:
            reply = codec.parse_reply(orjson.loads(body))
        except (orjson.JSONDecodeError, ApiError):
            return  # relayed as it came; nothing to model
        if reply.provider_id:
            await services.store.save_interaction(new_node(call, req, reply, reply.provider_id, mode="native"))

    return await relay(request, call, services, store_content=storing, on_relayed=remember, whole_json=True,
                       refusal_as_metadata=True)


def upstream_request(call: Call, req: TurnRequest, prior: list[Turn]) -> tuple[Codec, UpstreamCall]:
    """The codec recall calls the upstream with, and the self-contained call for this turn
    after the conversation `prior`.

    Raises the front API's 400 for what that upstream cannot carry, before anything is sent."""
    upstream_codec = upstream_codec_for(call.route.codec, call.upstream.api)
    req.context_max_chars = call.upstream.context_max_chars
    return upstream_codec, upstream_codec.upstream_call(req, prior)


async def ask_upstream(call: Call, services: Services, upstream_codec: Codec,
                       upstream_call: UpstreamCall) -> tuple[ModelReply, bytes, str]:
    """Send a self-contained call: the reply, the provider's answer as it came, and the digest of what was sent.

    An asynchronous provider (one whose create answers a run still going) is
    awaited through the codec's `pending_result` until the run is final."""
    headers = upstream_headers(call, upstream_codec)
    upstream_body = orjson.dumps(upstream_call.body)
    got = await _send(call, services, upstream_codec, upstream_call, headers, upstream_body)
    assert got is not None
    reply, answer = got
    # Each fetch holds a little less than the read timeout, so a slow run is not an upstream timeout.
    wait_s = max(1, min(600, int(call.upstream.timeout_s) - 5))
    while (pending := upstream_codec.pending_result(reply, wait_s)) is not None:
        got = await _send(call, services, upstream_codec, pending, headers, None, pending=True)
        if got is not None:
            reply, answer = got
    return reply, answer, hashlib.sha256(upstream_body).hexdigest()


async def _send(call: Call, services: Services, codec: Codec, upstream_call: UpstreamCall,
                headers: CIMultiDict[str], body: bytes | None, *,
                pending: bool = False) -> tuple[ModelReply, bytes] | None:
    """One call upstream, decoded (and its raw answer); None when a pending result is not ready yet."""
    answer = await services.upstreams.send(call.upstream, upstream_call.method, upstream_call.path,
                                           headers=headers, body=body)
    if pending and answer.status in codec.not_ready_statuses:
        return None
    if answer.status != 200:
        raise codec.upstream_error(call.upstream.name, answer.status, answer.body)
    try:
        return codec.parse_reply(orjson.loads(answer.body)), answer.body
    except orjson.JSONDecodeError as exc:
        raise upstream_bad_response(call.upstream.name, f"its answer is not valid JSON ({exc})") from None
    except ApiError as exc:
        raise upstream_bad_response(call.upstream.name, exc.message) from None


def upstream_headers(call: Call, upstream_codec: Codec) -> CIMultiDict[str]:
    """Headers for a call recall builds in `upstream_codec`'s API, JSON content type set."""
    headers = translated_headers(call.headers, call.query, call.upstream, call.route.codec, upstream_codec)
    headers["Content-Type"] = JSON
    return headers


async def _create_emulated(call: Call, services: Services, req: TurnRequest) -> web.Response:
    codec = call.route.codec
    chain, prior = await conversations.context(services, call, req)
    upstream_codec, upstream_call = upstream_request(call, req, prior)
    reply, answer_body, digest = await ask_upstream(call, services, upstream_codec, upstream_call)
    node = new_node(call, req, reply, mint_id(codec.id_prefix), mode="emulate", parent=chain[-1] if chain else None)
    storing = req.store and call.recording
    body = codec.reply_body(node, answer_body if upstream_codec is codec else None, stored=storing)
    if storing:
        exchange = call.exchange(200, {"content-type": JSON}, body)
        exchange.model, exchange.upstream_digest = node.model, digest
        exchange.input_tokens, exchange.output_tokens = node.usage.input_tokens, node.usage.output_tokens
        # Committed before the id reaches the app: an immediate follow-up finds it.
        await services.store.save_interaction(node, exchange)
        if req.conversation:
            await conversations.add_turn(services, req.conversation, node)
    else:
        exchange = call.exchange(200, {"content-type": JSON}, None)
        exchange.model, exchange.input_tokens, exchange.output_tokens = node.model, node.usage.input_tokens, node.usage.output_tokens
        await services.record(exchange, content=False)
    return web.Response(body=body, content_type=JSON, headers={STORED_HEADER: "true" if storing else "false"})


def new_node(call: Call, req: TurnRequest, reply: ModelReply, node_id: str, *, mode: str,
             parent: Interaction | None = None) -> Interaction:
    """The node a turn makes: the app's new input, the reply, and where it hangs in its chain."""
    now = time.time()
    return Interaction(
        id=node_id,
        owner=call.owner,
        upstream=call.upstream.name,
        front=call.route.codec.name,
        mode=mode,
        model=req.model or reply.model,
        status=reply.status,
        input=req.input,
        output=reply.output,
        created=call.created,
        updated=now,
        parent_id=parent.id if parent else req.previous_id,
        root_id=parent.root_id if parent else None,
        usage=reply.usage,
        error=reply.error,
        request=call.route.codec.echoed(req),
        provider_id=reply.provider_id,
        run_id=reply.run_id,
    )


async def _visible(call: Call, services: Services, codec: Codec) -> Interaction | None:
    assert call.route.resource_id is not None
    return await services.state.lookup(call.route.resource_id, call.owner)


async def get(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    codec = call.route.codec
    found = await _visible(call, services, codec)
    if found is None or found.mode == "native":
        if is_native(call) and not await _foreign(call, services):
            return await relay(request, call, services)
        raise codec.not_found(call.route.resource_id or "")
    if call.query_flag("stream"):
        return await streaming.follow(request, call, services, found)
    return json_response(codec.render(found, include_input=call.query_flag("include_input")))


async def delete(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    codec = call.route.codec
    resource_id = call.route.resource_id or ""
    found = await _visible(call, services, codec)
    if found is None or found.mode == "native":
        if not is_native(call) or await _foreign(call, services):
            raise codec.not_found(resource_id)

        async def forget(status: int, body: bytes) -> None:
            if 200 <= status < 300 and found is not None:
                await services.store.delete_interaction(resource_id)

        return await relay(request, call, services, on_relayed=forget)
    await services.store.delete_interaction(resource_id)
    return json_response({})


async def cancel(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    codec = call.route.codec
    resource_id = call.route.resource_id or ""
    found = await _visible(call, services, codec)
    if found is None or found.mode == "native":
        if not is_native(call) or await _foreign(call, services):
            raise codec.not_found(resource_id)
        return await relay(request, call, services)
    if found.status != IN_PROGRESS or not await services.runs.cancel(resource_id):
        raise bad_request(
            f"interaction '{resource_id}' is {found.status}; only an interaction still in progress can be cancelled"
        )
    cancelled = await services.state.lookup(resource_id, call.owner)
    return json_response(codec.render(cancelled or found))


async def _foreign(call: Call, services: Services) -> bool:
    return await services.state.foreign(call.route.resource_id or "", call.owner)


async def input_items(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    """GET …/{id}/input_items: the turn's own input, as a cursor page."""
    codec = call.route.codec
    found = await _visible(call, services, codec)
    if found is None or found.mode == "native":
        if is_native(call) and not await _foreign(call, services):
            return await relay(request, call, services)
        raise codec.not_found(call.route.resource_id or "")
    return json_response(cursor_page(codec.input_items(found), call.query))
