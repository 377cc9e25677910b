"""The Conversations API (OpenAI's), kept by recall on any upstream.

A conversation is an object with an ordered list of Responses items. A
response created with `conversation` gets the conversation's items as its
history, and its own input and output items are appended to it once the
response is committed (pipeline/history.py). In native mode over an upstream that keeps Responses
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

from ..codecs.base import Codec, expect, type_name
from ..errors import not_found
from ..ids import mint_id
from ..pipeline.answers import json_response
from ..pipeline.call import Call
from ..pipeline.history import missing_conversation, visible_conversation
from ..pipeline.relay import relay
from ..pipeline.services import Services
from ..store.records import Conversation
from .cursor_pages import cursor_page, page

_ITEM_PREFIX = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}
_MAX_METADATA = 16


# -- the Conversations API ---------------------------------------------------------


async def conversation(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    """`/conversations` and `/conversations/{id}`: create, retrieve, update, delete."""
    conversation_id = call.route.resource_id
    if call.native or (conversation_id is None and call.method != "POST"):
        return await relay(request, call, services)
    if conversation_id is None:
        return await _create(call, services)
    found = await visible_conversation(services, conversation_id, call.owner)
    if found is None:
        raise missing_conversation(conversation_id)
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
    if call.native:
        return await relay(request, call, services)
    conversation_id, item_id = call.route.resource_id or "", call.route.item_id
    found = await visible_conversation(services, conversation_id, call.owner)
    if found is None:
        raise missing_conversation(conversation_id)
    if item_id is None and call.method == "POST":
        added = _new_items(call.route.codec, _body(call).get("items"))
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
    items = _new_items(call.route.codec, body.get("items"))
    await services.store.create_conversation(conversation, [(item["id"], item) for item in items])
    return await _answer(call, services, _render(conversation), conversation.id)


def _body(call: Call) -> dict[str, Any]:
    body = call.json_body()
    expect(isinstance(body, dict), f"the request body must be a JSON object; got {type_name(body)}")
    return cast(dict[str, Any], body)


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    expect(isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
           "metadata: expected an object of string values", "metadata")
    expect(len(value) <= _MAX_METADATA, f"metadata: at most {_MAX_METADATA} keys", "metadata")
    return cast(dict[str, str], value)


def _new_items(codec: Codec, value: Any) -> list[dict[str, Any]]:
    """Items an app adds, checked as input items are, each given an id and its full shape."""
    if value is None:
        return []
    expect(isinstance(value, list), f"items: expected a list of items; got {type_name(value)}", "items")
    codec.turns_of_conversation(value, "items")
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
    response = json_response(payload)
    exchange = call.exchange(200, {"content-type": "application/json"}, response.body)  # type: ignore[arg-type]
    exchange.interaction_id = conversation_id
    await services.record(exchange, content=call.recording)
    return response
