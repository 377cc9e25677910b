"""OpenAI Conversations kept by recall, on any upstream, and where a turn's history comes from.

A conversation is an object with an ordered list of Responses items. A
response created with `conversation` gets the conversation's items as its
history, and its own input and output items are appended to it once the
response is committed. In native mode over an upstream that keeps Responses
state (OpenAI itself), the provider keeps its conversations and every call is
relayed instead.

Conversation items are objects of their own, as at OpenAI: deleting a
response leaves the items it added; deleting a conversation or an item
erases them.
"""

from __future__ import annotations

import time
from typing import Any, cast

from aiohttp import web

from ..codecs import FRONT_CODECS
from ..codecs.base import expect, type_name
from ..codecs.openai_responses import OpenAIResponses
from ..codecs.openai_responses_items import turns_of_items
from ..errors import ApiError, not_found
from ..ids import mint_id
from ..model import CANCELLED, FAILED, Interaction, Turn, TurnRequest
from ..pipeline.call import Call
from ..pipeline.relay import relay
from ..pipeline.services import Services
from ..pipeline.state import history
from ..store import StoreUnavailable
from ..store.records import Conversation
from .pages import cursor_page, page

_RESPONSES = cast(OpenAIResponses, FRONT_CODECS["openai-responses"])
_ITEM_PREFIX = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}
_MAX_METADATA = 16


async def context(services: Services, call: Call, req: TurnRequest) -> tuple[list[Interaction], list[Turn]]:
    """What a create continues: the chain of its previous id, or its conversation's items.

    Returns the chain (the new node's parent is its last node) and the history turns."""
    if req.conversation:
        conversation = await _visible(services, req.conversation, call.owner)
        if conversation is None:
            raise _missing(req.conversation, param="conversation")
        items = await services.store.conversation_items(conversation.id)
        return [], turns_of_items(items, "conversation")
    if req.previous_id:
        chain = await services.state.chain_for(req.previous_id, call.owner, call.route.codec)
        return chain, history(chain)
    return [], []


async def add_turn(services: Services, conversation_id: str, node: Interaction) -> None:
    """Append a committed response's input and output items to its conversation."""
    if node.status in (FAILED, CANCELLED):
        return  # nothing was said: a retry must not find its input twice
    items = [*_RESPONSES.input_items(node), *_RESPONSES.output_items(node)]
    try:
        await services.store.append_conversation_items(conversation_id, [(item["id"], item) for item in items])
    except StoreUnavailable as trouble:
        trouble.report()  # the turn is answered (and billed): its items are what is lost


# -- the Conversations API ---------------------------------------------------------


async def conversation(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    """`/conversations` and `/conversations/{id}`: create, retrieve, update, delete."""
    from ..pipeline.turn import is_native  # local: turns imports this module

    conversation_id = call.route.resource_id
    if is_native(call) or (conversation_id is None and call.method != "POST"):
        return await relay(request, call, services)
    if conversation_id is None:
        return await _create(call, services)
    found = await _visible(services, conversation_id, call.owner)
    if found is None:
        raise _missing(conversation_id)
    if call.method == "GET":
        return await _answer(call, services, _render(found), found.id)
    if call.method == "POST":
        body = _body(call)
        found.metadata = _metadata(body.get("metadata"))
        await services.store.update_conversation(found.id, found.metadata)
        return await _answer(call, services, _render(found), found.id)
    if call.method == "DELETE":
        await services.store.delete_conversation(found.id)
        return await _answer(call, services, {"id": found.id, "object": "conversation.deleted", "deleted": True}, None)
    return await relay(request, call, services)


async def conversation_items(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    """`/conversations/{id}/items[/{item_id}]`: add, list, retrieve, delete."""
    from ..pipeline.turn import is_native  # local: turns imports this module

    if is_native(call):
        return await relay(request, call, services)
    conversation_id, item_id = call.route.resource_id or "", call.route.item_id
    found = await _visible(services, conversation_id, call.owner)
    if found is None:
        raise _missing(conversation_id)
    if item_id is None and call.method == "POST":
        added = _new_items(_body(call).get("items"))
        await services.store.append_conversation_items(found.id, [(item["id"], item) for item in added])
        return await _answer(call, services, page(added), found.id)
    items = await services.store.conversation_items(found.id)
    if item_id is None and call.method == "GET":
        return await _answer(call, services, cursor_page(items, call.query), found.id)
    item = next((i for i in items if i.get("id") == item_id), None)
    if item is None:
        raise not_found(f"Item with id '{item_id}' not found in conversation '{found.id}'.")
    if call.method == "GET":
        return await _answer(call, services, item, found.id)
    if call.method == "DELETE":
        await services.store.delete_conversation_item(found.id, item_id or "")
        return await _answer(call, services, _render(found), found.id)
    return await relay(request, call, services)


async def _create(call: Call, services: Services) -> web.StreamResponse:
    body = _body(call)
    conversation = Conversation(id=mint_id("conv_"), owner=call.owner, upstream=call.upstream.name,
                                created=time.time(), metadata=_metadata(body.get("metadata")))
    items = _new_items(body.get("items"))
    await services.store.create_conversation(conversation, [(item["id"], item) for item in items])
    return await _answer(call, services, _render(conversation), conversation.id)


async def _visible(services: Services, conversation_id: str, owner: str) -> Conversation | None:
    found = await services.store.get_conversation(conversation_id)
    return found if found is not None and found.owner == owner else None


def _missing(conversation_id: str, param: str | None = None) -> ApiError:
    return not_found(f"Conversation with id '{conversation_id}' not found.", param=param)


def _body(call: Call) -> dict[str, Any]:
    body = call.json_body()
    expect(isinstance(body, dict), f"the request body must be a JSON object; got {type_name(body)}")
    return body


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    expect(isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
           "metadata: expected an object of string values", "metadata")
    expect(len(value) <= _MAX_METADATA, f"metadata: at most {_MAX_METADATA} keys", "metadata")
    return value


def _new_items(value: Any) -> list[dict[str, Any]]:
    """Items an app adds, checked as input items are, each given an id and its full shape."""
    if value is None:
        return []
    expect(isinstance(value, list), f"items: expected a list of items; got {type_name(value)}", "items")
    turns_of_items(value, "items")
    added = []
    for item in value:
        kind = item.get("type") or "message"
        shaped = {**item, "type": kind, "id": item.get("id") or mint_id(_ITEM_PREFIX.get(kind, "item_"))}
        if kind == "message":
            shaped["status"] = "completed"
            if isinstance(item.get("content"), str):
                text_type = "output_text" if item["role"] == "assistant" else "input_text"
                shaped["content"] = [{"type": text_type, "text": item["content"]}]
        added.append(shaped)
    return added


def _render(conversation: Conversation) -> dict[str, Any]:
    return {"id": conversation.id, "object": "conversation", "created_at": int(conversation.created),
            "metadata": conversation.metadata}


async def _answer(call: Call, services: Services, payload: dict[str, Any], conversation_id: str | None) -> web.Response:
    """Answer, and keep the call in the audit log, tied to its conversation so that
    deleting the conversation erases it too."""
    from ..pipeline.turn import json_response  # local: turns imports this module

    response = json_response(payload)
    exchange = call.exchange(200, {"content-type": "application/json"}, response.body)  # type: ignore[arg-type]
    exchange.interaction_id = conversation_id
    await services.record(exchange, content=call.recording)
    return response
