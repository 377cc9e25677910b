"""One turn while it runs: the provider's answer read, passed on, recorded, committed.

Every turn recall makes goes through `Run`, whatever its shape (plain, streamed,
background, task run, or a native stream relayed): the shape only says where
the events go (an app's stream, the store's event log, or nowhere) and whether
the app's answer has already begun. Four ways the provider's answer is read:
- native: the provider's stream passed on untouched (the provider keeps the state);
- relabel: emulate mode over the same wire API; events pass untouched except
  the few that carry the interaction id, which get recall's id;
- encode: a different wire API upstream; its events are decoded into neutral
  deltas and encoded as the front API's events;
- whole: the provider is asked for the finished reply (a plain turn; an API whose
  streams recall cannot read; a front API whose events report states), which is
  sent on as the front API's events when anyone listens.

Decided here, once for every shape:
- a provider that refuses before the app's answer has begun leaves no trace: the
  in-progress node is dropped and the app gets the provider's error as its answer;
  after that, the turn fails (visible on GET) and the app's stream ends in an
  error event of its own API;
- the node is committed, with the call's audit row, before the last events reach
  the event log and the app: whoever has seen the end finds the turn committed;
- a turn that is not stored leaves a metadata-only row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from ..codecs.base import Codec, Frame, StreamDecoder, StreamEncoder
from ..errors import ApiError, upstream_bad_response
from ..model import CANCELLED, COMPLETED, FAILED, INCOMPLETE, Interaction, ModelReply, StreamDelta, deltas_of
from ..sse import SSE_CONTENT_TYPE, SSEEvent, iter_events
from ..store.protocol import Frame as StoredFrame
from . import spill
from .answers import JSON
from .call import Call
from .events import EventLog, Sink
from .history import add_to_conversation
from .running import CANCELLED_BY_APP
from .services import Services

log = logging.getLogger("recall")
T = TypeVar("T")

NATIVE, RELABEL, ENCODE, WHOLE = "native", "relabel", "encode", "whole"
# While a reply asked whole is awaited, the app's stream gets a comment this often.
KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keep-alive\n\n"

# Asks the provider for the whole reply: the reply, and the provider's answer as it came.
Ask = Callable[[], Awaitable[tuple[ModelReply, bytes]]]


class Run:
    def __init__(self, services: Services, call: Call, node: Interaction, *, mode: str, storing: bool,
                 encoder: StreamEncoder | None, decoder: StreamDecoder | None = None,
                 sink: Sink | None = None, log: EventLog | None = None, began: bool = False,
                 upstream_digest: str | None = None, conversation: str | None = None,
                 response: aiohttp.ClientResponse | None = None,
                 open_stream: Callable[[], Awaitable[aiohttp.ClientResponse]] | None = None,
                 ask: Ask | None = None,
                 read_whole: Callable[[aiohttp.ClientResponse], Awaitable[ModelReply]] | None = None,
                 created: tuple[int, bytes] | None = None, same_api: bool = False) -> None:
        self.services, self.call, self.node, self.mode = services, call, node, mode
        self.storing, self.upstream_digest = storing, upstream_digest
        # Encodes the front API's events; None when nobody listens (a plain turn).
        self.encoder, self.decoder = encoder, decoder
        self.sink, self.log = sink, log
        if decoder is not None and log is not None and log.recording and storing:
            # Its recorded events hold every byte of its text: the node need not hold a long one again.
            decoder.assembler.spill_after = spill.SPILL_AFTER_CHARS
        # Whether the app's answer has begun (its stream opened, or a background create answered).
        self.began = began
        # The conversation object the finished turn's items go into.
        self.conversation = conversation
        # The provider's stream, opened by the caller or, through `open_stream`, by the run.
        self.response, self.open_stream = response, open_stream
        self.ask, self.read_whole = ask, read_whole
        # A background create's answer, given (and recorded) at once: status, JSON body.
        self.created = created
        # The provider speaks the front API: a plain turn's answer may pass on nearly as it came.
        self.same_api = same_api
        self._body: bytes | None = None
        # A reply the provider gave whole, and its answer's bytes (passed on by a same-API plain turn).
        self.whole: ModelReply | None = None
        self.provider_body: bytes | None = None
        # The provider's error answer, shown to the app as it came.
        self.refused: ApiError | None = None
        # Events re-encoded in the front API (rather than passed on as the provider wrote them).
        self.encoding = encoder is not None and mode in (ENCODE, WHOLE)
        self.sent = 0
        # Whether the run's commit kept the turn.
        self.saved = False

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> None:
        broken: str | None = None
        stopped: str | None = None
        # Events from the provider's completion on wait until the node is
        # committed: an app that has seen the end can chain onto it at once.
        held: list[Frame] = []
        try:
            broken = await self._produce(held)
        except BaseException as exc:
            if not self.began:  # nothing reached the app: the turn never happened, and it hears why
                await self._forget()
                raise
            if isinstance(exc, asyncio.CancelledError):
                stopped = self.services.runs.stop_reason(self.node.id) or "the request was cancelled"
            elif isinstance(exc, (TimeoutError, aiohttp.ClientError)):
                broken = f"the provider's stream broke: {exc or type(exc).__name__}"
            elif isinstance(exc, Exception):
                # A run nobody awaits must still end, or its readers would wait for ever.
                log.exception("turn %s failed", self.node.id)
                broken = f"recall failed while running this turn: {exc!r}"
            else:
                raise
        if self.refused is not None and not self.began:
            await self._forget()
            raise self.refused
        await self._finish(held, broken, stopped)

    async def _produce(self, held: list[Frame]) -> str | None:
        """Read the provider's answer and pass it on; why the stream broke, if it did."""
        if self.began:
            await self._open_events()
        if self.mode == WHOLE:
            await self._begin()  # an app's stream opens at once: keep-alives hold it while the provider works
            await self._read_whole()
            return None
        if not await self._opened():
            return None
        assert self.response is not None
        if self.response.content_type != SSE_CONTENT_TYPE:
            await self._read_answered_whole()
            return None
        await self._begin()
        return await self._read_stream(held)

    async def _begin(self) -> None:
        """The app's answer begins: its stream opens (a plain turn has none until the end)."""
        if self.sink is None:
            return
        if not self.began:
            self.began = True
            await self.sink.open(with_first_event=self.response is not None)
        await self._open_events()

    async def _open_events(self) -> None:
        if self.encoding and not self.sent and self.encoder is not None:
            await self._emit(self.encoder.opening(self.node))
            if self.log is not None:
                self.log.flush()  # a follower sees the run begin at once, however long the provider takes

    async def _emit(self, frames: list[Frame]) -> None:
        if not frames:
            return
        self.sent += len(frames)
        if self.log is not None:
            self.log.add(frames)
        if self.sink is not None:
            await self.sink.send(b"".join(f.data for f in frames))
        if self.log is not None:
            await self.log.keep_up()

    async def _opened(self) -> bool:
        """Whether the provider's stream is open, opening it now if the run opens it;
        a provider that refuses it ends the run with its error."""
        if self.response is None:
            assert self.open_stream is not None
            try:
                self.response = await self.open_stream()
            except ApiError as err:
                self.refused = err
                return False
        return True

    async def _read_whole(self) -> None:
        """Ask the provider for the whole reply, keeping the app's stream (if any) alive meanwhile."""
        assert self.ask is not None
        try:
            if self.sink is None:
                reply, self.provider_body = await self.ask()
            else:
                reply, self.provider_body = await self._kept_alive(self.ask(), self.sink)
        except ApiError as err:
            self.refused = err
            return
        await self._take_whole(reply)

    @staticmethod
    async def _kept_alive(asking: Awaitable[T], sink: Sink) -> T:
        """`asking`'s result, an SSE comment (which every SDK skips) sent every KEEPALIVE_SECONDS meanwhile."""
        waiting = asyncio.ensure_future(asking)
        try:
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=KEEPALIVE_SECONDS)
                if not waiting.done():
                    await sink.send(KEEPALIVE)
            return waiting.result()
        finally:
            waiting.cancel()

    async def _read_answered_whole(self) -> None:
        """A stream request the provider answered whole, in JSON (as a contract that declares no
        event stream for the path allows): its reply, sent on as the front API's events (as
        WHOLE mode would), without asking (and billing) a second time."""
        assert self.response is not None and self.read_whole is not None
        response, self.response = self.response, None
        try:
            reply = await self.read_whole(response)
        except ApiError as err:
            self.refused = err
            return
        # Nothing of the provider's is passed on: recall writes every event.
        self.mode, self.encoding = WHOLE, self.encoder is not None
        await self._begin()
        await self._take_whole(reply)

    async def _take_whole(self, reply: ModelReply) -> None:
        self.whole = reply
        if self.encoder is not None:
            encoder = self.encoder
            await self._emit([f for d in deltas_of([p for t in reply.output for p in t.parts]) for f in encoder.delta(d)])

    async def _read_stream(self, held: list[Frame]) -> str | None:
        """Pass the provider's stream on as it comes; why it broke, if it did."""
        decoder = self.decoder
        assert self.response is not None and decoder is not None
        async with self.response:
            async for _, events in iter_events(self.response.content, **self.call.upstream.stream_limits):
                frames: list[Frame] = []
                for event in events:
                    if event.malformed:
                        await self._emit(frames)
                        return "the provider sent an event that is not valid JSON"
                    produced = self._frames_of(event, decoder.feed(event))
                    (held if decoder.finished else frames).extend(produced)
                    if frames and not self.sent:
                        # The app's first event goes at once, not after the rest of a burst is read.
                        await self._pass_on(frames)
                        frames = []
                await self._pass_on(frames)
        return None

    async def _pass_on(self, frames: list[Frame]) -> None:
        """Emit the provider's events; a native run files them under the id its provider
        gave the node, once an event has named it."""
        if self.mode == NATIVE and self.log is not None and self.log.interaction_id is None:
            assert self.decoder is not None
            if provider_id := self.decoder.assembler.provider_id:
                self.log.interaction_id = self.node.id = provider_id
        await self._emit(frames)

    def _frames_of(self, event: SSEEvent, deltas: list[StreamDelta]) -> list[Frame]:
        if self.mode == NATIVE:
            body = event.json()
            return [Frame(body.get("event_id") if isinstance(body, dict) else None, event.raw)]
        assert self.encoder is not None
        if self.mode == RELABEL:
            passed = self.encoder.relabel(event, self.node) if event.data else None
            return [passed] if passed is not None else []
        return [f for d in deltas for f in self.encoder.delta(d)]

    # -- the end -----------------------------------------------------------------------------

    def _outcome(self) -> tuple[ModelReply, bool, str | None]:
        """The reply as far as it came, whether the provider finished it, and its own failure."""
        if self.refused is not None:
            return ModelReply(output=[], status=FAILED), False, self.refused.message
        if self.whole is not None or self.decoder is None:
            return self.whole or ModelReply(output=[], status=FAILED), self.whole is not None, None
        return self.decoder.assembler.reply(), self.decoder.finished, self.decoder.failure

    def _settle(self, broken: str | None, stopped: str | None) -> str | None:
        """The node as the run ended; the provider's own failure, if it reported one."""
        node = self.node
        reply, finished, failure = self._outcome()
        node.output, node.usage, node.updated = reply.output, reply.usage, time.time()
        node.model = node.model or reply.model
        node.provider_id = reply.provider_id
        node.run_id = node.run_id or reply.run_id
        if not node.id:
            node.id = reply.provider_id or ""
        if stopped == CANCELLED_BY_APP:
            node.status, node.error = CANCELLED, None
        elif stopped:
            node.status, node.error = FAILED, stopped
        elif broken or failure:
            node.status, node.error = FAILED, broken or failure
        elif not finished:
            node.status, node.error = FAILED, "the provider's stream ended before the interaction completed"
        else:
            node.status, node.error = reply.status, reply.error
            if node.status in (COMPLETED, INCOMPLETE) and (problem := self.call.route.codec.finish_output(node)):
                node.status, node.error = FAILED, problem
        return failure

    async def _shown_at_close(self, held: list[Frame]) -> Interaction:
        """The node as the closing events show it: whole for an encoder that renders its output
        there, its spilled text read back from the events (those committed, then `held`)."""
        if not (self.node.spilled and self.encoder is not None and self.encoder.renders_output_at_close
                and self.log is not None):
            return self.node
        await self.log.close()  # every event but the held ones committed, to be read back
        return await spill.whole(self.services.store, self.node, [f.data for f in held])

    def _closing_frames(self, node: Interaction, stopped: str | None, failure: str | None) -> list[Frame]:
        encoder = self.encoder
        if encoder is None or not self.began:
            return []
        # An answer that has begun with no event yet gets the opening ones first.
        opening = encoder.opening(node) if not self.sent and self.mode != NATIVE else []
        if node.status == FAILED and (self.refused is not None or self.encoding or failure is None):
            # The app learns of it as an error event in its own API's shape.
            if self.refused is not None:
                error = self.refused
            elif failure is None:
                error = upstream_bad_response(self.call.upstream.name, node.error or "")
            else:
                error = ApiError(502, "upstream_error", node.error or "")
            return opening + encoder.failure(node, error)
        if self.encoding or (stopped and self.mode == RELABEL):
            return opening + encoder.closing(node)
        return opening

    async def _finish(self, held: list[Frame], broken: str | None, stopped: str | None) -> None:
        failure = self._settle(broken, stopped)
        final = held + self._closing_frames(await self._shown_at_close(held), stopped, failure)
        # The node's end and its stream's last events commit together (Store.save_interaction);
        # a database that refuses the events loses them, never the app's stream.
        await self._commit(await self.log.ending(final) if self.log is not None else [])
        if self.sink is not None and self.began:
            await self.sink.send(b"".join(f.data for f in final))
            await self.sink.close()

    async def _commit(self, last_events: list[StoredFrame]) -> None:
        """The node, the call's audit row and its stream's last events, in one commit; a
        metadata-only row for a turn not stored. A background create's row was kept when it
        answered (pipeline/turn.py)."""
        node = self.node
        exchange = None if self.created is not None else self.call.turn_exchange(node, *self._answer())
        if exchange is not None:
            exchange.upstream_digest = self.upstream_digest
        if self.storing and node.id:
            self.saved = await self.services.keep_answer(node, exchange, last_events)
            if self.saved and self.conversation:  # a turn deleted while it ran adds nothing anywhere
                await add_to_conversation(self.services, self.call.route.codec, self.conversation, node)
        elif exchange is not None:
            await self.services.record(exchange, content=False)

    def _answer(self) -> tuple[int, str, bytes | None]:
        """What the app was answered: a stream (its events are recorded apart) or a plain turn's body."""
        if self.sink is not None:
            return 200, SSE_CONTENT_TYPE, None
        return 200, JSON, self.reply_body()

    def reply_body(self) -> bytes:
        """A plain turn's answer: the front API's reply, the provider's own bytes where it speaks it."""
        if self._body is None:
            front: Codec = self.call.route.codec
            passed = self.provider_body if self.same_api else None
            self._body = front.reply_body(self.node, passed, stored=self.storing)
        return self._body

    async def _forget(self) -> None:
        if self.storing:
            await self.services.forget_unstarted(self.node.id)  # the turn never happened: no trace of it
