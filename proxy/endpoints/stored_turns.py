"""A stored turn's own operations: GET (whole, or its events as a stream), DELETE, cancel, input items.

For every API whose turns have ids of their own (Gemini Interactions, OpenAI
Responses). In native mode the provider holds the turn and the call is relayed.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import ApiError, bad_request, succeeded
from ..model import IN_PROGRESS, Interaction
from ..pipeline.answers import json_response
from ..pipeline.call import Call
from ..pipeline.relay import relay
from ..pipeline.running import DELETED_WHILE_RUNNING
from ..pipeline.services import Services
from ..pipeline.spill import stream_rendered, whole
from .cursor_pages import cursor_page
from .follow import follow

# How long a cancel waits for another instance to record the run it stopped.
_REMOTE_CANCEL_WAIT_S = 10.0


async def _target(call: Call, services: Services) -> tuple[Interaction | None, bool]:
    """The stored turn an id names, and whether the provider holds it instead (native
    mode: the call is relayed). An id neither holds for this caller is the front API's
    not-found, never a hint that another key owns it."""
    resource_id = call.route.resource_id or ""
    found = await services.state.lookup(resource_id, call.owner)
    if found is not None and found.mode != "native":
        return found, False
    if call.native and not await services.state.foreign(resource_id, call.owner):
        return found, True
    raise call.route.codec.not_found(resource_id)


async def get(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    found, relayed = await _target(call, services)
    if relayed or found is None:
        return await relay(request, call, services)
    if call.query_flag("stream"):
        return await follow(request, call, services, found)
    include_input = call.query_flag("include_input")
    if found.spilled:  # a long streamed reply: its body is written as its events are read
        return await stream_rendered(request, services.store, found,
                                     lambda node: call.route.codec.render(node, include_input=include_input))
    return json_response(call.route.codec.render(found, include_input=include_input))


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
    if found.status != IN_PROGRESS:
        raise _not_cancellable(resource_id, found.status)
    if not await services.runs.cancel(resource_id):
        # Another instance on the same database may run it: asked, it stops the run and records it.
        if not await services.store.request_cancel(resource_id):
            raise _not_cancellable(resource_id, found.status)
        await _ended_elsewhere(services, resource_id)
    cancelled = await services.state.lookup(resource_id, call.owner)
    return json_response(call.route.codec.render(await whole(services.store, cancelled or found)))


def _not_cancellable(resource_id: str, status: str) -> ApiError:
    return bad_request(f"interaction '{resource_id}' is {status}; only an interaction still in progress can be cancelled")


async def _ended_elsewhere(services: Services, interaction_id: str) -> None:
    """Wait (a while) for the instance that runs a turn to record its end, so that the answer shows it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _REMOTE_CANCEL_WAIT_S
    while loop.time() < deadline and await services.store.running_elsewhere(interaction_id):
        await services.runs.changed(interaction_id, timeout=deadline - loop.time())


async def input_items(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    """GET …/{id}/input_items: the turn's own input, as a cursor page."""
    found, relayed = await _target(call, services)
    if relayed or found is None:
        return await relay(request, call, services)
    return json_response(cursor_page(call.route.codec.input_items(found), call.query))
