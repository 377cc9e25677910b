"""One conversation turn through the pipeline, and the stored-turn operations.

create: front codec decodes the request → state resolves the previous id →
upstream codec builds a self-contained call → the reply is decoded → the node
is committed → the front codec renders it. In native mode the provider keeps
the conversation: the call is relayed byte for byte and recorded beside.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..endpoints import conversations
from ..endpoints.pages import cursor_page
from ..errors import ApiError, bad_request, succeeded
from ..ids import mint_id
from ..model import IN_PROGRESS, Interaction, ModelReply, TurnRequest
from . import stream as streaming
from .call import Call
from .provider_call import ask_upstream, digest_of, native_recorder, new_node, upstream_request
from .relay import STORED_HEADER, relay
from .runs import DELETED_WHILE_RUNNING
from .services import Services

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
    body = call.json_body()
    if is_native(call):
        # Native mode is a relay first: the provider judges the request. recall needs only
        # the fields it reads (ids, store, stream), taken leniently where its own parse refuses.
        try:
            req = codec.parse_create(body)
        except ApiError:
            req = codec.relay_view(body)  # the node records what recall could read
        if req.stream:
            return await streaming.relay_native(request, call, services, req)
        return await create_native(request, call, services, req)
    # Emulate mode: recall is the server and judges as the provider would.
    req = codec.parse_create(body)
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
    return await relay(request, call, services, store_content=storing, on_relayed=native_recorder(call, services, req),
                       whole_json=True, refusal_as_metadata=True)


async def _create_emulated(call: Call, services: Services, req: TurnRequest) -> web.Response:
    codec = call.route.codec
    chain, prior = await conversations.context(services, call, req)
    upstream_codec, upstream_call = upstream_request(call, req, prior)
    storing = req.store and call.recording
    parent, node_id = chain[-1] if chain else None, mint_id(codec.id_prefix)
    if storing:
        # The store takes the turn before the provider is asked (and bills it): a database
        # that cannot write fails here, at once, with a 503 that costs the app nothing.
        await services.store.save_interaction(
            new_node(call, req, ModelReply(output=[], status=IN_PROGRESS), node_id, mode="emulate", parent=parent))
    try:
        reply, answer_body = await ask_upstream(call, services, upstream_codec, upstream_call)
    except BaseException:
        if storing:
            await services.forget_unstarted(node_id)  # the turn never happened: no trace of it
        raise
    node = new_node(call, req, reply, node_id, mode="emulate", parent=parent)
    body = codec.reply_body(node, answer_body if upstream_codec is codec else None, stored=storing)
    if storing:
        exchange = call.exchange(200, {"content-type": JSON}, body)
        exchange.model, exchange.upstream_digest = node.model, digest_of(upstream_call)
        exchange.input_tokens, exchange.output_tokens = node.usage.input_tokens, node.usage.output_tokens
        # Committed before the id reaches the app: an immediate follow-up finds it.
        storing = await services.keep_answer(node, exchange)
        if storing and req.conversation:
            await conversations.add_turn(services, req.conversation, node)
    else:
        exchange = call.exchange(200, {"content-type": JSON}, None)
        exchange.model, exchange.input_tokens, exchange.output_tokens = node.model, node.usage.input_tokens, node.usage.output_tokens
        await services.record(exchange, content=False)
    return web.Response(body=body, content_type=JSON, headers={STORED_HEADER: "true" if storing else "false"})


async def _target(call: Call, services: Services) -> tuple[Interaction | None, bool]:
    """The stored turn an id names, and whether the provider holds it instead (native
    mode: the call is relayed). An id neither holds for this caller is the front API's
    not-found, never a hint that another key owns it."""
    resource_id = call.route.resource_id or ""
    found = await services.state.lookup(resource_id, call.owner)
    if found is not None and found.mode != "native":
        return found, False
    if is_native(call) and not await services.state.foreign(resource_id, call.owner):
        return found, True
    raise call.route.codec.not_found(resource_id)


async def get(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    found, relayed = await _target(call, services)
    if relayed or found is None:
        return await relay(request, call, services)
    if call.query_flag("stream"):
        return await streaming.follow(request, call, services, found)
    return json_response(call.route.codec.render(found, include_input=call.query_flag("include_input")))


async def delete(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    resource_id = call.route.resource_id or ""
    found, relayed = await _target(call, services)
    if relayed:

        async def forget(status: int, body: bytes) -> None:
            if succeeded(status) and found is not None:  # recall's record of it goes too
                await services.store.delete_interaction(resource_id)

        return await relay(request, call, services, on_relayed=forget)
    # Erased first, then its run stopped: the run's last write then finds it erased (a delete always wins).
    await services.store.delete_interaction(resource_id)
    await services.runs.cancel(resource_id, DELETED_WHILE_RUNNING)
    return json_response({})


async def cancel(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    resource_id = call.route.resource_id or ""
    found, relayed = await _target(call, services)
    if relayed or found is None:
        return await relay(request, call, services)
    if found.status != IN_PROGRESS or not await services.runs.cancel(resource_id):
        raise bad_request(
            f"interaction '{resource_id}' is {found.status}; only an interaction still in progress can be cancelled"
        )
    cancelled = await services.state.lookup(resource_id, call.owner)
    return json_response(call.route.codec.render(cancelled or found))


async def input_items(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    """GET …/{id}/input_items: the turn's own input, as a cursor page."""
    found, relayed = await _target(call, services)
    if relayed or found is None:
        return await relay(request, call, services)
    return json_response(cursor_page(call.route.codec.input_items(found), call.query))
