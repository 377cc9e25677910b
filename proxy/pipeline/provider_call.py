"""A turn's self-contained call to the provider: built in the upstream's API, sent, awaited.

Every emulated turn (plain, streamed, background, task run) reaches its
provider through these steps, whichever front API the app called:
`upstream_request` picks the codec and builds the call (refusing what that
API cannot carry before anything is sent), then `ask_upstream` sends it and
awaits the finished reply, or `open_upstream_stream` opens the provider's
stream. `new_node` is the node a turn makes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import ClientResponse
from multidict import CIMultiDict

from ..codecs import Codec, UpstreamCall, read_overflow, upstream_codec_for
from ..codecs.base import check_carriage
from ..errors import ApiError, ContextOverflow, succeeded, upstream_bad_response
from ..model import (
    Destination,
    Interaction,
    ModelReply,
    Turn,
    TurnRequest,
    give_call_id,
    lift_instructions,
    name_results,
    readable_compactions,
)
from ..sse import SSE_CONTENT_TYPE
from .call import Call
from .client import translated_headers
from .services import Services

JSON = "application/json"


def upstream_codec_of(call: Call, req: TurnRequest) -> Codec:
    """The codec recall calls the upstream with: the front API itself where the provider
    accepts it (for this request's model), else the provider's own."""
    return upstream_codec_for(call.route.codec, call.upstream.api, req.model)


def upstream_request(call: Call, req: TurnRequest, prior: list[Turn], *,
                     thread: str | None = None) -> tuple[Codec, UpstreamCall]:
    """The codec recall calls the upstream with, and the self-contained call for this turn
    after the conversation `prior` of the thread whose root is `thread`.

    Raises the front API's 400 for what that upstream cannot carry, before anything is sent."""
    upstream_codec = upstream_codec_of(call, req)
    name_results([*prior, *req.input])
    # A compaction another provider made (or recall's own) reaches this one as its summary.
    prior = readable_compactions(prior, upstream_codec.carries)
    readable_input = readable_compactions(req.input, upstream_codec.carries)
    if readable_input != req.input:
        req = dataclasses.replace(req, input=readable_input)
    check_carriage(upstream_codec, req, prior)
    if not upstream_codec.instruction_messages and upstream_codec is not call.route.codec:
        prior, earlier = lift_instructions(prior)
        own_input, own = lift_instructions(req.input)
        if earlier or own:  # the node keeps the app's input as it came; only the call changes
            system = "\n\n".join(text for text in (req.system, *earlier, *own) if text)
            req = dataclasses.replace(req, input=own_input, system=system)
    destination = Destination(call.upstream.api, call.upstream.context_max_chars, cache_key=thread)
    return upstream_codec, upstream_codec.upstream_call(req, prior, destination)


def upstream_headers(call: Call, upstream_codec: Codec) -> CIMultiDict[str]:
    """Headers for a call recall builds in `upstream_codec`'s API, JSON content type set."""
    headers = translated_headers(call.headers, call.query, call.upstream, call.route.codec, upstream_codec)
    headers["Content-Type"] = JSON
    return headers


def digest_of(upstream_call: UpstreamCall) -> str:
    """What recall keeps of an upstream body it built: derived data, so a digest, not a copy."""
    return hashlib.sha256(orjson.dumps(upstream_call.body)).hexdigest()


async def ask_upstream(call: Call, services: Services, upstream_codec: Codec,
                       upstream_call: UpstreamCall) -> tuple[ModelReply, bytes]:
    """Send a self-contained call: the reply, and the provider's answer as it came.

    An asynchronous provider (one whose create answers a run still going) is
    awaited through the codec's `pending_result` until the run is final."""
    headers = upstream_headers(call, upstream_codec)
    got = await _send(call, services, upstream_codec, upstream_call, headers, orjson.dumps(upstream_call.body))
    assert got is not None
    reply, answer = got
    # Each fetch holds a little less than the read timeout, so a slow run is not an upstream timeout.
    wait_s = max(1, min(600, int(call.upstream.timeout_s) - 5))
    while (pending := upstream_codec.pending_result(reply, wait_s)) is not None:
        got = await _send(call, services, upstream_codec, pending, headers, None, pending=True)
        if got is not None:
            reply, answer = got
    return reply, answer


async def open_upstream_stream(call: Call, services: Services, upstream_codec: Codec,
                               upstream_call: UpstreamCall) -> ClientResponse:
    """Open the provider's stream for a streamed call; its error answer becomes the front API's error."""
    response = await services.upstreams.open(call.upstream, upstream_call.method, upstream_call.path,
                                             headers=upstream_headers(call, upstream_codec),
                                             body=orjson.dumps(upstream_call.body))
    if not succeeded(response.status):
        async with response:
            body = await response.read()
        raise refusal(call, upstream_codec, response.status, body)
    await expect_event_stream(response, call)
    return response


def refusal(call: Call, codec: Codec, status: int, body: bytes) -> ApiError:
    """A provider's error answer as the app will hear it; one that says the input is longer than
    the model's window is a ContextOverflow (its figures kept, for a cut and one more try)."""
    refused = codec.upstream_error(call.upstream.name, status, body)
    overflow = read_overflow(status, body)
    return refused if overflow is None else ContextOverflow(refused, overflow.tokens, overflow.limit)


async def expect_event_stream(response: ClientResponse, call: Call) -> None:
    """A provider that answers a stream request with something other than an event stream or
    a whole JSON reply (see whole_reply) gets a clear 502 before the app's stream starts (and
    before any node exists)."""
    if response.content_type in (SSE_CONTENT_TYPE, JSON):
        return
    async with response:
        await response.read()
    raise upstream_bad_response(call.upstream.name, f"it answered a stream request with {response.content_type}"
                                f" instead of an event stream ({SSE_CONTENT_TYPE})")


async def whole_reply(call: Call, codec: Codec, response: ClientResponse) -> ModelReply:
    """A stream request the provider answered whole, in JSON (as a contract that declares no
    event stream for the path allows): the reply, read from that one answer, so that recall
    streams it to the app without asking (and billing) a second time."""
    async with response:
        body = await response.read()
    return _decoded(call, codec, body)


def _decoded(call: Call, codec: Codec, body: bytes) -> ModelReply:
    """A provider's successful answer as the reply it holds; one recall cannot read is a clear 502."""
    try:
        reply = codec.parse_reply(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise upstream_bad_response(call.upstream.name, f"its answer is not valid JSON ({exc})") from None
    except ApiError as exc:
        raise upstream_bad_response(call.upstream.name, exc.message) from None
    for part in (p for turn in reply.output for p in turn.parts):
        give_call_id(part)
    return reply


async def _send(call: Call, services: Services, codec: Codec, upstream_call: UpstreamCall,
                headers: CIMultiDict[str], body: bytes | None, *,
                pending: bool = False) -> tuple[ModelReply, bytes] | None:
    """One call upstream, decoded (and its raw answer); None when a pending result is not ready yet."""
    answer = await services.upstreams.send(call.upstream, upstream_call.method, upstream_call.path,
                                           headers=headers, body=body)
    if pending and answer.status in codec.not_ready_statuses:
        return None
    if not succeeded(answer.status):
        raise refusal(call, codec, answer.status, answer.body)
    return _decoded(call, codec, answer.body), answer.body


def native_recorder(call: Call, services: Services, req: TurnRequest) -> Callable[[int, bytes], Awaitable[str | None]]:
    """What records a relayed create's whole JSON answer as a node under the provider's id
    (relay's on_relayed): the provider keeps the conversation, recall keeps the record."""
    codec = call.route.codec
    storing = call.stores(req)

    async def remember(status: int, body: bytes) -> str | None:
        if not succeeded(status) or not storing:
            return None
        try:
            reply = codec.parse_reply(orjson.loads(body))
        except (orjson.JSONDecodeError, ApiError):
            return None  # relayed as it came; nothing to model
        if not reply.provider_id:
            return None
        kept = await services.keep_answer(new_node(call, req, reply, reply.provider_id, mode="native"))
        return reply.provider_id if kept else None

    return remember


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
