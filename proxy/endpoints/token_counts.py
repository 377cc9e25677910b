"""Token counts of a create's input, on chains recall keeps: OpenAI's
`POST /v1/responses/input_tokens` and Anthropic's `POST /v1/messages/count_tokens`.

A count that names a turn to continue (`previous_response_id`, `conversation`, recall's
`previous_interaction_id`) gets its conversation rebuilt as the create would (cut to the window
too, with `truncation: "auto"`), and the upstream's own counter is asked about that call: the
count is the provider's, of exactly what a create would send. A count that continues nothing,
or whose provider keeps the conversation (native mode), goes to the provider as it came.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from ..codecs import COUNTERS
from ..errors import bad_request, succeeded, upstream_bad_response
from ..pipeline.answers import JSON, json_bytes_response
from ..pipeline.call import Call
from ..pipeline.compaction import open_sealed
from ..pipeline.history import context
from ..pipeline.provider_call import refusal, upstream_headers, upstream_request
from ..pipeline.relay import relay
from ..pipeline.services import Services
from ..pipeline.window import Fitter


async def count_tokens(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    front = call.route.codec
    counter = COUNTERS[front.name]
    if call.native:  # the provider holds the conversation the count continues
        return await relay(request, call, services, store_content=call.recording)
    req = counter.parse(front, call.json_body())
    if req.previous_id is None and req.conversation is None and front.same_wire_on(call.upstream.api, req.model):
        return await relay(request, call, services, store_content=call.recording)
    chain, prior = await context(services, call, req)
    # As the create would send it: what the chain already holds once, a sealed compaction opened.
    req = front.continuing(req, chain)
    open_sealed(services.sealer, req.input)
    fitter = Fitter(req, chain, prior, window=call.upstream.window_for(req.model), truncating=front.truncates(req))
    upstream_codec, create = upstream_request(call, req, fitter.fit())
    upstream_counter = COUNTERS.get(upstream_codec.name)
    if upstream_counter is None:
        raise bad_request(
            f"recall rebuilds this conversation for upstream '{call.upstream.name}' (api = \"{call.upstream.api}\"), "
            "whose token counter recall cannot ask; count the tokens of a call that continues nothing, or count on"
            " an upstream whose API has a counter (OpenAI Responses, Anthropic Messages)", code="unsupported_upstream")
    counting = upstream_counter.call_for(create)
    answer = await services.upstreams.send(call.upstream, counting.method, counting.path,
                                           headers=upstream_headers(call, upstream_codec),
                                           body=orjson.dumps(counting.body))
    if not succeeded(answer.status):
        raise refusal(call, upstream_codec, answer.status, answer.body)
    try:
        tokens = counter.count_in(orjson.loads(answer.body))
    except orjson.JSONDecodeError:
        tokens = None
    if tokens is None:
        raise upstream_bad_response(call.upstream.name, "its token count answer holds no input_tokens")
    body = orjson.dumps(counter.answer(tokens))
    exchange = call.exchange(200, {"content-type": JSON}, body)
    exchange.model, exchange.input_tokens = req.model, tokens
    await services.record(exchange, content=call.recording)
    return json_bytes_response(body, stored=call.recording)
