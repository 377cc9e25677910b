"""OpenAI Chat Completions (`/v1/chat/completions`), both directions, and its chunks.

Chat Completions keeps no state at OpenAI nor at Chat-only servers (vLLM,
Ollama, llama.cpp), so recall always keeps it: every recorded completion is a
node, and its reply carries `interaction_id`, the id a later request names as
`previous_interaction_id` (Parallel's Chat API extension) to have the stored
conversation put before its own messages. Over an upstream that speaks Chat
Completions the provider's answer passes on byte for byte, `interaction_id`
added. Messages are converted in openai_chat_messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import ApiError, not_found
from ..model import (
    AUDIO,
    COMPLETED,
    DOCUMENT,
    FUNCTION_CALL,
    IMAGE,
    INCOMPLETE,
    MODEL,
    REQUIRES_ACTION,
    TEXT,
    THOUGHT,
    Destination,
    Interaction,
    ModelReply,
    Part,
    PartDelta,
    PartStart,
    PartStop,
    StreamDelta,
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
    as_dict,
    as_int,
    as_list,
    expect,
    optional_bool,
    optional_str,
    type_name,
)
from .openai_chat_messages import messages_of, parse_message, tool_call
from .openai_common import PROMPT_CACHE_APIS, OpenAICodec, function_tool, neutral_tool_choice
from .openai_formats import parse_arguments, stable_id

NAME = "openai-chat"
PREVIOUS = "previous_interaction_id"
INTERACTION_ID = "interaction_id"

_FINISH_STATUS = {"stop": COMPLETED, "tool_calls": COMPLETED, "function_call": COMPLETED,
                  "length": INCOMPLETE, "content_filter": INCOMPLETE}
# Where a provider that speaks this API serves it, when not at OpenAI's path (by upstream `api`).
_PATHS = {"parallel": "/v1beta/chat/completions"}


class OpenAIChat(OpenAICodec):
    name = NAME
    speaks = "openai-chat"
    same_wire = frozenset({"openai", "openai-chat", "parallel"})
    # Stateless at OpenAI and at Chat-only servers. Parallel's Chat API keeps
    # `previous_interaction_id` itself, so with state = "native" it chains there.
    stateful_on = frozenset({"parallel"})
    id_prefix = "chatcmpl-"
    media_inline = frozenset({IMAGE, AUDIO, DOCUMENT})
    media_by_url = frozenset({IMAGE})
    instruction_messages = True
    carries_settings = frozenset({"temperature", "top_p", "seed", "max_output_tokens", "stop_sequences",
                                  "reasoning_effort", "response_format", "tool_choice"})
    setting_fields = {"stop_sequences": "stop"}
    not_echoed = frozenset({"messages", "stream", "model", PREVIOUS})
    store_field = None  # `store` here is OpenAI's retention flag; recall records the turn either way

    # -- front side -------------------------------------------------------------

    def parse_create(self, body: Any) -> TurnRequest:
        expect(isinstance(body, dict), f"the request body must be a JSON object; got {type_name(body)}")
        model = optional_str(body, "model")
        expect(bool(model), "model: is required", "model")
        messages = body.get("messages")
        expect(isinstance(messages, list) and bool(messages),
               f"messages: expected a non-empty list of messages; got {type_name(messages)}", "messages")
        system: list[str] = []
        turns: list[Turn] = []
        for index, message in enumerate(messages):
            parse_message(message, f"messages[{index}]", system, turns)
        req = TurnRequest(
            front=NAME,
            model=model,
            input=turns,
            previous_id=optional_str(body, PREVIOUS),
            system="\n\n".join(system) if system else None,
            # `store` is OpenAI's own retention flag here; it does not stop recall recording.
            stream=optional_bool(body, "stream", False),
            raw=body,
        )
        _parse_tools(body, req)
        _parse_settings(body, req)
        return req

    def render(self, it: Interaction, *, include_input: bool = False) -> dict[str, Any]:
        parts = [p for turn in it.output for p in turn.parts]
        text = "".join(p.text or "" for p in parts if p.kind == TEXT)
        calls = [tool_call(p, it.id, i) for i, p in enumerate(parts) if p.kind == FUNCTION_CALL]
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None, "annotations": []}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": it.id,
            "object": "chat.completion",
            "created": int(it.created),
            "model": it.model,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(it.status, bool(calls)),
                         "logprobs": None}],
            # No `system_fingerprint`: it is a string when present (CreateChatCompletionResponse), never null.
            "usage": _usage_out(it.usage),
        }

    def reply_body(self, node: Interaction, provider_body: bytes | None, *, stored: bool) -> bytes:
        if provider_body is None:
            rendered = self.render(node)
            if stored:
                rendered[INTERACTION_ID] = node.id
            return orjson.dumps(rendered)
        return with_interaction_id(provider_body, node.id) if stored else provider_body

    def previous_not_found(self, previous_id: str) -> ApiError:
        return not_found(f"Interaction with id '{previous_id}' not found. Continue a chat with the `interaction_id` "
                         "of an earlier reply (not its `id`).", code="interaction_not_found", param=PREVIOUS)

    def stream_encoder(self, headers: Mapping[str, str], body: Any) -> StreamEncoder:
        recording = headers.get("x-recall-store", "").lower() != "false"
        return ChatStreamEncoder(body if isinstance(body, dict) else {}, recording)

    # -- upstream side ----------------------------------------------------------

    def upstream_call(self, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall:
        """A self-contained request: the stored conversation before the request's own messages."""
        if req.front == NAME:
            # Same wire API: the app's body as it came. Only the conversation
            # carries over, so its own system messages stay first.
            body = {k: v for k, v in req.raw.items() if k != PREVIOUS}
            if history:
                raw = req.raw["messages"]
                lead = next((i for i, m in enumerate(raw) if m.get("role") not in ("system", "developer")), len(raw))
                body["messages"] = [*raw[:lead], *messages_of(history), *raw[lead:]]
        else:
            body = {"model": req.model, **_settings_out(req)}
            system = [{"role": "system", "content": req.system}] if req.system else []
            body["messages"] = [*system, *messages_of([*history, *req.input])]
            if req.stream:
                body["stream_options"] = {"include_usage": True}  # so the stored turn has its token counts
        if req.stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        if history and to.cache_key and to.api in PROMPT_CACHE_APIS and not body.get("prompt_cache_key"):
            body["prompt_cache_key"] = to.cache_key  # one thread, one cache: its prefix is found again
        return UpstreamCall("POST", _PATHS.get(to.api, "/v1/chat/completions"), body)

    def parse_reply(self, body: Any) -> ModelReply:
        expect(isinstance(body, dict), "the chat completion is not a JSON object")
        choices = body.get("choices")
        expect(isinstance(choices, list) and bool(choices) and isinstance(choices[0], dict),
               "the chat completion has no choices")
        choice = choices[0]
        message = as_dict(choice.get("message"))
        parts: list[Part] = []
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            parts.append(Part(THOUGHT, text=reasoning))
        content = message.get("content")
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
        if isinstance(content, str) and content:
            parts.append(Part(TEXT, text=content))
        if isinstance(message.get("refusal"), str) and message["refusal"]:
            parts.append(Part(TEXT, text=message["refusal"]))
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                parts.append(Part(FUNCTION_CALL, call_id=call.get("id"), name=function.get("name"),
                                  arguments=parse_arguments(function.get("arguments"))))
        output = [Turn(MODEL, parts)] if parts else []
        return ModelReply(
            output=output,
            status=settle_status(output, _FINISH_STATUS.get(choice.get("finish_reason") or "stop", COMPLETED)),
            usage=usage_in(body.get("usage")),
            model=body.get("model"),
            provider_id=body.get(INTERACTION_ID) or body.get("id"),
        )

    def stream_decoder(self) -> StreamDecoder:
        return ChatStreamDecoder()


def with_interaction_id(body: bytes, interaction_id: str) -> bytes:
    """A provider's JSON object with `interaction_id` added, every other byte as it came."""
    if INTERACTION_ID.encode() in body:
        data = orjson.loads(body)
        if isinstance(data, dict) and INTERACTION_ID in data:  # the provider's own (Parallel): recall's wins
            data[INTERACTION_ID] = interaction_id
            return orjson.dumps(data)
    stripped = body.rstrip()
    if not stripped.endswith(b"}"):
        return body
    head = stripped[:-1]
    comma = b"," if head.rstrip()[-1:] != b"{" else b""
    return head + comma + b'"' + INTERACTION_ID.encode() + b'":' + orjson.dumps(interaction_id) + b"}" + body[len(stripped):]


# -- decoding ------------------------------------------------------------------


def _parse_tools(body: dict[str, Any], req: TurnRequest) -> None:
    tools = body.get("tools")
    if tools is not None:
        expect(isinstance(tools, list), f"tools: expected a list; got {type_name(tools)}", "tools")
        for i, tool in enumerate(tools):
            expect(isinstance(tool, dict), f"tools[{i}]: expected an object", "tools")
            if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
                req.tools.append(function_tool(tool["function"], f"tools[{i}].function", strict_by_default=False))
            else:
                req.untranslatable.append(f"tools[{i}] (type {tool.get('type')!r})")
    for field in ("audio", "modalities", "web_search_options", "prediction", "functions"):
        if body.get(field):
            req.untranslatable.append(field)
    if isinstance(body.get("n"), int) and body["n"] > 1:
        req.untranslatable.append("n > 1")


def _parse_settings(body: dict[str, Any], req: TurnRequest) -> None:
    for key in ("temperature", "top_p", "seed"):
        value = body.get(key)
        expect(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
               f"{key}: expected a number; got {type_name(value)}", key)
        if value is not None:
            req.generation[key] = value
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        # The contract says an integer and sets no minimum: the value (0 included) is the provider's to judge.
        expect(value is None or (isinstance(value, int) and not isinstance(value, bool)),
               f"{key}: expected an integer; got {value!r}", key)
        if value is not None:
            req.generation.setdefault("max_output_tokens", value)
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        expect(isinstance(stops, list) and all(isinstance(s, str) for s in stops),
               "stop: expected a string or a list of strings", "stop")
        req.generation["stop_sequences"] = stops
    if isinstance(body.get("reasoning_effort"), str):
        req.generation["reasoning_effort"] = body["reasoning_effort"]
    form = body.get("response_format")
    expect(form is None or isinstance(form, dict), f"response_format: expected an object; got {type_name(form)}",
           "response_format")
    if form and form.get("type") == "json_schema":
        schema = as_dict(form.get("json_schema"))
        expect(isinstance(schema.get("schema"), dict), "response_format.json_schema.schema: a schema is required",
               "response_format")
        req.generation["response_format"] = {"type": "json_schema", **{k: schema[k] for k in
                                             ("name", "schema", "strict", "description") if k in schema}}
    elif form and form.get("type") == "json_object":
        req.generation["response_format"] = {"type": "json_object"}
    choice = body.get("tool_choice")
    if choice is not None:
        req.generation["tool_choice"] = neutral_tool_choice(choice, "tool_choice")


def usage_in(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    prompt = as_dict(usage.get("prompt_tokens_details"))
    completion = as_dict(usage.get("completion_tokens_details"))
    values = {"input_tokens": usage.get("prompt_tokens"), "output_tokens": usage.get("completion_tokens"),
              "total_tokens": usage.get("total_tokens"), "cached_tokens": prompt.get("cached_tokens"),
              "thought_tokens": completion.get("reasoning_tokens")}
    return Usage(**{k: v for k, v in values.items() if isinstance(v, int)})


# -- encoding ------------------------------------------------------------------


def _settings_out(req: TurnRequest) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if req.tools:
        body["tools"] = [{"type": "function", "function": {k: v for k, v in (
            ("name", t.name), ("description", t.description), ("parameters", t.parameters),
            ("strict", t.strict or None)) if v is not None}}
            for t in req.tools]
    generation = req.generation
    for key in ("temperature", "top_p", "seed", "reasoning_effort"):
        if key in generation:
            body[key] = generation[key]
    # max_tokens, not max_completion_tokens: the one every Chat-only server (vLLM, Ollama, llama.cpp) reads.
    if "max_output_tokens" in generation:
        body["max_tokens"] = generation["max_output_tokens"]
    if "stop_sequences" in generation:
        body["stop"] = generation["stop_sequences"]
    form = generation.get("response_format")
    if form and form.get("type") == "json_schema":
        body["response_format"] = {"type": "json_schema", "json_schema": {
            k: form[k] for k in ("name", "schema", "strict", "description") if k in form}}
        body["response_format"]["json_schema"].setdefault("name", "response")
    elif form:
        body["response_format"] = {"type": "json_object"}
    choice = generation.get("tool_choice")
    if choice is not None:
        body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}} if isinstance(choice, dict) else choice
    return body


def _finish_reason(status: str, calls: bool) -> str | None:
    if status == REQUIRES_ACTION or (calls and status == COMPLETED):
        return "tool_calls"
    return {COMPLETED: "stop", INCOMPLETE: "length"}.get(status)


def _usage_out(usage: Usage) -> dict[str, Any] | None:
    if not usage.to_json():
        return None
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": usage.total_tokens if usage.total_tokens is not None else prompt + completion}
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.thought_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.thought_tokens}
    return out


# -- streaming -------------------------------------------------------------------


class ChatStreamEncoder(StreamEncoder):
    """Chat chunks (`object: chat.completion.chunk`, data-only SSE, `[DONE]` last).

    `interaction_id` rides on the first chunk and on the closing ones (finish
    reason, usage), where Parallel's SDK users look for it."""

    can_relabel = True

    def __init__(self, body: dict[str, Any], recording: bool) -> None:
        options = as_dict(body.get("stream_options"))
        self._usage = bool(options.get("include_usage"))
        self._recording = recording
        self._node: Interaction | None = None
        self._kinds: dict[int, str] = {}
        self._calls: dict[int, int] = {}  # part index -> tool call index
        self._first = True

    def _chunk(self, node: Interaction, choices: list[dict[str, Any]], *, marked: bool = False,
               usage: dict[str, Any] | None = None) -> Frame:
        chunk: dict[str, Any] = {"id": node.id, "object": "chat.completion.chunk", "created": int(node.created),
                                 "model": node.model, "choices": choices}
        if usage is not None:
            chunk["usage"] = usage
        if marked and self._recording:
            chunk[INTERACTION_ID] = node.id
        return Frame(None, frame(orjson.dumps(chunk)))

    @staticmethod
    def _choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]

    def opening(self, node: Interaction) -> list[Frame]:
        self._node = node
        return [self._chunk(node, self._choice({"role": "assistant", "content": ""}), marked=True)]

    def delta(self, delta: StreamDelta) -> list[Frame]:
        node = self._node
        assert node is not None, "opening() comes first"
        if isinstance(delta, PartStart):
            self._kinds[delta.index] = delta.part.kind
            if delta.part.kind != FUNCTION_CALL:
                return []
            call = len(self._calls)
            self._calls[delta.index] = call
            shell = {"index": call, "id": delta.part.call_id or stable_id("call_", node.id, delta.index),
                     "type": "function", "function": {"name": delta.part.name, "arguments": ""}}
            return [self._chunk(node, self._choice({"tool_calls": [shell]}))]
        if isinstance(delta, PartStop):
            return []
        kind = self._kinds.get(delta.index, TEXT)
        if kind == TEXT and delta.text:
            return [self._chunk(node, self._choice({"content": delta.text}))]
        if kind == FUNCTION_CALL and delta.arguments:
            fragment = {"index": self._calls[delta.index], "function": {"arguments": delta.arguments}}
            return [self._chunk(node, self._choice({"tool_calls": [fragment]}))]
        return []  # thoughts have no Chat Completions form

    def closing(self, node: Interaction) -> list[Frame]:
        frames = [self._chunk(node, self._choice({}, _finish_reason(node.status, bool(self._calls)) or "stop"),
                              marked=True)]
        if self._usage:
            frames.append(self._chunk(node, [], marked=True, usage=_usage_out(node.usage) or _usage_out(Usage(0, 0))))
        return [*frames, Frame(None, frame(DONE))]

    def failure(self, node: Interaction, err: ApiError) -> list[Frame]:
        error = {"error": {"message": err.message, "type": "server_error", "param": err.param, "code": err.code}}
        return [Frame(None, frame(orjson.dumps(error))), Frame(None, frame(DONE))]

    def relabel(self, event: SSEEvent, node: Interaction) -> Frame | None:
        if event.data == DONE:
            return Frame(None, event.raw)
        chunk = event.json()
        if not isinstance(chunk, dict):
            return None
        choices = as_list(chunk.get("choices"))
        closing = chunk.get("usage") is not None or any(isinstance(c, dict) and c.get("finish_reason") for c in choices)
        first, self._first = self._first, False
        if not self._recording or not (first or closing):
            return Frame(None, event.raw)  # passed on byte for byte
        return Frame(None, frame(with_interaction_id(event.data, node.id)))


class ChatStreamDecoder(StreamDecoder):
    """Reads chat chunks from a provider into neutral deltas."""

    def __init__(self) -> None:
        super().__init__()
        self._next = 0
        self._open: tuple[str, int] | None = None  # the text or thought part being extended
        self._calls: dict[int, int] = {}  # tool call index -> part index
        self._completion_id: str | None = None

    def _start(self, part: Part) -> tuple[int, list[StreamDelta]]:
        index = self._next
        self._next += 1
        return index, [PartStart(index, part)]

    def _stream(self, kind: str, text: str) -> list[StreamDelta]:
        out: list[StreamDelta] = []
        if self._open is None or self._open[0] != kind:
            out += self._close_text()
            index, started = self._start(Part(kind))
            out += started
            self._open = (kind, index)
        return [*out, PartDelta(self._open[1], text=text)]

    def _close_text(self) -> list[StreamDelta]:
        if self._open is None:
            return []
        index, self._open = self._open[1], None
        return [PartStop(index)]

    def decode(self, event: SSEEvent) -> list[StreamDelta]:
        if event.data == DONE:
            self.finished = True
            # Without an interaction_id the completion's own id names the turn; known
            # only now, since an interaction_id may still come on the last chunk.
            self.assembler.provider_id = self.assembler.provider_id or self._completion_id
            return self._close_all()
        chunk = event.json()
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            error = chunk["error"]
            self.failure = str(error.get("message") if isinstance(error, dict) else error) or "the provider failed"
            return self._close_all()
        if chunk.get(INTERACTION_ID):  # Parallel's own id is the one to chain with
            self.assembler.provider_id = chunk[INTERACTION_ID]
        self._completion_id = self._completion_id or chunk.get("id")
        self.assembler.model = chunk.get("model") or self.assembler.model
        if isinstance(chunk.get("usage"), dict):
            self.assembler.usage = usage_in(chunk["usage"])
        out: list[StreamDelta] = []
        choices = as_list(chunk.get("choices"))
        for choice in choices[:1]:
            delta = as_dict(choice.get("delta"))
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out += self._stream(THOUGHT, reasoning)
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._stream(TEXT, delta["content"])
            for call in delta.get("tool_calls") or []:
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                out += self._close_all()
                self.finished = True
                self.assembler.status = _FINISH_STATUS.get(choice["finish_reason"], COMPLETED)
        return out

    def _tool_call(self, call: Any) -> list[StreamDelta]:
        if not isinstance(call, dict):
            return []
        function = as_dict(call.get("function"))
        position = as_int(call.get("index"), len(self._calls))
        out: list[StreamDelta] = []
        if position not in self._calls:
            out += self._close_text()
            index, started = self._start(Part(FUNCTION_CALL, call_id=call.get("id"), name=function.get("name")))
            self._calls[position] = index
            out += started
        if function.get("arguments"):
            out.append(PartDelta(self._calls[position], arguments=function["arguments"]))
        return out

    def _close_all(self) -> list[StreamDelta]:
        out = self._close_text()
        out += [PartStop(index) for index in self._calls.values()]
        self._calls = {}
        return out
