"""Gemini Interactions steps and content items and the neutral parts they hold, both ways:
a create's input (either revision's), an interaction's `steps` and its earlier `outputs`,
and the conversation sent as steps to a provider.
"""

from __future__ import annotations

from typing import Any

from ..model import FUNCTION_CALL, FUNCTION_RESULT, MEDIA_KINDS, MODEL, TEXT, THOUGHT, USER, Part, Turn
from .base import Codec, as_list, expect, type_name

NAME = "gemini-interactions"

# Step types that hold a content list, by the role they speak for.
_CONTENT_STEPS = {"user_input": USER, "model_output": MODEL}


# -- steps in: neutral turns ---------------------------------------------------------


def parse_input(value: Any) -> list[Turn]:
    """A create's `input`: a string, one content object, either revision's turns, or steps."""
    if value is None:
        return []
    if isinstance(value, str):
        return [Turn(USER, [Part(TEXT, text=value)])]
    if isinstance(value, dict):
        return [Turn(USER, [part_of_content(value, "input")])]
    expect(isinstance(value, list),
           f"input: expected a string, a content object or a list; got {type_name(value)}", "input")
    if not value:
        return []
    expect(all(isinstance(item, dict) for item in value), "input: every list item must be an object", "input")
    if all("role" in item for item in value):
        return [_turn_of_role_item(item, i) for i, item in enumerate(value)]
    if any(item.get("type") in _CONTENT_STEPS or _is_step(item) for item in value):
        return _turns_of_steps(value)
    return [Turn(USER, [part_of_content(item, f"input[{i}]") for i, item in enumerate(value)])]


def _is_step(item: dict[str, Any]) -> bool:
    return item.get("type") in ("thought", "function_call", "function_result") and "content" not in item


def _turn_of_role_item(item: dict[str, Any], index: int) -> Turn:
    """The earlier revision's `{role, content}` turns (content: string or content list)."""
    role = item.get("role")
    where = f"input[{index}]"
    expect(role in ("user", "model"), f"{where}.role: expected 'user' or 'model'; got {role!r}", "input")
    content = item.get("content")
    if isinstance(content, str):
        return Turn(str(role), [Part(TEXT, text=content)])
    expect(isinstance(content, list), f"{where}.content: expected a string or a list; got {type_name(content)}", "input")
    return Turn(str(role), [part_of_content(c, f"{where}.content[{j}]") for j, c in enumerate(as_list(content))])


def _turns_of_steps(steps: list[dict[str, Any]]) -> list[Turn]:
    turns: list[Turn] = []
    for i, step in enumerate(steps):
        kind = step.get("type", "")
        role = _CONTENT_STEPS.get(kind) or (USER if kind == "function_result" else MODEL)
        if kind in _CONTENT_STEPS:
            content = step.get("content", [])
            expect(isinstance(content, list), f"input[{i}].content: expected a list; got {type_name(content)}", "input")
            parts = [part_of_content(c, f"input[{i}].content[{j}]") for j, c in enumerate(content)]
        else:
            parts = parts_of_step(step)
        if turns and turns[-1].role == role:
            turns[-1].parts.extend(parts)
        else:
            turns.append(Turn(role, parts))
    return turns


def parts_of_step(step: dict[str, Any]) -> list[Part]:
    kind = step.get("type")
    if kind in _CONTENT_STEPS:
        return [part_of_content(c) for c in step.get("content") or [] if isinstance(c, dict)]
    return [part_of_content(step)]


def part_of_content(item: Any, where: str = "input") -> Part:
    """One content item (or a call/result/thought step) as a neutral part."""
    expect(isinstance(item, dict), f"{where}: expected an object; got {type_name(item)}", "input")
    kind = item.get("type", TEXT if "text" in item else None)
    if kind == TEXT:
        text = item.get("text", "")
        expect(isinstance(text, str), f"{where}.text: expected a string; got {type_name(text)}", "input")
        return Part(TEXT, text=text, native=item if len(item) > 2 else None, origin=NAME if len(item) > 2 else None)
    if kind in MEDIA_KINDS:
        expect(bool(item.get("data") or item.get("uri")), f"{where}: a {kind} needs `data` or `uri`", "input")
        return Part(kind, data=item.get("data"), uri=item.get("uri"), mime_type=item.get("mime_type"))
    if kind == THOUGHT:
        summary = item.get("summary")
        text = "".join(s.get("text", "") for s in summary if isinstance(s, dict)) if isinstance(summary, list) else None
        return Part(THOUGHT, text=text or None, signature=item.get("signature"), origin=NAME)
    if kind == FUNCTION_CALL:
        expect(isinstance(item.get("name"), str), f"{where}.name: a function call needs a name", "input")
        return Part(FUNCTION_CALL, call_id=item.get("id"), name=item["name"], arguments=item.get("arguments") or {})
    if kind == FUNCTION_RESULT:
        expect("call_id" in item or "name" in item, f"{where}: a function result needs call_id", "input")
        return Part(FUNCTION_RESULT, call_id=item.get("call_id"), name=item.get("name"),
                    result=item.get("result"), is_error=item.get("is_error"))
    expect(isinstance(kind, str), f"{where}.type: expected a content type such as 'text'", "input")
    # A step or content recall does not model (search calls, code execution...):
    # kept verbatim for this same API, dropped by others.
    return Part(str(kind), native=item, origin=NAME)


# -- neutral turns as steps -----------------------------------------------------------


def content_item(part: Part) -> dict[str, Any]:
    if part.kind == TEXT:
        return part.native if part.native and part.origin == NAME else {"type": TEXT, "text": part.text or ""}
    item: dict[str, Any] = {"type": part.kind}
    for key in ("data", "uri", "mime_type"):
        if (value := getattr(part, key)) is not None:
            item[key] = value
    return item


def _step_of_part(part: Part) -> dict[str, Any]:
    if part.kind == THOUGHT:
        step: dict[str, Any] = {"type": THOUGHT}
        if part.signature:
            step["signature"] = part.signature
        if part.text:
            step["summary"] = [{"type": TEXT, "text": part.text}]
        return step
    if part.kind == FUNCTION_CALL:
        return {"type": FUNCTION_CALL, "id": part.call_id or "", "name": part.name, "arguments": part.arguments or {}}
    if part.kind == FUNCTION_RESULT:
        step = {"type": FUNCTION_RESULT, "call_id": part.call_id or "", "result": part.result}
        if part.name:
            step["name"] = part.name
        if part.is_error is not None:
            step["is_error"] = part.is_error
        return step
    return dict(part.native)


def _is_content(part: Part) -> bool:
    return part.kind == TEXT or part.kind in MEDIA_KINDS


def group_steps(parts: list[Part]) -> list[list[Part]]:
    """Consecutive text and media parts share one content step; others stand alone."""
    groups: list[list[Part]] = []
    for part in parts:
        if _is_content(part) and groups and _is_content(groups[-1][-1]):
            groups[-1].append(part)
        else:
            groups.append([part])
    return groups


def step_of(group: list[Part], role: str = MODEL) -> dict[str, Any]:
    if _is_content(group[0]):
        kind = "user_input" if role == USER else "model_output"
        return {"type": kind, "content": [content_item(p) for p in group]}
    return _step_of_part(group[0])


def steps_of(turns: list[Turn], target: Codec | None = None) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for turn in turns:
        parts = [p for p in turn.parts if target is None or _sendable(p, target)]
        steps.extend(step_of(group, turn.role) for group in group_steps(parts))
    return steps


def _sendable(part: Part, target: Codec) -> bool:
    if part.kind == THOUGHT:
        return target.carries(part) and bool(part.signature)
    if part.native is not None and part.kind not in (TEXT, *MEDIA_KINDS):
        return part.origin == NAME
    return True


def flat_item(part: Part) -> Any:
    """An item of the earlier revision's flat `outputs` list: for a part recall does not
    model, its provider's JSON as it came (None when there is none)."""
    if _is_content(part):
        return content_item(part)
    if part.kind in (THOUGHT, FUNCTION_CALL, FUNCTION_RESULT):
        return _step_of_part(part)
    return part.native
