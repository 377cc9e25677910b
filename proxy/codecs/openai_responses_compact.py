"""`POST /v1/responses/compact` in emulate mode: the compacted window, asked of OpenAI or shown.

OpenAI's compaction (openai-v3.3.1.yml: CompactResponseMethodPublicBody, CompactResource)
takes a conversation as `input` (or a `previous_response_id`) and answers a
`response.compaction` object whose `output` is "a list of all user messages, followed by
a single compaction item". recall keeps the chain, so it sends OpenAI the rebuilt chain as
`input` and keeps the answer's items as they came; on any other upstream it makes the
window itself (pipeline/compaction.py) and this module shows it in OpenAI's shape.
"""

from __future__ import annotations

from typing import Any

from ..model import Destination, Interaction, ModelReply, Turn, TurnRequest
from .base import Codec, UpstreamCall, expect
from .openai_formats import stable_id
from .openai_responses_items import items_of, turns_of_items, usage_in, usage_out

COMPACT_PATH = "/v1/responses/compact"
# What recall never sends OpenAI on a compaction: it keeps the chain (and the app's cache key is kept).
_STATEFUL = ("previous_response_id", "conversation")


def parse_compact(req: TurnRequest) -> TurnRequest:
    """A compact request, read as a create is: the contract requires its model."""
    expect(bool(req.model), "Missing required parameter: 'model'.", "model")
    return req


def compact_call(codec: Codec, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall:
    """The compaction OpenAI is asked for: the whole rebuilt conversation as `input`."""
    body = {k: v for k, v in req.raw.items() if k not in _STATEFUL}
    raw_input = req.raw.get("input")
    new_items = [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else list(raw_input or [])
    body["input"] = [*items_of(history, codec), *new_items]
    if to.cache_key and not body.get("prompt_cache_key"):
        body["prompt_cache_key"] = to.cache_key
    return UpstreamCall("POST", COMPACT_PATH, body)


def compacted_reply(body: Any) -> ModelReply:
    """OpenAI's compacted window as turns: its user messages as the user's, its compaction item as it came."""
    expect(isinstance(body, dict) and isinstance(body.get("output"), list), "the compaction has no output list")
    return ModelReply(output=turns_of_items(body["output"], "output"), usage=usage_in(body.get("usage")),
                      model=body.get("model"), provider_id=body.get("id"))


def render_compacted(codec: Codec, node: Interaction) -> dict[str, Any]:
    """A compaction node as OpenAI answers a compaction (CompactResource), its items with ids."""
    output = []
    for index, item in enumerate(items_of(node.output, codec)):
        if item.get("type", "message") == "message":
            content = item.get("content")
            if isinstance(content, str):
                content = [{"type": "input_text", "text": content}]
            item = {"id": stable_id("msg_", node.id, "compacted", index), "type": "message", "status": "completed",
                    "role": item.get("role"), "content": content}
        output.append({**item, "id": item.get("id") or stable_id("cmp_", node.id, index)})
    return {"id": node.id, "object": "response.compaction", "created_at": int(node.created), "output": output,
            "usage": usage_out(node.usage)}

