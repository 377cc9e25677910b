"""`POST …/responses/compact`: a conversation compacted, on any upstream.

Native mode relays it: the provider keeps the conversation and compacts it. In emulate
mode recall keeps the chain, so a compaction that names a `previous_response_id` is the
rebuilt chain's: on an upstream that speaks the Responses API it goes to the provider as
`input` and its answer is kept as it came; on any other upstream recall makes the window
itself with a summary the same upstream writes (pipeline/compaction.py). Either way the
compacted window is a stored node on the chain (so `recall show`, `tree` and the viewer
show it, and a chain continued from it starts there) and the app gets it in OpenAI's shape.

What is the Responses API's own the codec says (`CompactingCodec`).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import orjson
from aiohttp import web

from ..codecs import UpstreamCall
from ..errors import ApiError, succeeded, upstream_bad_response
from ..ids import mint_id
from ..model import Destination, Interaction, ModelReply, Part, Turn, TurnRequest, readable_compactions
from ..pipeline.answers import JSON, json_bytes_response
from ..pipeline.call import Call
from ..pipeline.compaction import open_sealed, summarised
from ..pipeline.history import context, thread_of
from ..pipeline.provider_call import new_node, upstream_codec_of, upstream_headers
from ..pipeline.relay import relay
from ..pipeline.services import Services


class CompactingCodec(Protocol):
    """What a compaction needs of the front API's codec beyond every codec's own."""

    id_prefix: str

    def parse_compact(self, body: Any) -> TurnRequest: ...
    def compacts_on(self, upstream_api: str) -> bool: ...
    def continuing(self, req: TurnRequest, chain: list[Interaction]) -> TurnRequest: ...
    def compact_call(self, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall: ...
    def compacted_reply(self, body: Any) -> ModelReply: ...
    def render_compacted(self, node: Interaction) -> dict[str, Any]: ...
    def upstream_error(self, upstream: str, status: int, body: bytes) -> ApiError: ...
    def carries(self, part: Part) -> bool: ...


async def compact(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    if call.native:
        return await relay(request, call, services)
    codec = cast(CompactingCodec, call.route.codec)  # the route table sends only Responses' path here
    req = codec.parse_compact(call.json_body())
    chain, prior = await context(services, call, req)
    req = codec.continuing(req, chain)
    open_sealed(services.sealer, req.input)
    thread = thread_of(chain, req)
    if upstream_codec_of(call, req) is call.route.codec and codec.compacts_on(call.upstream.api):
        reply = await _asked_of_provider(call, services, codec, req, prior, thread)
    else:
        # The model the thread runs on: an app's compaction may name an OpenAI model (the
        # OpenAI Agents SDK's session insists on one) that another provider does not serve.
        model = next((node.model for node in reversed(chain) if node.model), req.model)
        output, usage = await summarised(call, services, req, prior, model)
        reply = ModelReply(output=output, usage=usage, model=model)
    node = new_node(call, req, reply, mint_id(codec.id_prefix), mode="emulate", parent=chain[-1] if chain else None)
    body = orjson.dumps(codec.render_compacted(node))
    stored = call.recording
    if stored:
        stored = await services.keep_answer(node, call.turn_exchange(node, 200, JSON, body))
    else:
        await services.record(call.turn_exchange(node, 200, JSON, body), content=False)
    return json_bytes_response(body, stored=stored)


async def _asked_of_provider(call: Call, services: Services, codec: CompactingCodec, req: TurnRequest,
                             prior: list[Turn], thread: str | None) -> ModelReply:
    """The provider's own compaction of the rebuilt chain, read."""
    prior = readable_compactions(prior, codec.carries)  # recall's own sealed summaries, as text
    upstream_call = codec.compact_call(req, prior, Destination(call.upstream.api, cache_key=thread))
    answer = await services.upstreams.send(call.upstream, upstream_call.method, upstream_call.path,
                                           headers=upstream_headers(call, call.route.codec),
                                           body=orjson.dumps(upstream_call.body))
    if not succeeded(answer.status):
        raise codec.upstream_error(call.upstream.name, answer.status, answer.body)
    try:
        return codec.compacted_reply(orjson.loads(answer.body))
    except orjson.JSONDecodeError as exc:
        raise upstream_bad_response(call.upstream.name, f"its compaction is not valid JSON ({exc})") from None
    except ApiError as exc:
        raise upstream_bad_response(call.upstream.name, exc.message) from None
