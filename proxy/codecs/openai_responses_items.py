"""OpenAI Responses items and the neutral parts they hold, both ways: the input items of a
create, the output items of a Response and of its stream events, and what a Response
says of its status and usage.

Items only this API reads (hosted tool calls, item references, annotated text) travel
as parts of origin NAME, carried verbatim back to this API and dropped by others.
"""

from __future__ import annotations

from typing import Any

from ..errors import bad_request
from ..model import (
    CANCELLED,
    COMPACTION,
    COMPLETED,
    DOCUMENT,
    FAILED,
    FUNCTION_CALL,
    FUNCTION_RESULT,
    IMAGE,
    IN_PROGRESS,
    INCOMPLETE,
    INSTRUCTION,
    MEDIA_KINDS,
    MODEL,
    TEXT,
    THOUGHT,
    USER,
    Part,
    Turn,
    Usage,
)
from ..seal import is_sealed
from .base import Codec, as_dict, as_list, expect, type_name
from .openai_formats import arguments_json, data_url, parse_arguments, result_text, split_data_url, stable_id

NAME = "openai-responses"

# The provider's statuses in the neutral vocabulary.
STATUS_IN = {"queued": IN_PROGRESS, "in_progress": IN_PROGRESS, "completed": COMPLETED,
             "incomplete": INCOMPLETE, "failed": FAILED, "cancelled": CANCELLED}
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_TEXT_TYPES = ("input_text", "output_text", "text")


def conversation_id(value: Any) -> str | None:
    """The conversation a create names: `"conv_…"` or `{"id": "conv_…"}`."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        raise bad_request("conversation: expected a conversation id or {\"id\": …}", param="conversation")
    return value


# -- items in: neutral parts ------------------------------------------------------------


def turns_of_items(value: Any, where: str) -> list[Turn]:
    """Responses input (a string or a list of items) as neutral turns.

    Each message is a turn of its own; the items of one model reply (reasoning,
    calls, the assistant message) share one turn, and so do consecutive
    function outputs."""
    if isinstance(value, str):
        return [Turn(USER, [Part(TEXT, text=value)])]
    expect(isinstance(value, list), f"{where}: expected a string or a list of items; got {type_name(value)}", where)
    turns: list[Turn] = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        expect(isinstance(item, dict), f"{at}: expected an item object; got {type_name(item)}", where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            expect(role in _MESSAGE_ROLES,
                   f"{at}.role: expected one of {', '.join(_MESSAGE_ROLES)}; got {role!r}", where)
            parts = _message_parts(item, at, where)
            if role == "assistant":
                _join(turns, MODEL, parts)
            else:
                turns.append(Turn(USER, parts))
        elif kind == "function_call_output":
            expect(isinstance(item.get("call_id"), str), f"{at}.call_id: a function_call_output needs call_id", where)
            expect("output" in item, f"{at}.output: a function_call_output needs output", where)
            # A list output (input_text/input_image items) only this API reads: kept as it is, for it.
            listed = isinstance(item["output"], list)
            part = Part(FUNCTION_RESULT, call_id=item["call_id"], result=item["output"], origin=NAME if listed else None)
            if turns and turns[-1].role == USER and all(p.kind == FUNCTION_RESULT for p in turns[-1].parts):
                turns[-1].parts.append(part)
            else:
                turns.append(Turn(USER, [part]))
        elif kind == "function_call":
            expect(isinstance(item.get("name"), str), f"{at}.name: a function_call needs name", where)
            expect(isinstance(item.get("call_id"), str), f"{at}.call_id: a function_call needs call_id", where)
            _join(turns, MODEL, [_call_part(item)])
        elif kind == "reasoning":
            _join(turns, MODEL, [_reasoning_part(item)])
        elif kind == COMPACTION:
            expect(isinstance(item.get("encrypted_content"), str),
                   f"{at}.encrypted_content: a compaction item needs encrypted_content", where)
            _join(turns, MODEL, [compaction_part(item)])
        else:
            expect(isinstance(kind, str), f"{at}.type: expected an item type such as 'message'", where)
            # Items recall does not model (hosted tool calls, item references...):
            # carried verbatim to this same API, dropped by others.
            part = Part(str(kind), native=item, origin=NAME)
            if str(kind).endswith(("_output", "_response", "_reference")):
                turns.append(Turn(USER, [part]))
            else:
                _join(turns, MODEL, [part])
    return turns


def _join(turns: list[Turn], role: str, parts: list[Part]) -> None:
    if turns and turns[-1].role == role == MODEL:
        turns[-1].parts.extend(parts)
    else:
        turns.append(Turn(role, parts))


def _message_parts(item: dict[str, Any], at: str, where: str) -> list[Part]:
    role = item["role"]
    content = item.get("content")
    if role in ("system", "developer"):
        if isinstance(content, list):
            texts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") in _TEXT_TYPES]
            content = "".join(texts)
        expect(isinstance(content, str), f"{at}.content: expected a string or a list of input_text", where)
        return [Part(INSTRUCTION, text=content, native=item, origin=NAME)]
    if isinstance(content, str):
        return [Part(TEXT, text=content)]
    if not isinstance(content, list):
        raise bad_request(f"{at}.content: expected a string or a list; got {type_name(content)}", param=where)
    return [content_part(c, f"{at}.content[{j}]", where) for j, c in enumerate(content)]


def content_part(element: Any, at: str, where: str) -> Part:
    expect(isinstance(element, dict), f"{at}: expected a content object; got {type_name(element)}", where)
    kind = element.get("type")
    if kind in _TEXT_TYPES:
        text = element.get("text")
        expect(isinstance(text, str), f"{at}.text: expected a string; got {type_name(text)}", where)
        rich = bool(element.get("annotations")) or bool(element.get("logprobs"))
        return Part(TEXT, text=text, native=element if rich else None, origin=NAME if rich else None)
    if kind == "refusal":
        return Part(TEXT, text=str(element.get("refusal") or ""), native=element, origin=NAME)
    if kind == "input_image":
        url = element.get("image_url")
        expect(isinstance(url, str) or "file_id" in element, f"{at}: an input_image needs image_url or file_id", where)
        return _media_part(IMAGE, url, element)
    if kind == "input_file":
        url = element.get("file_data") or element.get("file_url")
        expect(isinstance(url, str) or "file_id" in element,
               f"{at}: an input_file needs file_data, file_url or file_id", where)
        if isinstance(url, str) and not url.startswith(("data:", "http:", "https:")):
            url = f"data:application/pdf;base64,{url}"  # file_data given as bare base64
        return _media_part(DOCUMENT, url, element)
    expect(isinstance(kind, str), f"{at}.type: expected a content type such as 'input_text'", where)
    return Part(str(kind), native=element, origin=NAME)


def _media_part(kind: str, url: Any, element: dict[str, Any]) -> Part:
    # File ids and settings such as `detail` only mean something to this API: kept verbatim for it.
    native = element if set(element) - {"type", "image_url", "file_data", "file_url"} else None
    origin = NAME if native else None
    if isinstance(url, str):
        inline = split_data_url(url)
        if inline is not None:
            return Part(kind, data=inline[1], mime_type=inline[0], native=native, origin=origin)
        return Part(kind, uri=url, native=native, origin=origin)
    return Part(kind, native=element, origin=NAME)


def _call_part(item: dict[str, Any]) -> Part:
    return Part(FUNCTION_CALL, call_id=item.get("call_id"), name=item.get("name"),
                arguments=parse_arguments(item.get("arguments")), native=item, origin=NAME)


def _reasoning_part(item: dict[str, Any]) -> Part:
    summary = as_list(item.get("summary"))
    text = "\n\n".join(s.get("text", "") for s in summary if isinstance(s, dict)) or None
    # The encrypted content is the part's signature; the native copy leaves it out (kept once).
    native = {k: v for k, v in item.items() if k != "encrypted_content"}
    return Part(THOUGHT, text=text, signature=item.get("encrypted_content") or None, native=native, origin=NAME)


def compaction_part(item: dict[str, Any]) -> Part:
    """A compaction item: OpenAI's own (opaque, carried back to it verbatim), or recall's, whose
    sealed summary recall reads for any upstream once it has checked the seal (pipeline/compaction.py)."""
    token = item.get("encrypted_content")
    if is_sealed(token):
        return Part(COMPACTION, signature=token)
    return Part(COMPACTION, signature=token, native=item, origin=NAME)


def parts_of_output_item(item: dict[str, Any]) -> list[Part]:
    kind = item.get("type")
    if kind == "message":
        content = as_list(item.get("content"))
        return [content_part(c, "output", "output") for c in content if isinstance(c, dict)]
    if kind == "function_call":
        return [_call_part(item)]
    if kind == "reasoning":
        return [_reasoning_part(item)]
    if kind == COMPACTION and isinstance(item.get("encrypted_content"), str):
        return [compaction_part(item)]
    return [Part(str(kind), native=item, origin=NAME)]


def usage_in(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    inputs = as_dict(usage.get("input_tokens_details"))
    outputs = as_dict(usage.get("output_tokens_details"))
    values = {"input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
              "total_tokens": usage.get("total_tokens"), "cached_tokens": inputs.get("cached_tokens"),
              "thought_tokens": outputs.get("reasoning_tokens")}
    return Usage(**{k: v for k, v in values.items() if isinstance(v, int)})


def usage_out(usage: Usage) -> dict[str, Any]:
    """Token counts as a Response states them (ResponseUsage)."""
    inputs, outputs = usage.input_tokens or 0, usage.output_tokens or 0
    # cache_write_tokens is required by ResponseUsage; recall's Usage does not track cache writes.
    return {"input_tokens": inputs,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens or 0, "cache_write_tokens": 0},
            "output_tokens": outputs, "output_tokens_details": {"reasoning_tokens": usage.thought_tokens or 0},
            "total_tokens": usage.total_tokens if usage.total_tokens is not None else inputs + outputs}


# -- items out: neutral parts as items --------------------------------------------------


def _own_native(part: Part) -> dict[str, Any] | None:
    return part.native if isinstance(part.native, dict) and part.origin == NAME else None


def items_of(turns: list[Turn], target: Codec) -> list[dict[str, Any]]:
    """Neutral turns as input items for a provider that keeps nothing (no item ids to look up)."""
    items: list[dict[str, Any]] = []
    for turn in turns:
        if turn.role == MODEL:
            items.extend(_model_input_items(turn.parts, target))
        else:
            items.extend(_user_input_items(turn.parts))
    return items


def text_messages(turns: list[Turn]) -> list[dict[str, Any]]:
    """Neutral turns as `{role, content}` messages of their text alone, for a Responses API that
    takes text only (Parallel's). A turn with no text (a tool call, say) is left out."""
    messages = []
    for turn in turns:
        text = "".join(part.text or "" for part in turn.parts if part.kind == TEXT)
        if text:
            messages.append({"role": "assistant" if turn.role == MODEL else "user", "content": text})
    return messages


def _user_input_items(parts: list[Part]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []

    def flush() -> None:
        if content:
            items.append({"type": "message", "role": "user", "content": content.copy()})
            content.clear()

    for part in parts:
        element = _input_content(part)
        if element is not None:
            content.append(element)
            continue
        flush()
        if part.kind == FUNCTION_RESULT:
            output = part.result if isinstance(part.result, list) and part.origin == NAME else result_text(part.result)
            items.append({"type": "function_call_output", "call_id": part.call_id or "", "output": output})
        elif part.kind == INSTRUCTION:
            items.append(dict(_own_native(part) or {"type": "message", "role": "developer", "content": part.text or ""}))
        elif _own_native(part) is not None:
            items.append(dict(part.native))
    flush()
    return items


def _input_content(part: Part) -> dict[str, Any] | None:
    """A user content element, or None for parts that are items of their own."""
    if part.kind == TEXT:
        return _own_native(part) or {"type": "input_text", "text": part.text or ""}
    if part.kind not in MEDIA_KINDS:
        return None
    native = _own_native(part)
    if native is not None:
        return native
    url = data_url(part.mime_type, part.data) if part.data is not None else part.uri
    if part.kind == IMAGE and url:
        return {"type": "input_image", "image_url": url}
    if part.kind == DOCUMENT and url:
        key = "file_data" if part.data is not None else "file_url"
        return {"type": "input_file", "filename": "document", key: url}
    return None  # audio and video have no Responses input form


def _model_input_items(parts: list[Part], target: Codec) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for kind, group in output_plan(parts):
        part = group[0]
        if kind == "message":
            items.append({"type": "message", "role": "assistant",
                          "content": [output_content(p) for p in group]})
        elif kind == "reasoning":
            # Only encrypted reasoning can travel to a provider that stores nothing.
            if part.signature and target.carries(part):
                items.append({**(_own_native(part) or {"type": "reasoning", "summary": []}),
                              "encrypted_content": part.signature})
        elif kind == COMPACTION:
            items.append(_compaction_item(part))
        elif kind == FUNCTION_CALL:
            # No item id: with store=false the provider could not look it up.
            items.append({"type": "function_call", "call_id": part.call_id or "", "name": part.name,
                          "arguments": arguments_json(part.arguments)})
        else:
            items.append(dict(part.native))
    return items


def item_kind(part: Part) -> str | None:
    """Which Response output item a part belongs to; None for parts this API cannot show."""
    if part.kind == TEXT:
        return "message"
    if part.kind == THOUGHT:
        return "reasoning"
    if part.kind == FUNCTION_CALL:
        return FUNCTION_CALL
    if part.kind == COMPACTION:
        return COMPACTION if _own_native(part) is not None or is_sealed(part.signature) else None
    if _own_native(part) is not None and part.kind not in (INSTRUCTION, FUNCTION_RESULT):
        return "native"
    return None


def output_plan(parts: list[Part]) -> list[tuple[str, list[Part]]]:
    """Output items in order: consecutive text parts share one message item."""
    plan: list[tuple[str, list[Part]]] = []
    open_message = False
    for part in parts:
        kind = item_kind(part)
        if kind is None:
            continue
        if kind == "message" and open_message:
            plan[-1][1].append(part)
            continue
        plan.append((kind, [part]))
        open_message = kind == "message"
    return plan


def output_content(part: Part) -> dict[str, Any]:
    native = _own_native(part)
    if native is not None and native.get("type") in ("output_text", "refusal"):
        return native
    return {"type": "output_text", "text": part.text or "", "annotations": [], "logprobs": []}


def output_item(kind: str, group: list[Part], node_id: str, index: int, codec: Codec) -> dict[str, Any]:
    """Output item `index` of a node, made of a group of its parts (see output_plan), as `codec` renders it."""
    part = group[0]
    if kind == "message":
        return {"id": stable_id("msg_", node_id, index), "type": "message", "role": "assistant",
                "status": "completed", "content": [output_content(p) for p in group]}
    if kind == "reasoning":
        return _reasoning_item(part, node_id, index, codec)
    if kind == COMPACTION:
        item = _compaction_item(part)
        return {**item, "id": item.get("id") or stable_id("cmp_", node_id, index)}
    if kind == FUNCTION_CALL:
        item = _own_native(part) or {"type": "function_call"}
        return {**item, "id": item.get("id") or stable_id("fc_", node_id, index),
                "call_id": part.call_id or stable_id("call_", node_id, index), "name": part.name,
                "arguments": arguments_json(part.arguments), "status": "completed"}
    return dict(part.native)


def _compaction_item(part: Part) -> dict[str, Any]:
    """OpenAI's compaction item as it came, or recall's own with its sealed summary."""
    return dict(_own_native(part) or {"type": COMPACTION, "encrypted_content": part.signature or ""})


def _reasoning_item(part: Part, node_id: str, index: int, codec: Codec) -> dict[str, Any]:
    item = {**(_own_native(part) or {}), "type": "reasoning"}
    item["id"] = item.get("id") or stable_id("rs_", node_id, index)
    item["summary"] = [{"type": "summary_text", "text": part.text}] if part.text else []
    if part.signature and codec.carries(part):
        item["encrypted_content"] = part.signature
    return item
