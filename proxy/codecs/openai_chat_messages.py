"""Chat Completions messages and the neutral turns they hold, both ways: the `messages`
of a create, and a conversation sent as messages to a provider (thoughts and
provider-only parts are not carried).
"""

from __future__ import annotations

from typing import Any

from ..errors import bad_request
from ..model import AUDIO, DOCUMENT, FUNCTION_CALL, FUNCTION_RESULT, IMAGE, INSTRUCTION, MODEL, TEXT, USER, Part, Turn
from .base import as_dict, expect, type_name
from .openai_formats import arguments_json, data_url, parse_arguments, result_text, split_data_url, stable_id

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


# -- messages in: neutral turns --------------------------------------------------------


def parse_message(message: Any, at: str, system: list[str], turns: list[Turn]) -> None:
    """One message of a create, added to `turns` (a system or developer message's text to `system`)."""
    expect(isinstance(message, dict), f"{at}: expected a message object; got {type_name(message)}", "messages")
    role = message.get("role")
    expect(role in _ROLES, f"{at}.role: expected one of {', '.join(_ROLES)}; got {role!r}", "messages")
    content = message.get("content")
    if role in ("system", "developer"):
        system.append(_text_of(content, at))
    elif role == "user":
        turns.append(Turn(USER, _user_parts(content, at)))
    elif role == "assistant":
        parts = [Part(TEXT, text=_text_of(content, at))] if content else []
        calls = message.get("tool_calls") or []
        expect(isinstance(calls, list), f"{at}.tool_calls: expected a list; got {type_name(calls)}", "messages")
        for j, call in enumerate(calls):
            function = as_dict(as_dict(call).get("function"))
            expect(isinstance(function.get("name"), str),
                   f"{at}.tool_calls[{j}].function.name: a tool call needs the function's name", "messages")
            parts.append(Part(FUNCTION_CALL, call_id=call.get("id"), name=function["name"],
                              arguments=parse_arguments(function.get("arguments"))))
        turns.append(Turn(MODEL, parts))
    else:
        key = "tool_call_id" if role == "tool" else "name"
        expect(isinstance(message.get(key), str), f"{at}.{key}: a {role} message needs {key}", "messages")
        part = Part(FUNCTION_RESULT, result=_text_of(content, at),
                    call_id=message.get("tool_call_id"), name=message.get("name"))
        if turns and turns[-1].role == USER and all(p.kind == FUNCTION_RESULT for p in turns[-1].parts):
            turns[-1].parts.append(part)
        else:
            turns.append(Turn(USER, [part]))


def _text_of(content: Any, at: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    expect(isinstance(content, list), f"{at}.content: expected a string or a list; got {type_name(content)}", "messages")
    return "".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")


def _user_parts(content: Any, at: str) -> list[Part]:
    if isinstance(content, str):
        return [Part(TEXT, text=content)]
    expect(isinstance(content, list), f"{at}.content: expected a string or a list; got {type_name(content)}", "messages")
    parts = []
    for j, element in enumerate(content):
        where = f"{at}.content[{j}]"
        expect(isinstance(element, dict), f"{where}: expected a content object", "messages")
        kind = element.get("type")
        if kind == "text":
            expect(isinstance(element.get("text"), str), f"{where}.text: expected a string", "messages")
            parts.append(Part(TEXT, text=element["text"]))
        elif kind == "image_url":
            url = as_dict(element.get("image_url")).get("url")
            if not isinstance(url, str):
                raise bad_request(f"{where}.image_url.url: an image needs a URL", param="messages")
            inline = split_data_url(url)
            parts.append(Part(IMAGE, data=inline[1], mime_type=inline[0]) if inline else Part(IMAGE, uri=url))
        elif kind == "input_audio":
            audio = as_dict(element.get("input_audio"))
            expect(isinstance(audio.get("data"), str), f"{where}.input_audio.data: audio needs base64 data", "messages")
            parts.append(Part(AUDIO, data=audio["data"], mime_type=f"audio/{audio.get('format') or 'wav'}"))
        elif kind == "file":
            file = as_dict(element.get("file"))
            inline = split_data_url(file["file_data"]) if isinstance(file.get("file_data"), str) else None
            if inline is None:
                raise bad_request(f"{where}.file.file_data: recall carries files given as data URLs", param="messages")
            parts.append(Part(DOCUMENT, data=inline[1], mime_type=inline[0]))
        else:
            expect(False, f"{where}.type: expected text, image_url, input_audio or file; got {kind!r}", "messages")
    return parts


# -- neutral turns as messages --------------------------------------------------------


def messages_of(turns: list[Turn]) -> list[dict[str, Any]]:
    """Neutral turns as Chat messages (thoughts and provider-only parts are not carried)."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        if turn.role == MODEL:
            text = "".join(p.text or "" for p in turn.parts if p.kind == TEXT)
            calls = [tool_call(p, "", i) for i, p in enumerate(turn.parts) if p.kind == FUNCTION_CALL]
            if text or calls:
                message: dict[str, Any] = {"role": "assistant", "content": text or None}
                if calls:
                    message["tool_calls"] = calls
                messages.append(message)
            continue
        content: list[dict[str, Any]] = []
        for part in turn.parts:
            element = _user_content(part)
            if element is not None:
                content.append(element)
                continue
            if content:
                messages.append(_user_message(content))
                content = []
            if part.kind == FUNCTION_RESULT:
                messages.append({"role": "tool", "tool_call_id": part.call_id or "", "content": result_text(part.result)})
            elif part.kind == INSTRUCTION:
                messages.append({"role": "system", "content": part.text or ""})
        if content:
            messages.append(_user_message(content))
    return messages


def _user_message(content: list[dict[str, Any]]) -> dict[str, Any]:
    if len(content) == 1 and content[0]["type"] == "text":
        return {"role": "user", "content": content[0]["text"]}
    return {"role": "user", "content": content}


def _user_content(part: Part) -> dict[str, Any] | None:
    if part.kind == TEXT:
        return {"type": "text", "text": part.text or ""}
    url = data_url(part.mime_type, part.data) if part.data is not None else part.uri
    if part.kind == IMAGE and url:
        return {"type": "image_url", "image_url": {"url": url}}
    if part.kind == AUDIO and part.data is not None:
        return {"type": "input_audio", "input_audio": {"data": part.data,
                                                       "format": (part.mime_type or "audio/wav").split("/")[-1]}}
    if part.kind == DOCUMENT and part.data is not None:
        return {"type": "file", "file": {"filename": "document", "file_data": url}}
    return None


def tool_call(part: Part, node_id: str, index: int) -> dict[str, Any]:
    """A call part as an assistant message's tool call; its id derived from where it sits when it has none."""
    return {"id": part.call_id or stable_id("call_", node_id, index), "type": "function",
            "function": {"name": part.name, "arguments": arguments_json(part.arguments)}}
