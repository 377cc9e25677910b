"""OpenAI Responses API (`/v1/responses`), both directions, and its stream events.

As an upstream in emulate mode it receives the whole conversation as `input`
items with `store: false`, the way zero-data-retention clients call it: the
reasoning items come back with `encrypted_content` (asked for with `include`)
and are sent again on the next turn, carried as neutral thoughts whose
signature is that encrypted content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..deltas import PartDelta, PartStart, PartStop, StreamDelta
from ..errors import ApiError, bad_request, not_found
from ..model import (
    CANCELLED,
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
    REQUIRES_ACTION,
    TEXT,
    THOUGHT,
    USER,
    Interaction,
    ModelReply,
    Part,
    Turn,
    TurnRequest,
    Usage,
    settle_status,
)
from ..sse import DONE, SSEEvent, frame
from .base import (
    Frame,
    StreamDecoder,
    StreamEncoder,
    UpstreamCall,
    expect,
    mark_provider_only,
    optional_bool,
    optional_str,
    type_name,
)
from .openai_common import (
    OpenAICodec,
    arguments_json,
    as_dict,
    as_int,
    as_list,
    data_url,
    function_tool,
    neutral_tool_choice,
    parse_arguments,
    result_text,
    split_data_url,
    stable_id,
)

NAME = "openai-responses"
ENCRYPTED_REASONING = "reasoning.encrypted_content"

# The provider's statuses in the neutral vocabulary, and back.
_STATUS_IN = {"queued": IN_PROGRESS, "in_progress": IN_PROGRESS, "completed": COMPLETED,
              "incomplete": INCOMPLETE, "failed": FAILED, "cancelled": CANCELLED}
_TERMINAL_EVENT = {COMPLETED: "response.completed", REQUIRES_ACTION: "response.completed",
                   INCOMPLETE: "response.incomplete", CANCELLED: "response.incomplete", FAILED: "response.failed"}
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_TEXT_TYPES = ("input_text", "output_text", "text")
# Fields of a create that never go to a provider that keeps no state.
_STATEFUL_FIELDS = ("previous_response_id", "background", "conversation")


class OpenAIResponses(OpenAICodec):
    name = NAME
    speaks = "openai"
    stateful_on = frozenset({"openai"})
    id_prefix = "resp_"
    previous_field = "previous_response_id"
    resume_param = "starting_after"
    media_inline = media_by_url = frozenset({IMAGE, DOCUMENT})
    instruction_messages = True
    builtin_url = "https://api.openai.com"
    sdk_base_url = ("OPENAI_BASE_URL", "/v1")  # openai: its paths start after /v1
    sdk_key_env = ("OPENAI_API_KEY",)
    carries_settings = frozenset({"temperature", "top_p", "max_output_tokens", "reasoning_effort", "response_format",
                                  "tool_choice"})
    setting_fields = {"response_format": "text.format"}
    not_echoed = frozenset({"input", "stream", "store", "model"})

    # -- front side -------------------------------------------------------------

    def parse_create(self, body: Any) -> TurnRequest:
        expect(isinstance(body, dict), f"the request body must be a JSON object; got {type_name(body)}")
        # Neither `model` nor `input` is required by the contract: a stored prompt (`prompt`) can
        # carry both. OpenAI judges them on a call that reaches it in its own API; recall asks for
        # a model only when it translates the call for another API (codecs.base.check_carriage).
        model = optional_str(body, "model")
        previous = optional_str(body, "previous_response_id")
        conversation = conversation_id(body.get("conversation"))
        store = optional_bool(body, "store", True)
        expect(not (previous and conversation),
               "previous_response_id and conversation cannot be used together; continue either a response or a "
               "conversation", "conversation")
        expect(not (conversation and not store),
               "a response in a conversation is stored in it; remove store=false or conversation", "store")
        req = TurnRequest(
            front=NAME,
            model=model,
            input=turns_of_items(body["input"], "input") if body.get("input") is not None else [],
            previous_id=previous,
            system=optional_str(body, "instructions"),
            store=store,
            stream=optional_bool(body, "stream", False),
            background=optional_bool(body, "background", False),
            conversation=conversation,
            raw=body,
        )
        _parse_tools(body.get("tools"), req)
        _parse_settings(body, req)
        mark_provider_only(body, ("prompt",), req)  # a prompt template stored at OpenAI
        return req

    def render(self, it: Interaction, *, include_input: bool = False) -> dict[str, Any]:
        req = it.request
        status = _STATUS_OUT.get(it.status, it.status)
        conversation = conversation_id(req.get("conversation"))
        rendered: dict[str, Any] = {
            "id": it.id,
            "object": "response",
            "created_at": int(it.created),
            "status": status,
            "background": bool(req.get("background", False)),
            "error": {"code": "server_error", "message": it.error} if it.error and status == FAILED else None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == INCOMPLETE else None,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "model": it.model,
            "output": self.output_items(it),
            "parallel_tool_calls": req.get("parallel_tool_calls") is not False,
            "previous_response_id": None if conversation else it.parent_id,
            "reasoning": req.get("reasoning") or {"effort": None, "summary": None},
            "store": True,
            "temperature": req.get("temperature"),
            "text": req.get("text") or {"format": {"type": "text"}},
            "tool_choice": req.get("tool_choice") or "auto",
            "tools": _tools_out(req.get("tools") or []),
            "top_p": req.get("top_p"),
            "truncation": req.get("truncation") or "disabled",
            "metadata": req.get("metadata") or {},
            "completed_at": int(it.updated) if status == COMPLETED else None,
            "conversation": {"id": conversation} if conversation else None,
        }
        # `usage` (ResponseUsage) and `user` (a string) are never null in a Response
        # (openai-v3.3.1.yml): left out when unknown, as their schemas let them be.
        usage = _usage_out(it.usage)
        if usage is not None:
            rendered["usage"] = usage
        if isinstance(req.get("user"), str):
            rendered["user"] = req["user"]
        return rendered

    def reply_body(self, node: Interaction, provider_body: bytes | None, *, stored: bool) -> bytes:
        rendered = self.render(node)
        rendered["store"] = stored
        return orjson.dumps(rendered)

    def previous_not_found(self, previous_id: str) -> ApiError:
        return bad_request(f"Previous response with id '{previous_id}' not found.",
                           code="previous_response_not_found", param="previous_response_id")

    def not_found(self, resource_id: str) -> ApiError:
        return not_found(f"Response with id '{resource_id}' not found.")

    def stream_encoder(self, headers: Mapping[str, str], body: Any) -> StreamEncoder:
        return ResponsesStreamEncoder(self, body if isinstance(body, dict) else {})

    def output_items(self, it: Interaction) -> list[dict[str, Any]]:
        """The node's output as Response output items, with ids every rendering agrees on."""
        parts = [p for turn in it.output for p in turn.parts]
        return [self._output_item(kind, group, it.id, index)
                for index, (kind, group) in enumerate(_output_plan(parts))]

    def input_items(self, it: Interaction) -> list[dict[str, Any]]:
        """The node's own input as the items `input_items` lists, each with an id."""
        items = []
        for index, item in enumerate(_items_of(it.input, self)):
            if "role" in item:  # every message in its full shape, as OpenAI lists them
                content = item.get("content")
                if isinstance(content, str):
                    content = [{"type": "output_text" if item["role"] == "assistant" else "input_text", "text": content}]
                item = {**item, "type": "message", "status": "completed", "content": content}
            prefix = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}.get(
                item.get("type", ""), "item_")
            items.append({"id": stable_id(prefix, it.id, "input", index), **item})
        return items

    def _output_item(self, kind: str, group: list[Part], node_id: str, index: int) -> dict[str, Any]:
        part = group[0]
        if kind == "message":
            return {"id": stable_id("msg_", node_id, index), "type": "message", "role": "assistant",
                    "status": "completed", "content": [_output_content(p) for p in group]}
        if kind == "reasoning":
            return self._reasoning_item(part, node_id, index)
        if kind == FUNCTION_CALL:
            item = _own_native(part) or {"type": "function_call"}
            return {**item, "id": item.get("id") or stable_id("fc_", node_id, index),
                    "call_id": part.call_id or stable_id("call_", node_id, index), "name": part.name,
                    "arguments": arguments_json(part.arguments), "status": "completed"}
        return dict(part.native)

    def _reasoning_item(self, part: Part, node_id: str, index: int) -> dict[str, Any]:
        item = {**(_own_native(part) or {}), "type": "reasoning"}
        item["id"] = item.get("id") or stable_id("rs_", node_id, index)
        item["summary"] = [{"type": "summary_text", "text": part.text}] if part.text else []
        if part.signature and self.carries(part):
            item["encrypted_content"] = part.signature
        return item

    # -- upstream side ----------------------------------------------------------

    def upstream_call(self, req: TurnRequest, history: list[Turn]) -> UpstreamCall:
        """A self-contained create: the whole conversation as input items, not stored upstream."""
        if req.front == NAME:
            # Same wire API: every field the app sent goes on; its input follows the history as it came.
            body = {k: v for k, v in req.raw.items() if k not in _STATEFUL_FIELDS}
            raw_input = req.raw.get("input")
            new_items = ([{"role": "user", "content": raw_input}] if isinstance(raw_input, str)
                         else list(raw_input or []))
        else:
            body = {"model": req.model, **_settings_out(req)}
            new_items = _items_of(req.input, self)
        body["input"] = [*_items_of(history, self), *new_items]
        body["store"] = False
        if req.stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        if _keeps_reasoning(req, history, self):
            include = as_list(body.get("include"))
            if ENCRYPTED_REASONING not in include:
                body["include"] = [*include, ENCRYPTED_REASONING]
        return UpstreamCall("POST", "/v1/responses", body)

    def parse_reply(self, body: Any) -> ModelReply:
        expect(isinstance(body, dict), "the response is not a JSON object")
        output = body.get("output")
        expect(isinstance(output, list), "the response has no output list")
        parts = [p for item in output if isinstance(item, dict) for p in _parts_of_output_item(item)]
        turns = [Turn(MODEL, parts)] if parts else []
        error = body.get("error")
        return ModelReply(
            output=turns,
            status=settle_status(turns, _STATUS_IN.get(body.get("status") or COMPLETED, COMPLETED)),
            usage=usage_in(body.get("usage")),
            model=body.get("model"),
            provider_id=body.get("id"),
            error=str(error.get("message")) if isinstance(error, dict) else None,
        )

    def stream_decoder(self) -> StreamDecoder:
        return ResponsesStreamDecoder()


_STATUS_OUT = {REQUIRES_ACTION: COMPLETED}


def conversation_id(value: Any) -> str | None:
    """The conversation a create names: `"conv_…"` or `{"id": "conv_…"}`."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("id")
    expect(isinstance(value, str) and bool(value),
           "conversation: expected a conversation id or {\"id\": …}", "conversation")
    return value


# -- decoding ------------------------------------------------------------------


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
    return [_content_part(c, f"{at}.content[{j}]", where) for j, c in enumerate(content)]


def _content_part(element: Any, at: str, where: str) -> Part:
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


def _parts_of_output_item(item: dict[str, Any]) -> list[Part]:
    kind = item.get("type")
    if kind == "message":
        content = as_list(item.get("content"))
        return [_content_part(c, "output", "output") for c in content if isinstance(c, dict)]
    if kind == "function_call":
        return [_call_part(item)]
    if kind == "reasoning":
        return [_reasoning_part(item)]
    return [Part(str(kind), native=item, origin=NAME)]


def _parse_tools(tools: Any, req: TurnRequest) -> None:
    if tools is None:
        return
    expect(isinstance(tools, list), f"tools: expected a list; got {type_name(tools)}", "tools")
    for i, tool in enumerate(tools):
        expect(isinstance(tool, dict), f"tools[{i}]: expected an object; got {type_name(tool)}", "tools")
        if tool.get("type") == "function":
            req.tools.append(function_tool(tool, f"tools[{i}]", strict_by_default=True))
        else:
            req.untranslatable.append(f"tools[{i}] (type {tool.get('type')!r})")


_TOOL_CHOICE_WORDS = ("none", "auto", "required")
_RANGES = {"temperature": (0, 2), "top_p": (0, 1)}


def _check_echoed(body: dict[str, Any]) -> None:
    """Fields a Response repeats from its request, judged as OpenAI judges them (a 400), so that the
    Response recall renders from them is one OpenAI's description allows (openai-v3.3.1.yml: Metadata,
    ToolChoiceParam, ResponseProperties.truncation, parallel_tool_calls, user)."""
    tool_calls = body.get("parallel_tool_calls")
    expect(tool_calls is None or isinstance(tool_calls, bool),
           f"parallel_tool_calls: expected a boolean; got {type_name(tool_calls)}", "parallel_tool_calls")
    user = body.get("user")
    expect(user is None or isinstance(user, str), f"user: expected a string; got {type_name(user)}", "user")
    truncation = body.get("truncation")
    expect(truncation in (None, "auto", "disabled"), f"truncation: expected 'auto' or 'disabled'; got {truncation!r}",
           "truncation")
    metadata = body.get("metadata")
    expect(metadata is None or (isinstance(metadata, dict) and len(metadata) <= 16 and all(
        isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())),
        "metadata: expected up to 16 string keys (64 characters at most) with string values (512 at most)",
        "metadata")
    choice = body.get("tool_choice")
    expect(choice is None or choice in _TOOL_CHOICE_WORDS
           or (isinstance(choice, dict) and isinstance(choice.get("type"), str)
               and (choice["type"] != "function" or isinstance(choice.get("name"), str))),
           f"tool_choice: expected one of {', '.join(_TOOL_CHOICE_WORDS)} or an object with a type; got {choice!r}",
           "tool_choice")


def _parse_settings(body: dict[str, Any], req: TurnRequest) -> None:
    _check_echoed(body)
    for key in ("temperature", "top_p"):
        value = body.get(key)
        expect(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
               f"{key}: expected a number; got {type_name(value)}", key)
        low, high = _RANGES[key]
        expect(value is None or low <= value <= high, f"{key}: expected a number from {low} to {high}; got {value}",
               key)
        if value is not None:
            req.generation[key] = value
    limit = body.get("max_output_tokens")
    expect(limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit > 0),
           f"max_output_tokens: expected a positive integer; got {limit!r}", "max_output_tokens")
    if limit is not None:
        req.generation["max_output_tokens"] = limit
    reasoning = body.get("reasoning")
    expect(reasoning is None or isinstance(reasoning, dict),
           f"reasoning: expected an object such as {{\"effort\": \"low\"}}; got {type_name(reasoning)}", "reasoning")
    if reasoning and reasoning.get("effort"):
        req.generation["reasoning_effort"] = reasoning["effort"]
    text = body.get("text")
    expect(text is None or isinstance(text, dict), f"text: expected an object; got {type_name(text)}", "text")
    form = (text or {}).get("format")
    expect(form is None or isinstance(form, dict), f"text.format: expected an object; got {type_name(form)}", "text")
    if form and form.get("type") == "json_schema":
        expect(isinstance(form.get("schema"), dict), "text.format.schema: a json_schema format needs a schema", "text")
        req.generation["response_format"] = {k: form[k] for k in ("type", "name", "schema", "strict", "description")
                                             if k in form}
    elif form and form.get("type") == "json_object":
        req.generation["response_format"] = {"type": "json_object"}
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") != "function":
        req.untranslatable.append(f"tool_choice (type {choice.get('type')!r})")
    elif choice is not None:
        req.generation["tool_choice"] = neutral_tool_choice(choice, "tool_choice")


# -- encoding ------------------------------------------------------------------


def _settings_out(req: TurnRequest) -> dict[str, Any]:
    """A translated request's instructions, tools and settings as Responses fields."""
    body: dict[str, Any] = {}
    if req.system:
        body["instructions"] = req.system
    if req.tools:
        # strict is always said: absent, Responses would take a non-strict tool as strict.
        body["tools"] = [{k: v for k, v in (("type", "function"), ("name", t.name), ("description", t.description),
                                            ("parameters", t.parameters), ("strict", t.strict)) if v is not None}
                         for t in req.tools]
    generation = req.generation
    for key in ("temperature", "top_p", "max_output_tokens"):
        if key in generation:
            body[key] = generation[key]
    if "reasoning_effort" in generation:
        body["reasoning"] = {"effort": generation["reasoning_effort"]}
    if "response_format" in generation:
        body["text"] = {"format": generation["response_format"]}
    choice = generation.get("tool_choice")
    if choice is not None:
        body["tool_choice"] = {"type": "function", "name": choice["name"]} if isinstance(choice, dict) else choice
    return body


def _keeps_reasoning(req: TurnRequest, history: list[Turn], target: OpenAIResponses) -> bool:
    """Whether to ask for encrypted reasoning: the model reasons (the request says so, or the
    history holds its reasoning). Non-reasoning models refuse the `include` (400)."""
    asked = "reasoning" in req.raw if req.front == NAME else "reasoning_effort" in req.generation
    if asked:
        return True
    return any(p.kind == THOUGHT and p.signature and target.carries(p)
               for turn in history for p in turn.parts)


def _own_native(part: Part) -> dict[str, Any] | None:
    return part.native if isinstance(part.native, dict) and part.origin == NAME else None


def _items_of(turns: list[Turn], target: OpenAIResponses) -> list[dict[str, Any]]:
    """Neutral turns as input items for a provider that keeps nothing (no item ids to look up)."""
    items: list[dict[str, Any]] = []
    for turn in turns:
        if turn.role == MODEL:
            items.extend(_model_input_items(turn.parts, target))
        else:
            items.extend(_user_input_items(turn.parts))
    return items


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


def _model_input_items(parts: list[Part], target: OpenAIResponses) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for kind, group in _output_plan(parts):
        part = group[0]
        if kind == "message":
            items.append({"type": "message", "role": "assistant",
                          "content": [_output_content(p) for p in group]})
        elif kind == "reasoning":
            # Only encrypted reasoning can travel to a provider that stores nothing.
            if part.signature and target.carries(part):
                items.append({**(_own_native(part) or {"type": "reasoning", "summary": []}),
                              "encrypted_content": part.signature})
        elif kind == FUNCTION_CALL:
            # No item id: with store=false the provider could not look it up.
            items.append({"type": "function_call", "call_id": part.call_id or "", "name": part.name,
                          "arguments": arguments_json(part.arguments)})
        else:
            items.append(dict(part.native))
    return items


def _item_kind(part: Part) -> str | None:
    """Which Response output item a part belongs to; None for parts this API cannot show."""
    if part.kind == TEXT:
        return "message"
    if part.kind == THOUGHT:
        return "reasoning"
    if part.kind == FUNCTION_CALL:
        return FUNCTION_CALL
    if _own_native(part) is not None and part.kind not in (INSTRUCTION, FUNCTION_RESULT):
        return "native"
    return None


def _output_plan(parts: list[Part]) -> list[tuple[str, list[Part]]]:
    """Output items in order: consecutive text parts share one message item."""
    plan: list[tuple[str, list[Part]]] = []
    open_message = False
    for part in parts:
        kind = _item_kind(part)
        if kind is None:
            continue
        if kind == "message" and open_message:
            plan[-1][1].append(part)
            continue
        plan.append((kind, [part]))
        open_message = kind == "message"
    return plan


def _output_content(part: Part) -> dict[str, Any]:
    native = _own_native(part)
    if native is not None and native.get("type") in ("output_text", "refusal"):
        return native
    return {"type": "output_text", "text": part.text or "", "annotations": [], "logprobs": []}


def usage_in(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    inputs = as_dict(usage.get("input_tokens_details"))
    outputs = as_dict(usage.get("output_tokens_details"))
    values = {"input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
              "total_tokens": usage.get("total_tokens"), "cached_tokens": inputs.get("cached_tokens"),
              "thought_tokens": outputs.get("reasoning_tokens")}
    return Usage(**{k: v for k, v in values.items() if isinstance(v, int)})


def _tools_out(tools: list[Any]) -> list[Any]:
    """The request's tools as a Response states them: a function tool always has `strict` and
    `parameters` (FunctionTool requires both). A tool that does not say is strict in Responses
    (function_tool(strict_by_default=True)); no parameters is null."""
    out = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function":
            strict = tool.get("strict")
            tool = {**tool, "strict": True if strict is None else strict, "parameters": tool.get("parameters")}
        out.append(tool)
    return out


def _usage_out(usage: Usage) -> dict[str, Any] | None:
    if not usage.to_json():
        return None
    inputs, outputs = usage.input_tokens or 0, usage.output_tokens or 0
    # cache_write_tokens is required by ResponseUsage; recall's Usage does not track cache writes.
    return {"input_tokens": inputs,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens or 0, "cache_write_tokens": 0},
            "output_tokens": outputs, "output_tokens_details": {"reasoning_tokens": usage.thought_tokens or 0},
            "total_tokens": usage.total_tokens if usage.total_tokens is not None else inputs + outputs}


# -- streaming -------------------------------------------------------------------

# Lifecycle events whose `response` names the response, so a relayed one needs recall's id.
_LIFECYCLE = frozenset({"response.created", "response.queued", "response.in_progress", "response.completed",
                        "response.incomplete", "response.failed"})


class ResponsesStreamEncoder(StreamEncoder):
    """Writes Responses events in the order the SDK's `responses.stream()` helper checks:
    created first, each item added before its content and done after it, then the
    terminal event with the same response id; `sequence_number` from 0, no `id:` lines."""

    can_relabel = True

    def __init__(self, codec: OpenAIResponses, body: dict[str, Any]) -> None:
        self._codec = codec
        self._body = body
        self._seq = 0
        self._node_id = ""
        self._items = 0  # output items opened so far: the next output_index
        self._message: dict[str, Any] | None = None  # the message item text parts are going into
        self._open: dict[int, dict[str, Any]] = {}  # part index -> what it is being written as

    def _frame(self, event_type: str, payload: dict[str, Any]) -> Frame:
        seq = self._seq
        self._seq += 1
        body = {"type": event_type, "sequence_number": seq, **payload}
        return Frame(str(seq), frame(orjson.dumps(body), event_type))

    def _response(self, node: Interaction, *, final: bool) -> dict[str, Any]:
        response = self._codec.render(node)
        response["store"] = self._body.get("store", True) is not False
        if not final:
            response["status"], response["output"] = "in_progress", []
            response.pop("usage", None)  # none yet; `usage` is an object when present, never null
        return response

    def opening(self, node: Interaction) -> list[Frame]:
        self._node_id = node.id
        response = self._response(node, final=False)
        return [self._frame("response.created", {"response": response}),
                self._frame("response.in_progress", {"response": response})]

    def delta(self, delta: StreamDelta) -> list[Frame]:
        if isinstance(delta, PartStart):
            return self._start(delta.index, delta.part)
        state = self._open.get(delta.index)
        if state is None:
            return []
        if isinstance(delta, PartDelta):
            return self._more(state, delta)
        del self._open[delta.index]
        return self._stop(state)

    def _start(self, index: int, part: Part) -> list[Frame]:
        kind = _item_kind(part)
        if kind is None:
            return []
        frames: list[Frame] = []
        if kind == "message" and self._message is not None:
            message = self._message
        else:
            frames += self._close_message()
            output_index = self._items
            self._items += 1
            if kind == "message":
                message = self._message = {"id": stable_id("msg_", self._node_id, output_index),
                                           "output_index": output_index, "content": []}
                shell = {"id": message["id"], "type": "message", "role": "assistant", "status": "in_progress",
                         "content": []}
                frames.append(self._frame("response.output_item.added", {"output_index": output_index, "item": shell}))
            else:
                item = self._item(kind, part, output_index)
                self._open[index] = {"kind": kind, "part": part, "output_index": output_index, "item": item,
                                     "text": [], "arguments": [], "signature": []}
                if kind == FUNCTION_CALL:
                    item = {**item, "arguments": "", "status": "in_progress"}
                elif kind == "reasoning":
                    item = {**item, "summary": []}
                    item.pop("encrypted_content", None)
                return [*frames, self._frame("response.output_item.added",
                                             {"output_index": output_index, "item": item})]
        content_index = len(message["content"])
        state = {"kind": "message", "part": part, "message": message, "content_index": content_index, "text": []}
        message["content"].append(state)
        self._open[index] = state
        shell_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        frames.append(self._frame("response.content_part.added", {
            "item_id": message["id"], "output_index": message["output_index"], "content_index": content_index,
            "part": shell_part}))
        return frames

    def _item(self, kind: str, part: Part, output_index: int) -> dict[str, Any]:
        return self._codec._output_item(kind, [part], self._node_id, output_index)

    def _more(self, state: dict[str, Any], delta: PartDelta) -> list[Frame]:
        kind = state["kind"]
        if kind == "message" and delta.text:
            message = state["message"]
            state["text"].append(delta.text)
            return [self._frame("response.output_text.delta", {
                "item_id": message["id"], "output_index": message["output_index"],
                "content_index": state["content_index"], "delta": delta.text, "logprobs": []})]
        frames: list[Frame] = []
        where = {"item_id": state["item"]["id"], "output_index": state["output_index"]}
        if kind == "reasoning":
            if delta.signature:
                state["signature"].append(delta.signature)
            if delta.text:
                if not state["text"]:
                    frames.append(self._frame("response.reasoning_summary_part.added", {
                        **where, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}))
                state["text"].append(delta.text)
                frames.append(self._frame("response.reasoning_summary_text.delta",
                                          {**where, "summary_index": 0, "delta": delta.text}))
        elif kind == FUNCTION_CALL and delta.arguments:
            state["arguments"].append(delta.arguments)
            frames.append(self._frame("response.function_call_arguments.delta", {**where, "delta": delta.arguments}))
        return frames

    def _stop(self, state: dict[str, Any]) -> list[Frame]:
        kind = state["kind"]
        if kind == "message":
            message = state["message"]
            where = {"item_id": message["id"], "output_index": message["output_index"],
                     "content_index": state["content_index"]}
            part = state["part"]
            text = "".join(state["text"])
            state["final"] = _output_content(Part(TEXT, text=text, native=part.native, origin=part.origin))
            return [self._frame("response.output_text.done", {**where, "text": text, "logprobs": []}),
                    self._frame("response.content_part.done", {**where, "part": state["final"]})]
        part, output_index = state["part"], state["output_index"]
        where = {"item_id": state["item"]["id"], "output_index": output_index}
        frames: list[Frame] = []
        if kind == "reasoning":
            text = "".join(state["text"])
            finished = Part(THOUGHT, text=text or part.text, signature="".join(state["signature"]) or part.signature,
                            native=part.native, origin=part.origin)
            if text:
                summary = {"type": "summary_text", "text": text}
                frames += [self._frame("response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text}),
                           self._frame("response.reasoning_summary_part.done", {**where, "summary_index": 0, "part": summary})]
            item = self._item(kind, finished, output_index)
        elif kind == FUNCTION_CALL:
            arguments = "".join(state["arguments"])
            item = {**state["item"], "arguments": arguments}
            frames.append(self._frame("response.function_call_arguments.done",
                                      {**where, "name": part.name, "arguments": arguments}))
        else:
            item = state["item"]
        return [*frames, self._frame("response.output_item.done", {"output_index": output_index, "item": item})]

    def _close_message(self) -> list[Frame]:
        message, self._message = self._message, None
        if message is None:
            return []
        content = [state.get("final") or _output_content(state["part"]) for state in message["content"]]
        item = {"id": message["id"], "type": "message", "role": "assistant", "status": "completed", "content": content}
        return [self._frame("response.output_item.done", {"output_index": message["output_index"], "item": item})]

    def closing(self, node: Interaction) -> list[Frame]:
        frames = self._close_message()
        event_type = _TERMINAL_EVENT.get(node.status, "response.completed")
        return [*frames, self._frame(event_type, {"response": self._response(node, final=True)})]

    def failure(self, node: Interaction, err: ApiError) -> list[Frame]:
        response = self._response(node, final=True)
        # A Response's error.code is one of ResponseErrorCode; recall's own failures are server errors
        # there (the `error` event before it carries recall's code).
        response["status"], response["error"] = FAILED, {"code": "server_error", "message": err.message}
        return [self._frame("error", {"code": err.code, "message": err.message, "param": err.param}),
                self._frame("response.failed", {"response": response})]

    def relabel(self, event: SSEEvent, node: Interaction) -> Frame | None:
        if event.data == DONE:
            return Frame(None, event.raw)
        body = event.json()
        if not isinstance(body, dict):
            return None
        seq = body.get("sequence_number")
        event_id = str(seq) if isinstance(seq, int) else None
        if isinstance(seq, int):
            self._seq = max(self._seq, seq + 1)  # recall's own closing events follow the provider's
        event_type = body.get("type")
        response = body.get("response")
        if event_type not in _LIFECYCLE or not isinstance(response, dict):
            return Frame(event_id, event.raw)  # item and content events pass untouched
        # The provider saw a stateless call; the app sees the response it asked for.
        conversation = conversation_id(self._body.get("conversation"))
        response["id"] = node.id
        response["previous_response_id"] = None if conversation else node.parent_id
        response["store"] = self._body.get("store", True) is not False
        response["conversation"] = {"id": conversation} if conversation else None
        if "background" in self._body:
            response["background"] = self._body["background"]
        return Frame(event_id, frame(orjson.dumps(body), event_type))


class ResponsesStreamDecoder(StreamDecoder):
    """Reads a provider's Responses events into neutral deltas."""

    def __init__(self) -> None:
        super().__init__()
        self._next = 0
        self._parts: dict[int, Part] = {}  # our part index -> the part being assembled
        self._by_item: dict[int, int] = {}  # output_index -> part (reasoning, call, other item)
        self._by_content: dict[tuple[int, int], int] = {}  # (output_index, content_index) -> text part
        self._streamed: set[int] = set()  # parts whose text or arguments arrived as deltas
        self._summaries: dict[int, int] = {}  # reasoning part -> summary_index of its last delta

    def _open(self, part: Part) -> tuple[int, list[StreamDelta]]:
        index = self._next
        self._next += 1
        self._parts[index] = part
        return index, [PartStart(index, part)]

    def decode(self, event: SSEEvent) -> list[StreamDelta]:
        body = event.json()
        if not isinstance(body, dict):
            return []
        event_type = body.get("type")
        output_index = as_int(body.get("output_index"))
        if event_type in _LIFECYCLE:
            return self._lifecycle(event_type, as_dict(body.get("response")))
        if event_type == "response.output_item.added":
            item = as_dict(body.get("item"))
            return self._item_added(output_index, item)
        if event_type == "response.content_part.added":
            index, out = self._open(Part(TEXT))
            self._by_content[(output_index, as_int(body.get("content_index")))] = index
            return out
        if event_type in ("response.output_text.delta", "response.refusal.delta"):
            return self._more(self._by_content.get((output_index, as_int(body.get("content_index")))),
                              text=str(body.get("delta") or ""))
        if event_type == "response.content_part.done":
            return self._content_done(output_index, body)
        if event_type == "response.function_call_arguments.delta":
            return self._more(self._by_item.get(output_index), arguments=str(body.get("delta") or ""))
        if event_type == "response.reasoning_summary_text.delta":
            thought = self._by_item.get(output_index)
            summary_index = as_int(body.get("summary_index"))
            # Summary parts are joined into one thought text, a blank line apart.
            separator = "\n\n" if thought in self._summaries and self._summaries[thought] != summary_index else ""
            if thought is not None:
                self._summaries[thought] = summary_index
            return self._more(thought, text=separator + str(body.get("delta") or ""))
        if event_type == "response.output_item.done":
            item = as_dict(body.get("item"))
            return self._item_done(output_index, item)
        if event_type == "error":
            self.failure = str(body.get("message") or "the provider reported an error")
        return []

    def _lifecycle(self, event_type: str, response: dict[str, Any]) -> list[StreamDelta]:
        self.assembler.provider_id = response.get("id") or self.assembler.provider_id
        self.assembler.model = response.get("model") or self.assembler.model
        if event_type in ("response.completed", "response.incomplete", "response.failed"):
            self.finished = True
            self.assembler.status = _STATUS_IN.get(response.get("status") or "", COMPLETED)
            self.assembler.usage = usage_in(response.get("usage"))
            if event_type == "response.failed":
                error = as_dict(response.get("error"))
                self.failure = str(error.get("message") or "the response failed")
        return []

    def _item_added(self, output_index: int, item: dict[str, Any]) -> list[StreamDelta]:
        kind = item.get("type")
        if kind == "message":
            return []  # its parts open with their content
        if kind == "function_call":
            part = Part(FUNCTION_CALL, call_id=item.get("call_id"), name=item.get("name"), origin=NAME)
        elif kind == "reasoning":
            part = Part(THOUGHT, origin=NAME)
        else:
            part = Part(str(kind), origin=NAME)
        index, out = self._open(part)
        self._by_item[output_index] = index
        return out

    def _more(self, index: int | None, *, text: str | None = None, arguments: str | None = None) -> list[StreamDelta]:
        if index is None:
            return []
        self._streamed.add(index)
        return [PartDelta(index, text=text, arguments=arguments)]

    def _content_done(self, output_index: int, body: dict[str, Any]) -> list[StreamDelta]:
        index = self._by_content.pop((output_index, as_int(body.get("content_index"))), None)
        if index is None:
            return []
        element = as_dict(body.get("part"))
        try:
            finished = _content_part(element, "output", "output")
        except ApiError:  # a content part recall cannot read: keep what the deltas said
            finished = Part(TEXT)
        part = self._parts[index]
        part.native, part.origin = finished.native, finished.origin
        out: list[StreamDelta] = []
        if index not in self._streamed and finished.text:
            out.append(PartDelta(index, text=finished.text))
        return [*out, PartStop(index)]

    def _item_done(self, output_index: int, item: dict[str, Any]) -> list[StreamDelta]:
        if item.get("type") == "message":
            open_parts = [i for (o, _), i in self._by_content.items() if o == output_index]
            self._by_content = {k: i for k, i in self._by_content.items() if k[0] != output_index}
            return [PartStop(i) for i in open_parts]
        index = self._by_item.pop(output_index, None)
        out: list[StreamDelta] = []
        if index is None:
            index, out = self._open(Part(str(item.get("type")), origin=NAME))
        finished = _parts_of_output_item(item)[0]
        part = self._parts[index]
        part.native, part.call_id, part.name = finished.native, finished.call_id or part.call_id, finished.name or part.name
        if index not in self._streamed:
            if finished.kind == FUNCTION_CALL:
                out.append(PartDelta(index, arguments=item.get("arguments") or ""))
            elif finished.text:
                out.append(PartDelta(index, text=finished.text))
        if finished.signature:
            out.append(PartDelta(index, signature=finished.signature))
        return [*out, PartStop(index)]
