"""A create: one conversation turn through the pipeline, whatever its shape.

The front codec decodes the request; then either
- the provider keeps the conversation (native mode, or a stateless API's call
  that continues nothing): the call is relayed byte for byte and recorded
  beside (`relay_turn`); or
- recall keeps it (`emulate`): state resolves what the turn continues, the
  upstream codec builds a self-contained call (refusing what that API cannot
  carry before anything is written), the in-progress node is committed before
  the provider is asked, and a `Run` (pipeline/run.py) reads the answer,
  passes it on and commits the finished node.

A turn's shape only decides where its answer goes: plain (the run drained,
then one JSON answer), streamed (the app's stream), background or a task run
(answered at once, the run goes on as a task of its own).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp
import orjson
from aiohttp import web

from ..codecs import UpstreamCall
from ..codecs.base import StreamEncoder
from ..errors import ApiError, ContextOverflow, bad_request, succeeded
from ..ids import mint_id
from ..model import IN_PROGRESS, Interaction, ModelReply, TurnRequest
from ..sse import SSE_CONTENT_TYPE
from ..store.records import Exchange
from .answers import JSON, json_bytes_response
from .call import Call
from .compaction import open_sealed
from .events import EventLog, Sink
from .history import context, thread_of
from .provider_call import (
    ask_upstream,
    digest_of,
    native_recorder,
    new_node,
    open_upstream_stream,
    upstream_codec_of,
    upstream_request,
    whole_reply,
)
from .relay import open_relayed, relay, relay_response
from .run import ENCODE, NATIVE, RELABEL, WHOLE, Run
from .services import Services
from .window import Fitter


def relays_as_is(call: Call, req: TurnRequest) -> bool:
    """Whether the app's call goes to the provider unchanged (recall records beside it):
    native mode, or a stateless API's call that names no earlier turn, so that
    there is no history for recall to rebuild."""
    codec = call.route.codec
    if call.native:
        return True
    return codec.stateless and req.previous_id is None and codec.same_wire_on(call.upstream.api, req.model)


async def create(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    codec = call.route.codec
    body = call.json_body()
    if call.native:
        # Native mode is a relay first: the provider judges the request. recall needs only
        # the fields it reads (ids, store, stream), taken leniently where its own parse refuses.
        try:
            req = codec.parse_create(body)
        except ApiError:
            req = codec.relay_view(body)  # the node records what recall could read
        return await relay_turn(request, call, services, req)
    # Emulate mode: recall is the server and judges as the provider would.
    req = codec.parse_create(body)
    if req.background and not req.store:
        raise bad_request("background interactions must be stored; remove store=false or background=true",
                          param="background")
    if relays_as_is(call, req):
        return await relay_turn(request, call, services, req)
    return await emulate(request, call, services, req)


# -- the provider keeps the conversation ---------------------------------------------


async def relay_turn(request: web.Request, call: Call, services: Services, req: TurnRequest) -> web.StreamResponse:
    """Relay the create; record the node the provider's answer names."""
    codec = call.route.codec
    if req.previous_id and await services.state.foreign(req.previous_id, call.owner):
        raise codec.previous_not_found(req.previous_id)
    storing = call.stores(req)
    if not req.stream:
        return await relay(request, call, services, store_content=storing,
                           on_relayed=native_recorder(call, services, req), whole_json=True, refusal_as_metadata=True)
    response = await open_relayed(call, services)
    if not succeeded(response.status):
        async with response:
            body = await response.read()
        return web.Response(body=body, status=response.status,
                            content_type=response.content_type or "application/json")
    if response.content_type != SSE_CONTENT_TYPE:
        # A relay passes on what the provider chose to answer (a whole JSON reply to a stream
        # request, as a contract that declares no event stream for the path allows) and records
        # it as it would a JSON create; turning it into a 502 would be recall judging the provider.
        return await relay_response(request, call, services, response, store_content=storing,
                                    on_relayed=native_recorder(call, services, req), whole_json=True,
                                    refusal_as_metadata=True)
    # The node's id is the provider's, known once its stream names it.
    node = Interaction(
        id="", owner=call.owner, upstream=call.upstream.name, front=codec.name, mode="native", model=req.model,
        status=IN_PROGRESS, input=req.input, output=[], created=call.created, updated=time.time(),
        parent_id=req.previous_id, request=codec.echoed(req),
    )
    sink = Sink(request, storing)
    run = Run(services, call, node, mode=NATIVE, storing=storing, encoder=codec.stream_encoder(call.headers, req.raw),
              decoder=codec.stream_decoder(), sink=sink, log=EventLog(services.store, services.runs, None, storing), response=response)
    await asyncio.shield(services.runs.start(mint_id("native_"), run.run()))
    return sink.response


# -- recall keeps the conversation ------------------------------------------------------


async def emulate(request: web.Request, call: Call, services: Services, req: TurnRequest) -> web.StreamResponse:
    """An emulated turn, plain, streamed, background or a task run: one skeleton."""
    front = call.route.codec
    chain, prior = await context(services, call, req)
    req = front.continuing(req, chain)  # what the chain already holds is sent once
    open_sealed(services.sealer, req.input)
    upstream_codec = upstream_codec_of(call, req)
    background = req.background and not req.stream
    # The provider's stream is read where there is one to read and anyone to pass it to.
    streamed = (req.stream or req.background) and upstream_codec.reads_streams and not front.asks_whole
    node_id = mint_id(front.id_prefix)
    thread = thread_of(chain, req) or node_id
    # A chain too long for the model's window is cut here when the app allows it (pipeline/window.py).
    fitter = Fitter(req, chain, prior, window=call.upstream.window_for(req.model), truncating=front.truncates(req))
    sent_req = req if req.stream == streamed else dataclasses.replace(req, stream=streamed)
    # Built before anything is written: what the upstream cannot carry is a 400 now, not a failed turn.
    _, upstream_call = upstream_request(call, sent_req, fitter.fit(), thread=thread)
    storing = call.stores(req)
    node = new_node(call, req, ModelReply(output=[], status=IN_PROGRESS), node_id, mode="emulate",
                    parent=chain[-1] if chain else None)
    fitter.record(node)
    if front.run_id_prefix:
        node.run_id = mint_id(front.run_id_prefix)
    digest = digest_of(upstream_call)
    created: tuple[int, bytes] | None = None
    exchange: Exchange | None = None
    if background:
        # A background create answers at once, as the hosted APIs do; its audit row is kept
        # with the in-progress node, so that the call is on record as soon as it is answered.
        status, rendered = front.created_answer(node)
        created = (status, orjson.dumps(rendered))
        exchange = call.turn_exchange(node, status, JSON, created[1] if storing else None)
        exchange.upstream_digest = digest
    # The node exists before its id reaches the app, and before the provider is asked.
    if storing:
        await services.admit(node, exchange)
    elif exchange is not None:
        services.runs.keep_unstored(node)  # its result must still be readable
        await services.record(exchange, content=False)

    encoder: StreamEncoder | None = None
    if req.stream or background:
        encoder = front.stream_encoder(call.headers, req.raw)
    if not streamed:
        mode = WHOLE
    else:
        mode = RELABEL if upstream_codec is front and encoder is not None and encoder.can_relabel else ENCODE

    def refitted(refused: ContextOverflow) -> UpstreamCall:
        """After the provider's context-length error: the call cut to its limit (once), or the error."""
        shorter = fitter.refit(refused)
        if shorter is None:
            if front.truncation_hint and not fitter.truncating:
                refused.message += f" ({front.truncation_hint})"
            raise refused
        fitter.record(node)
        retry = upstream_request(call, sent_req, shorter, thread=thread)[1]
        run.upstream_digest = digest_of(retry)
        return retry

    async def open_stream() -> aiohttp.ClientResponse:
        try:
            return await open_upstream_stream(call, services, upstream_codec, upstream_call)
        except ContextOverflow as refused:
            return await open_upstream_stream(call, services, upstream_codec, refitted(refused))

    async def ask() -> tuple[ModelReply, bytes]:
        try:
            return await ask_upstream(call, services, upstream_codec, upstream_call)
        except ContextOverflow as refused:
            return await ask_upstream(call, services, upstream_codec, refitted(refused))

    run = Run(services, call, node, mode=mode, storing=storing, encoder=encoder,
              decoder=upstream_codec.stream_decoder() if streamed else None,
              sink=Sink(request, storing) if req.stream else None,
              log=EventLog(services.store, services.runs, node.id, storing) if encoder is not None else None,
              began=background, upstream_digest=digest, conversation=req.conversation,
              open_stream=open_stream, ask=ask, read_whole=lambda answer: whole_reply(call, upstream_codec, answer),
              created=created, same_api=upstream_codec is front)
    if run.sink is None and created is None:
        # A plain turn is the run drained, in the request's own task (aiohttp lets a handler
        # finish when its app disconnects). Committed before the id reaches the app: an
        # immediate follow-up finds it.
        await run.run()
        return json_bytes_response(run.reply_body(), stored=run.saved)
    # A stream or a background run is a task of its own: it goes on without the app, and
    # DELETE, cancel and shutdown reach it (pipeline/running.py).
    task = services.runs.start(node.id, run.run())
    if created is not None:
        # A provider that refuses later fails the run (visible on GET) instead of the create.
        return json_bytes_response(created[1], status=created[0], stored=storing)
    await asyncio.shield(task)
    assert run.sink is not None
    return run.sink.response
