"""OpenAI Responses API (`/v1/responses`), both directions.

As an upstream in emulate mode it receives the whole conversation as `input`
items with `store: false`, the way zero-data-retention clients call it: the
reasoning items come back with `encrypted_content` (asked for with `include`)
and are sent again on the next turn, carried as neutral thoughts whose
signature is that encrypted content.

Parallel serves the same API (docs.parallel.ai/responses-api; docs/PARALLEL_RESPONSES.md)
for its one model, `parallel`: `previous_response_id` kept by Parallel whatever `store`
says, and an `input` of text-only `{role, content}` messages. A conversation recall keeps
for a Parallel upstream goes there as those messages. Under a Parallel upstream, a
Responses request naming another model (a Task API processor: `lite`, `core`…) is
translated onto the Task API as before Parallel had a Responses API.

Its items are converted in openai_responses_items, its stream events in
openai_responses_stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import ApiError, bad_request, not_found
from ..model import (
    COMPLETED,
    DOCUMENT,
    FAILED,
    IMAGE,
    INCOMPLETE,
    MODEL,
    REQUIRES_ACTION,
    THOUGHT,
    Destination,
    Interaction,
    ModelReply,
    Turn,
    TurnRequest,
    Usage,
    settle_status,
)
from ..seal import is_sealed
from .base import (
    StreamDecoder,
    StreamEncoder,
    UpstreamCall,
    as_list,
    expect,
    mark_provider_only,
    optional_bool,
    optional_str,
    type_name,
)
from .openai_common import OpenAICodec, function_tool, neutral_tool_choice
from .openai_formats import stable_id
from .openai_responses_chain import continue_chain
from .openai_responses_compact import compact_call, compacted_reply, parse_compact, render_compacted
from .openai_responses_items import (
    NAME,
    STATUS_IN,
    conversation_id,
    items_of,
    output_item,
    output_plan,
    parts_of_output_item,
    text_messages,
    turns_of_items,
    usage_in,
    usage_out,
)
from .openai_responses_stream import ResponsesStreamDecoder, ResponsesStreamEncoder

ENCRYPTED_REASONING = "reasoning.encrypted_content"
# Fields of a create that never go to a provider that keeps no state.
_STATEFUL_FIELDS = ("previous_response_id", "background", "conversation")
# The upstream `api` of Parallel, whose Responses API takes text-only messages as input.
PARALLEL_API = "parallel"


class OpenAIResponses(OpenAICodec):
    name = NAME
    speaks = "openai"
    same_wire = frozenset({"openai", PARALLEL_API})
    stateful_on = frozenset({"openai", PARALLEL_API})
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
    truncation_hint = 'with truncation: "auto", recall drops middle turns of the conversation to fit'

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
        # A prompt template stored at OpenAI; OpenAI's server-side compaction (another upstream is
        # compacted with POST /responses/compact, which recall emulates there).
        mark_provider_only(body, ("prompt", "context_management"), req)
        return req

    def truncates(self, req: TurnRequest) -> bool:
        return req.raw.get("truncation") == "auto"

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
        return [output_item(kind, group, it.id, index, self)
                for index, (kind, group) in enumerate(output_plan(parts))]

    def conversation_items(self, node: Interaction) -> list[dict[str, Any]]:
        return [*self.input_items(node), *self.output_items(node)]

    def turns_of_conversation(self, items: Any, where: str = "conversation") -> list[Turn]:
        return turns_of_items(items, where)

    def continuing(self, req: TurnRequest, chain: list[Interaction]) -> TurnRequest:
        return continue_chain(self, req, chain)

    # -- compaction (openai_responses_compact) -------------------------------------

    def parse_compact(self, body: Any) -> TurnRequest:
        return parse_compact(self.parse_create(body))

    def compacts_on(self, upstream_api: str) -> bool:
        """Whether the provider serves `/responses/compact` itself: OpenAI does; Parallel's
        Responses API documents no compaction, so recall summarises there as elsewhere."""
        return upstream_api == self.speaks

    def compact_call(self, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall:
        return compact_call(self, req, history, to)

    def compacted_reply(self, body: Any) -> ModelReply:
        return compacted_reply(body)

    def render_compacted(self, node: Interaction) -> dict[str, Any]:
        return render_compacted(self, node)

    def input_items(self, it: Interaction) -> list[dict[str, Any]]:
        """The node's own input as the items `input_items` lists, each with an id."""
        items = []
        for index, item in enumerate(items_of(it.input, self)):
            if "role" in item:  # every message in its full shape, as OpenAI lists them
                content = item.get("content")
                if isinstance(content, str):
                    content = [{"type": "output_text" if item["role"] == "assistant" else "input_text", "text": content}]
                item = {**item, "type": "message", "status": "completed", "content": content}
            prefix = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}.get(
                item.get("type", ""), "item_")
            items.append({"id": stable_id(prefix, it.id, "input", index), **item})
        return items

    # -- upstream side ----------------------------------------------------------

    def same_wire_on(self, upstream_api: str, model: str | None) -> bool:
        if upstream_api == PARALLEL_API:
            return _is_parallel_model(model)
        return super().same_wire_on(upstream_api, model)

    def keeps_state_on(self, upstream_api: str, body: bytes) -> bool:
        if upstream_api == PARALLEL_API:
            try:
                named = orjson.loads(body).get("model")
            except (orjson.JSONDecodeError, AttributeError):
                return False  # recall reads it, and answers what it cannot read
            return _is_parallel_model(named)
        return super().keeps_state_on(upstream_api, body)

    def upstream_call(self, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall:
        """A self-contained create: the whole conversation as input items, not stored upstream."""
        if req.front == NAME:
            # Same wire API: every field the app sent goes on; its input follows the history as it came.
            body = {k: v for k, v in req.raw.items() if k not in _STATEFUL_FIELDS}
            raw_input = req.raw.get("input")
            new_items = ([{"role": "user", "content": raw_input}] if isinstance(raw_input, str)
                         else list(raw_input or []))
            if any(isinstance(item, dict) and is_sealed(item.get("encrypted_content")) for item in new_items):
                # recall's own compaction means nothing to OpenAI: its summary goes instead.
                new_items = items_of(req.input, self)
        else:
            body = {"model": req.model, **_settings_out(req)}
            new_items = items_of(req.input, self)
        body["store"] = False
        if history and to.cache_key and not body.get("prompt_cache_key"):
            body["prompt_cache_key"] = to.cache_key  # one thread, one cache: its prefix is found again
        if req.stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        if to.api == PARALLEL_API:
            # Parallel reads messages' text only and refuses other parts; it keeps every
            # response whatever `store` says, and ignores `include`.
            body["input"] = [*text_messages(history), *new_items]
            return UpstreamCall("POST", "/v1/responses", body)
        body["input"] = [*items_of(history, self), *new_items]
        if _keeps_reasoning(req, history, self):
            include = as_list(body.get("include"))
            if ENCRYPTED_REASONING not in include:
                body["include"] = [*include, ENCRYPTED_REASONING]
        return UpstreamCall("POST", "/v1/responses", body)

    def parse_reply(self, body: Any) -> ModelReply:
        expect(isinstance(body, dict), "the response is not a JSON object")
        output = body.get("output")
        expect(isinstance(output, list), "the response has no output list")
        parts = [p for item in output if isinstance(item, dict) for p in parts_of_output_item(item)]
        turns = [Turn(MODEL, parts)] if parts else []
        error = body.get("error")
        return ModelReply(
            output=turns,
            status=settle_status(turns, STATUS_IN.get(body.get("status") or COMPLETED, COMPLETED)),
            usage=usage_in(body.get("usage")),
            model=body.get("model"),
            provider_id=body.get("id"),
            error=str(error.get("message")) if isinstance(error, dict) else None,
        )

    def stream_decoder(self) -> StreamDecoder:
        return ResponsesStreamDecoder()


# Neutral statuses a Response has no word for.
_STATUS_OUT = {REQUIRES_ACTION: COMPLETED}


# -- decoding ------------------------------------------------------------------


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


def _is_parallel_model(model: object) -> bool:
    """Parallel's Responses API has one model, `parallel`, matched case-insensitively."""
    return isinstance(model, str) and model.lower() == PARALLEL_API


def _keeps_reasoning(req: TurnRequest, history: list[Turn], target: OpenAIResponses) -> bool:
    """Whether to ask for encrypted reasoning: the model reasons (the request says so, or the
    history holds its reasoning). Non-reasoning models refuse the `include` (400)."""
    asked = "reasoning" in req.raw if req.front == NAME else "reasoning_effort" in req.generation
    if asked:
        return True
    return any(p.kind == THOUGHT and p.signature and target.carries(p)
               for turn in history for p in turn.parts)


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
    return usage_out(usage) if usage.to_json() else None
