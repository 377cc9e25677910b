"""Streamed and background turns: relayed as they arrive, teed into the store.

Three ways a provider's stream reaches the app:
- native: the provider's bytes untouched (the provider keeps the state);
- relabel: emulate mode over the same wire API; events pass untouched except
  the few that carry the interaction id, which get recall's id;
- encode: a different wire API upstream; its events are decoded into neutral
  deltas and encoded as the front API's events.
Whichever way, every event sent is recorded (for resume and replay) and the
reply is assembled for the node, which is committed when the stream ends.
The run is a task of its own: an app that disconnects loses nothing.
An upstream API recall cannot read streams of (Parallel's task runs) is asked
whole instead, and the finished reply is encoded as the front API's events
(whole mode).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from ..codecs import UPSTREAM_CODECS, Codec
from ..codecs.base import Frame, StreamDecoder, StreamEncoder
from ..endpoints import conversations
from ..errors import ApiError, bad_request, succeeded, upstream_bad_response
from ..ids import mint_id
from ..model import CANCELLED, FAILED, IN_PROGRESS, Interaction, ModelReply, StreamDelta, TurnRequest, deltas_of
from ..sse import SSE_CONTENT_TYPE, SSEEvent, iter_events
from ..store import StoreUnavailable
from .call import Call
from .client import forward_headers
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
from .relay import STORED_HEADER, relay_response
from .runs import CANCELLED_BY_APP
from .services import Services

NATIVE, RELABEL, ENCODE, WHOLE = "native", "relabel", "encode", "whole"
# While a reply asked whole is awaited, the app's stream gets a comment this often.
_KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keep-alive\n\n"
# Events are written behind the stream once this much is pending, or this long has passed.
_FLUSH_BYTES = 64 * 1024
_FLUSH_SECONDS = 0.05


class Sink:
    """The app's end of a stream. Writes stop quietly once the app has gone."""

    def __init__(self, request: web.Request, stored: bool) -> None:
        self.request = request
        self.response = web.StreamResponse(
            status=200, headers={"Content-Type": SSE_CONTENT_TYPE, "Cache-Control": "no-cache",
                                 STORED_HEADER: "true" if stored else "false"},
        )
        self.connected = True

    async def open(self) -> None:
        await self.response.prepare(self.request)

    async def send(self, data: bytes) -> None:
        if not self.connected or not data:
            return
        try:
            await self.response.write(data)
        except (ConnectionResetError, RuntimeError):
            self.connected = False

    async def close(self) -> None:
        if self.connected:
            try:
                await self.response.write_eof()
            except (ConnectionResetError, RuntimeError):
                self.connected = False


class EventLog:
    """The events of one stream, numbered and written to the store behind it."""

    def __init__(self, services: Services, interaction_id: str | None, enabled: bool) -> None:
        self._services = services
        self.interaction_id = interaction_id
        self._enabled = enabled
        self._started = time.perf_counter()
        self._last_flush = self._started
        self._seq = 0
        self.count = 0
        self._pending: list[tuple[int, str | None, float, bytes]] = []
        self._pending_bytes = 0
        self._writes: list[asyncio.Future[Any]] = []

    def add(self, frames: list[Frame]) -> None:
        self.count += len(frames)
        if not self._enabled:
            return
        at_ms = (time.perf_counter() - self._started) * 1000
        for item in frames:
            self._seq += 1
            self._pending.append((self._seq, item.event_id, at_ms, item.data))
            self._pending_bytes += len(item.data)
        if self._pending_bytes >= _FLUSH_BYTES or time.perf_counter() - self._last_flush >= _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self._pending or self.interaction_id is None:
            return
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        self._last_flush = time.perf_counter()
        run_id = self.interaction_id
        write = self._services.store.append_frames(run_id, batch)
        write.add_done_callback(lambda _: self._services.runs.notify(run_id))
        self._writes.append(write)
        self._writes = [w for w in self._writes if not w.done()]

    async def close(self) -> None:
        """Write what is left and wait until every event is committed (or the database refused them)."""
        self.flush()
        if self._writes:
            for outcome in await asyncio.gather(*self._writes, return_exceptions=True):
                if isinstance(outcome, StoreUnavailable):
                    outcome.report()
                elif isinstance(outcome, BaseException):
                    raise outcome


async def start_emulated(request: web.Request, call: Call, services: Services, req: TurnRequest) -> web.StreamResponse:
    """A streamed or background turn in emulate mode."""
    front = call.route.codec
    chain, prior = await conversations.context(services, call, req)
    upstream_codec = upstream_codec_of(call)
    encoder = front.stream_encoder(call.headers, req.raw)
    # An upstream API recall cannot read streams of is asked whole (WHOLE mode).
    whole = not upstream_codec.reads_streams
    _, upstream_call = upstream_request(call, dataclasses.replace(req, stream=not whole), prior)
    storing = req.store and call.recording
    node = new_node(call, req, ModelReply(output=[], status=IN_PROGRESS), mint_id(front.id_prefix), mode="emulate",
                    parent=chain[-1] if chain else None)
    # The node exists before its id reaches the app (interaction.created or the background
    # answer), and before the provider is asked: a database that cannot take the turn
    # fails it here with a 503, before anything is billed.
    if storing:
        await services.store.save_interaction(node)
    # A background create answers at once, as the hosted APIs do: its run opens the
    # provider's stream, and a refusal then fails the run (visible on GET) instead of the create.
    background_only = req.background and not req.stream

    async def open_stream() -> aiohttp.ClientResponse:
        return await open_upstream_stream(call, services, upstream_codec, upstream_call)

    answered: ModelReply | None = None
    try:
        response = None if whole or background_only else await open_stream()
        if response is not None and response.content_type != SSE_CONTENT_TYPE:
            # Answered whole: the app still gets its stream, made from that reply (WHOLE mode).
            answered, response, whole = await whole_reply(call, upstream_codec, response), None, True
    except BaseException:
        if storing:
            await services.forget_unstarted(node.id)  # the turn never began: no trace of it
        raise
    decoder: StreamDecoder
    if whole:
        mode, decoder = WHOLE, WholeReply()
    else:
        mode = RELABEL if upstream_codec is front and encoder.can_relabel else ENCODE
        decoder = upstream_codec.stream_decoder()

    async def ask() -> ModelReply:
        if answered is not None:
            return answered
        reply, _ = await ask_upstream(call, services, upstream_codec, upstream_call)
        return reply

    # background answers at once with the in-progress object, unless the app also asked for the stream.
    sink = None if background_only else Sink(request, storing)
    run = _Run(services, call, node, response, decoder, encoder, sink,
               EventLog(services, node.id, storing), mode=mode, storing=storing,
               upstream_digest=digest_of(upstream_call), conversation=req.conversation, ask=ask if whole else None,
               open_stream=open_stream, read_whole=lambda answer: whole_reply(call, upstream_codec, answer))
    if sink is not None:
        await sink.open()
    task = services.runs.start(node.id, run.run())
    if sink is None:
        rendered = front.render(node)
        return web.Response(body=orjson.dumps(rendered), content_type="application/json",
                            headers={STORED_HEADER: "true"})
    await asyncio.shield(task)
    return sink.response


async def relay_native(request: web.Request, call: Call, services: Services, req: TurnRequest) -> web.StreamResponse:
    """A streamed create in native mode: the provider's bytes as they come, recorded beside."""
    front = call.route.codec
    response = await services.upstreams.open(
        call.upstream, call.method, call.raw_tail,
        headers=forward_headers(call.headers, call.upstream, UPSTREAM_CODECS.get(call.upstream.api)), body=call.body,
    )
    if not succeeded(response.status):
        async with response:
            body = await response.read()
        return web.Response(body=body, status=response.status,
                            content_type=response.content_type or "application/json")
    storing = req.store and call.recording
    if response.content_type != SSE_CONTENT_TYPE:
        # A relay passes on what the provider chose to answer (a whole JSON reply to a stream
        # request, as a contract that declares no event stream for the path allows) and records
        # it as it would a JSON create; turning it into a 502 would be recall judging the provider.
        return await relay_response(request, call, services, response, store_content=storing,
                                    on_relayed=native_recorder(call, services, req), whole_json=True,
                                    refusal_as_metadata=True)
    node = Interaction(
        id="", owner=call.owner, upstream=call.upstream.name, front=front.name, mode="native", model=req.model,
        status=IN_PROGRESS, input=req.input, output=[], created=call.created, updated=time.time(),
        parent_id=req.previous_id,
        request=front.echoed(req),
    )
    sink = Sink(request, storing)
    await sink.open()
    run = _Run(services, call, node, response, front.stream_decoder(), front.stream_encoder(call.headers, req.raw),
               sink, EventLog(services, None, storing), mode=NATIVE, storing=storing, upstream_digest=None)
    await asyncio.shield(services.runs.start(mint_id("native_"), run.run()))
    return sink.response


class WholeReply(StreamDecoder):
    """A reply asked for whole (WHOLE mode), given as the deltas a stream of it would have held."""

    def take(self, reply: ModelReply) -> list[StreamDelta]:
        deltas = deltas_of([p for turn in reply.output for p in turn.parts])
        for delta in deltas:
            self.assembler.apply(delta)
        assembler = self.assembler
        assembler.status, assembler.usage, assembler.model = reply.status, reply.usage, reply.model
        assembler.provider_id, assembler.error = reply.provider_id, reply.error
        self.finished = True
        return deltas


class _Run:
    def __init__(self, services: Services, call: Call, node: Interaction, response: aiohttp.ClientResponse | None,
                 decoder: StreamDecoder, encoder: StreamEncoder, sink: Sink | None, log: EventLog, *,
                 mode: str, storing: bool, upstream_digest: str | None, conversation: str | None = None,
                 ask: Callable[[], Awaitable[ModelReply]] | None = None,
                 open_stream: Callable[[], Awaitable[aiohttp.ClientResponse]] | None = None,
                 read_whole: Callable[[aiohttp.ClientResponse], Awaitable[ModelReply]] | None = None) -> None:
        self.services, self.call, self.node = services, call, node
        self.response, self.decoder, self.encoder = response, decoder, encoder
        self.sink, self.log, self.mode = sink, log, mode
        self.storing, self.upstream_digest = storing, upstream_digest
        # The conversation object the finished turn's items go into.
        self.conversation = conversation
        # WHOLE mode: asks the provider for the finished reply.
        self.ask = ask
        # A background run opens the provider's stream itself, after the create has answered.
        self.open_stream = open_stream
        # Reads the reply from a whole JSON answer the provider gave that run's stream request.
        self.read_whole = read_whole
        # The provider's error answer to a call asked whole, shown to the app as it came.
        self.refused: ApiError | None = None
        # Events re-encoded in the front API (rather than passed on as the provider wrote them).
        self.encoding = mode in (ENCODE, WHOLE)

    async def _emit(self, frames: list[Frame]) -> None:
        if not frames:
            return
        self.log.add(frames)
        if self.sink is not None:
            await self.sink.send(b"".join(f.data for f in frames))

    def _frames_of(self, event: SSEEvent, deltas: list[StreamDelta]) -> list[Frame]:
        if self.mode == NATIVE:
            body = event.json()
            return [Frame(body.get("event_id") if isinstance(body, dict) else None, event.raw)]
        if self.mode == RELABEL:
            passed = self.encoder.relabel(event, self.node) if event.data else None
            return [passed] if passed is not None else []
        return [f for d in deltas for f in self.encoder.delta(d)]

    async def run(self) -> None:
        broken: str | None = None
        stopped: str | None = None
        # Events from the provider's completion on wait until the node is
        # committed: an app that has seen the end can chain onto it at once.
        held: list[Frame] = []
        try:
            if self.encoding:
                await self._emit(self.encoder.opening(self.node))
            if self.mode == WHOLE:
                await self._read_whole()
            elif await self._opened():
                if self.response is not None and self.response.content_type != SSE_CONTENT_TYPE:
                    await self._read_answered_whole()
                else:
                    broken = await self._read_stream(held)
        except asyncio.CancelledError:
            stopped = self.services.runs.stop_reason(self.node.id) or "the request was cancelled"
        except (TimeoutError, aiohttp.ClientError) as exc:
            broken = f"the provider's stream broke: {exc or type(exc).__name__}"
        await self._finish(held, broken, stopped)

    async def _opened(self) -> bool:
        """Whether the provider's stream is open, opening it now for a background run;
        a provider that refuses it ends the run with its error."""
        if self.response is None:
            assert self.open_stream is not None
            try:
                self.response = await self.open_stream()
            except ApiError as err:
                self.refused, self.decoder.failure = err, err.message
                return False
        return True

    async def _read_answered_whole(self) -> None:
        """A background run's stream request the provider answered whole, in JSON: its reply,
        sent on as the front API's events (as WHOLE mode would), without asking again."""
        assert self.response is not None and self.read_whole is not None
        response, self.response = self.response, None
        try:
            reply = await self.read_whole(response)
        except ApiError as err:
            self.refused, self.decoder.failure = err, err.message
            return
        if not self.encoding:  # nothing of the provider's is passed on: recall writes every event
            self.encoding = True
            await self._emit(self.encoder.opening(self.node))
        whole = WholeReply()
        self.decoder, self.mode = whole, WHOLE
        await self._emit([f for d in whole.take(reply) for f in self.encoder.delta(d)])

    async def _read_stream(self, held: list[Frame]) -> str | None:
        """Pass the provider's stream on as it comes; why it broke, if it did."""
        node, decoder = self.node, self.decoder
        assert self.response is not None
        async with self.response:
            async for _, events in iter_events(self.response.content, **self.call.upstream.stream_limits):
                frames: list[Frame] = []
                for event in events:
                    if event.malformed:
                        await self._emit(frames)
                        return "the provider sent an event that is not valid JSON"
                    produced = self._frames_of(event, decoder.feed(event))
                    (held if decoder.finished else frames).extend(produced)
                if self.mode == NATIVE and self.log.interaction_id is None and decoder.assembler.provider_id:
                    self.log.interaction_id = node.id = decoder.assembler.provider_id
                await self._emit(frames)
        return None

    async def _read_whole(self) -> None:
        """Ask the provider for the whole reply, keeping the app's connection alive meanwhile,
        then send it as the front API's events."""
        assert self.ask is not None and isinstance(self.decoder, WholeReply)
        asking = asyncio.ensure_future(self.ask())
        try:
            while not asking.done():
                await asyncio.wait({asking}, timeout=_KEEPALIVE_SECONDS)
                if not asking.done() and self.sink is not None:
                    await self.sink.send(KEEPALIVE)  # an SSE comment: every SDK skips it
            try:
                reply = asking.result()
            except ApiError as err:
                self.refused, self.decoder.failure = err, err.message
                return
            await self._emit([f for d in self.decoder.take(reply) for f in self.encoder.delta(d)])
        finally:
            asking.cancel()

    def _settle(self, broken: str | None, stopped: str | None) -> None:
        node, decoder = self.node, self.decoder
        reply = decoder.assembler.reply()
        node.output, node.usage, node.updated = reply.output, reply.usage, time.time()
        node.model = node.model or reply.model
        node.provider_id = reply.provider_id
        if not node.id:
            node.id = reply.provider_id or ""
        if stopped == CANCELLED_BY_APP:
            node.status, node.error = CANCELLED, None
        elif stopped:
            node.status, node.error = FAILED, stopped
        elif broken or decoder.failure:
            node.status, node.error = FAILED, broken or decoder.failure
        elif not decoder.finished:
            node.status, node.error = FAILED, "the provider's stream ended before the interaction completed"
        else:
            node.status, node.error = reply.status, reply.error

    def _closing_frames(self, stopped: str | None) -> list[Frame]:
        node = self.node
        if node.status == FAILED and (self.refused is not None or self.encoding or not self.decoder.failure):
            # The app learns of it as an error event in its own API's shape, after the
            # opening events if the provider broke (or refused) before sending them.
            if self.refused is not None:
                error = self.refused
            elif not self.decoder.failure:
                error = upstream_bad_response(self.call.upstream.name, node.error or "")
            else:
                error = ApiError(502, "upstream_error", node.error or "")
            opening = self.encoder.opening(node) if self.mode == RELABEL and not self.log.count else []
            return opening + self.encoder.failure(node, error)
        if self.encoding or (stopped and self.mode == RELABEL):
            return self.encoder.closing(node)
        return []

    async def _finish(self, held: list[Frame], broken: str | None, stopped: str | None) -> None:
        self._settle(broken, stopped)
        node = self.node
        final = held + self._closing_frames(stopped)
        self.log.add(final)
        await self.log.close()  # a database that refuses the events loses them, never the app's stream
        exchange = self.call.exchange(200, {"content-type": SSE_CONTENT_TYPE}, None)
        exchange.model, exchange.error = node.model, node.error
        exchange.input_tokens, exchange.output_tokens = node.usage.input_tokens, node.usage.output_tokens
        if self.storing and node.id:
            exchange.upstream_digest = self.upstream_digest
            saved = await self.services.keep_answer(node, exchange)
            if saved and self.conversation:  # a turn deleted while it ran adds nothing anywhere
                await conversations.add_turn(self.services, self.conversation, node)
        else:
            await self.services.record(exchange, content=False)
        if self.sink is not None:
            await self.sink.send(b"".join(f.data for f in final))
            await self.sink.close()


async def follow(request: web.Request, call: Call, services: Services, node: Interaction) -> web.StreamResponse:
    """GET …?stream=true: the recorded events after the app's resume id, then live ones while it runs."""
    after = 0
    resume_param = call.route.codec.resume_param
    last_event_id = call.query.get(resume_param)
    if last_event_id:
        seq = await services.store.event_seq(node.id, last_event_id)
        if seq is None:
            raise bad_request(f"{resume_param} '{last_event_id}' is not an event of '{node.id}'", param=resume_param)
        after = seq
    sink = Sink(request, True)
    await sink.open()
    while sink.connected:
        running = services.runs.running(node.id)
        frames = await services.store.stream_frames(node.id, after)
        if not frames and not running and after == 0:
            await sink.send(b"".join(f.data for f in synthesize(call.route.codec, call, node)))
            break
        for seq, data in frames:
            await sink.send(data)
            after = seq
        if not running:
            break
        await services.runs.changed(node.id, timeout=1.0)
    await sink.close()
    return sink.response


def synthesize(front: Codec, call: Call, node: Interaction) -> list[Frame]:
    """The events of a stream for a turn that was not streamed when it ran."""
    encoder = front.stream_encoder(call.headers, None)
    frames = encoder.opening(node)
    for delta in deltas_of([p for turn in node.output for p in turn.parts]):
        frames += encoder.delta(delta)
    return frames + encoder.closing(node)
