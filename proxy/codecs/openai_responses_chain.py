"""A Responses create that continues a stored chain: the items it names or sends again.

Clients that chain with `previous_response_id` often send again items the chain already
holds: agent frameworks re-send the previous output items with their ids, and some SDKs
send an `item_reference` to each. OpenAI answers such an input with a 400 ("Duplicate item
found with id …", sources in docs/CHAINS.md). recall keeps the chain itself and knows the
id of every item in it, so it drops what the chain already holds and sends each item once:
a re-sent item (same id) and a reference to one. A reference to an id the chain does not
hold is a 400 in OpenAI's shape, before anything is written.

A reasoning item is dropped or kept together with the item that follows it (the item it
reasoned towards): OpenAI refuses a reasoning item without its following item, and an
output item whose reasoning is missing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from ..errors import bad_request
from ..model import Interaction, TurnRequest
from .openai_responses_items import turns_of_items

REFERENCE = "item_reference"


class RendersItems(Protocol):
    """The Responses codec, as far as this module needs it: the items it shows for a node."""

    def input_items(self, it: Interaction) -> list[dict[str, Any]]: ...

    def output_items(self, it: Interaction) -> list[dict[str, Any]]: ...


def continue_chain(codec: RendersItems, req: TurnRequest, chain: list[Interaction]) -> TurnRequest:
    """`req` without the input items `chain` already holds; a 400 for a reference to none of them."""
    raw_input = req.raw.get("input")
    if not isinstance(raw_input, list) or not any(isinstance(item, dict) and item.get("id") for item in raw_input):
        return req
    known = chain_item_ids(codec, chain)
    kept: list[Any] = []
    for group in reasoning_groups(raw_input):
        for item in group:
            if _kind(item) == REFERENCE and item.get("id") not in known:
                raise bad_request(f"Item with id '{item.get('id')}' not found in the conversation of "
                                  f"previous_response_id '{req.previous_id}'.", param="input")
        if any(isinstance(item, dict) and item.get("id") in known for item in group):
            continue  # the chain holds it already: sent once, from the chain
        kept.extend(group)
    if len(kept) == len(raw_input):
        return req
    return dataclasses.replace(req, input=turns_of_items(kept, "input"), raw={**req.raw, "input": kept})


def chain_item_ids(codec: RendersItems, chain: list[Interaction]) -> set[str]:
    """Every item id a client may have been shown for the chain's nodes: the ids recall renders
    for their input and output items, and the ids the items held when they came."""
    ids: set[str] = set()
    for node in chain:
        for item in [*codec.input_items(node), *codec.output_items(node)]:
            if isinstance(item.get("id"), str):
                ids.add(item["id"])
        for part in (p for turn in node.turns() for p in turn.parts):
            if isinstance(part.native, dict) and isinstance(part.native.get("id"), str):
                ids.add(part.native["id"])
    return ids


def reasoning_groups(items: list[Any]) -> list[list[Any]]:
    """The items in order, each reasoning item grouped with the model's item that follows it
    (never with what the app says next: a user message, a tool's output)."""
    groups: list[list[Any]] = []
    for item in items:
        if groups and _kind(groups[-1][-1]) == "reasoning" and _from_model(item):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _from_model(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    kind = item.get("type") or "message"
    if kind == "message":
        return item.get("role") == "assistant"
    return not kind.endswith("_output") and kind not in (REFERENCE, "compaction")


def _kind(item: Any) -> str | None:
    return item.get("type") if isinstance(item, dict) else None
