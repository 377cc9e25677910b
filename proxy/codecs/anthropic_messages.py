"""Anthropic Messages (`POST /v1/messages`): stateless; recall adds chaining.

A call without `previous_interaction_id` goes to Anthropic as it is and comes
back byte for byte; recall records it as a node whose id is the message id.
A call with `previous_interaction_id` (recall's extension, as Parallel's API
names it) gets the stored conversation prepended to its `messages`, and its
reply carries `interaction_id`, the id to continue from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import ApiError
from ..model import (
    COMPACTION,
    DOCUMENT,
    FUNCTION_CALL,
    FUNCTION_RESULT,
    IMAGE,
    MODEL,
    TEXT,
    THOUGHT,
    USER,
    Destination,
    FunctionTool,
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
from ..sse import SSEEvent, frame
from .base import (
    Codec,
    Frame,
    StreamDecoder,
    StreamEncoder,
    UpstreamCall,
    as_dict,
    as_int,
    expect,
    mark_provider_only,
    optional_bool,
    optional_str,
    type_name,
)

NAME = "anthropic-messages"
DEFAULT_MAX_TOKENS = 4096
_STOP_STATUS = {"end_turn": "completed", "stop_sequence": "completed", "tool_use": "completed",
                "pause_turn": "completed", "max_tokens": "incomplete",
                "model_context_window_exceeded": "incomplete", "refusal": "failed"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}
_GENERATION = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "stop_sequences": "stop_sequences",
               "max_tokens": "max_output_tokens"}
# A thinking budget as the neutral reasoning effort (the first limit it fits under).
_MEDIUM_BUDGET = 8192
_EFFORT_OF_BUDGET = ((2048, "low"), (_MEDIUM_BUDGET, "medium"), (2**62, "high"))
_BUDGET_OF_EFFORT = {"minimal": 1024, "low": 2048, "medium": _MEDIUM_BUDGET, "high": 16384}
_USAGE_KEYS = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
               "cache_read_input_tokens": "cached_tokens"}


class AnthropicMessages(Codec):
    store_field = None  # Messages has no `store`: every turn is the app's to continue
    name = NAME
    speaks = "anthropic"
    stateless = True
    family = "anthropic"
    id_prefix = "msg_"
    auth_header = "x-api-key"
    auth_prefix = ""
    required_headers = {"anthropic-version": "2023-06-01"}
    media_inline = media_by_url = frozenset({IMAGE, DOCUMENT})
    builtin_url = "https://api.anthropic.com"
    sdk_base_url = ("ANTHROPIC_BASE_URL", "")  # anthropic
    sdk_key_env = ("ANTHROPIC_API_KEY",)
    replayed_headers = ("request-id", "anthropic-version")
    key_pattern = r"sk-ant-[A-Za-z0-9_\-]{20,}"
    carries_settings = frozenset({*_GENERATION.values(), "reasoning_effort", "response_format", "tool_choice"})
    setting_fields = {"response_format": "output_config.format"}

    # -- front side -------------------------------------------------------------

    def parse_create(self, body: Any) -> TurnRequest:
        expect(isinstance(body, dict), f"the request body must be a JSON object; got {type_name(body)}")
        model = optional_str(body, "model")
        expect(bool(model), "model: Field required", "model")
        max_tokens = body.get("max_tokens")
        expect(isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0,
               f"max_tokens: expected a positive integer; got {type_name(max_tokens)}", "max_tokens")
        messages = body.get("messages")
        expect(isinstance(messages, list), f"messages: expected a list; got {type_name(messages)}", "messages")
        req = TurnRequest(
            front=NAME, model=model, input=[_turn(m, i) for i, m in enumerate(messages)],
            previous_id=optional_str(body, "previous_interaction_id"), system=_system(body.get("system")),
            stream=optional_bool(body, "stream", False), raw=body,
        )
        for wire, neutral in _GENERATION.items():
            if body.get(wire) is not None:
                req.generation[neutral] = body[wire]
        _parse_choices(body, req)
        tools = body.get("tools")
        expect(tools is None or isinstance(tools, list), f"tools: expected a list; got {type_name(tools)}", "tools")
        for i, tool in enumerate(tools or []):
            expect(isinstance(tool, dict), f"tools.{i}: expected an object", "tools")
            if "input_schema" in tool and tool.get("type") in (None, "custom"):
                expect(isinstance(tool.get("name"), str), f"tools.{i}.name: Field required", "tools")
                strict = tool.get("strict")
                expect(strict is None or isinstance(strict, bool), f"tools.{i}.strict: Input should be a valid boolean",
                       "tools")
                req.tools.append(FunctionTool(tool["name"], tool.get("description"), tool.get("input_schema"),
                                              strict=bool(strict)))
            else:
                req.untranslatable.append(f"tools.{i} (type {tool.get('type')!r})")
        mark_provider_only(body, ("container", "mcp_servers"), req)  # Anthropic's code containers, its MCP client
        return req

    def render(self, it: Interaction, *, include_input: bool = False) -> dict[str, Any]:
        blocks = [b for turn in it.output for p in turn.parts if (b := _block(p, self)) is not None]
        return {
            "id": it.id,
            "type": "message",
            "role": "assistant",
            "model": it.model,
            "content": blocks,
            "stop_reason": _stop_reason(it.status, it.output),
            "stop_sequence": None,
            "usage": _usage(it.usage),
            "interaction_id": it.id,
        }

    def error_body(self, err: ApiError) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": err.message}}

    def stream_encoder(self, headers: Mapping[str, str], body: Any) -> StreamEncoder:
        return MessagesStreamEncoder(self)

    # -- upstream side ----------------------------------------------------------

    def upstream_call(self, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall:
        turns = [*history, *req.input]
        if req.front == NAME:
            body = {k: v for k, v in req.raw.items() if k != "previous_interaction_id"}
        else:
            body = {"model": req.model, "max_tokens": req.generation.get("max_output_tokens", DEFAULT_MAX_TOKENS)}
            if req.system:
                body["system"] = req.system
            if req.tools:
                body["tools"] = [{"name": t.name, "description": t.description or "",
                                  "input_schema": t.parameters or {"type": "object", "properties": {}},
                                  **({"strict": True} if t.strict else {})}
                                 for t in req.tools]
            for wire, neutral in _GENERATION.items():
                if wire != "max_tokens" and neutral in req.generation:
                    body[wire] = req.generation[neutral]
            choice = req.generation.get("tool_choice")
            if choice is not None:
                body["tool_choice"] = ({"type": "tool", "name": choice["name"]} if isinstance(choice, dict)
                                       else {"type": "any" if choice == "required" else choice})
            _thinking_out(req, body)
            form = req.generation.get("response_format")
            if form:
                schema = form["schema"] if form["type"] == "json_schema" else {"type": "object"}
                body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        body["messages"] = _messages(turns, self)
        if req.stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return UpstreamCall("POST", "/v1/messages", body)

    def parse_reply(self, body: Any) -> ModelReply:
        expect(isinstance(body, dict), "the message is not a JSON object")
        parts = [_part(b, "content") for b in body.get("content") or [] if isinstance(b, dict)]
        output = [Turn(MODEL, parts)] if parts else []
        stop = body.get("stop_reason")
        status = _STOP_STATUS.get(stop or "end_turn", "completed")
        return ModelReply(
            output=output, status=settle_status(output, status), usage=_parse_usage(body.get("usage")),
            model=body.get("model"), provider_id=body.get("id"),
            error="the model refused to answer" if stop == "refusal" else None,
        )

    def stream_decoder(self) -> StreamDecoder:
        return MessagesStreamDecoder()


# -- decoding ------------------------------------------------------------------


def _parse_choices(body: dict[str, Any], req: TurnRequest) -> None:
    """Tool choice, structured output and extended thinking as neutral settings."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            expect(isinstance(choice.get("name"), str), "tool_choice.name: Field required", "tool_choice")
            req.generation["tool_choice"] = {"name": choice["name"]}
        elif kind in ("auto", "any", "none"):
            req.generation["tool_choice"] = {"any": "required"}.get(kind, kind)
    output = body.get("output_config")
    form = output.get("format") if isinstance(output, dict) else None
    if isinstance(form, dict) and form.get("type") == "json_schema" and isinstance(form.get("schema"), dict):
        req.generation["response_format"] = {"type": "json_schema", "schema": form["schema"]}
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        budget = thinking.get("budget_tokens")
        budget = budget if isinstance(budget, int) else _MEDIUM_BUDGET
        req.generation["reasoning_effort"] = next(word for limit, word in _EFFORT_OF_BUDGET if budget <= limit)


def _system(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    expect(isinstance(value, list), f"system: expected a string or a list of text blocks; got {type_name(value)}", "system")
    return "".join(b.get("text", "") for b in value if isinstance(b, dict))


def _turn(message: Any, index: int) -> Turn:
    where = f"messages.{index}"
    expect(isinstance(message, dict), f"{where}: expected an object; got {type_name(message)}", "messages")
    role = message.get("role")
    expect(role in ("user", "assistant"), f"{where}.role: expected 'user' or 'assistant'; got {role!r}", "messages")
    content = message.get("content")
    if isinstance(content, str):
        parts = [Part(TEXT, text=content)]
    else:
        expect(isinstance(content, list), f"{where}.content: expected a string or a list of blocks", "messages")
        parts = [_part(block, f"{where}.content.{j}") for j, block in enumerate(content)]
    return Turn(USER if role == "user" else MODEL, parts)


def _part(block: Any, where: str) -> Part:
    expect(isinstance(block, dict), f"{where}: expected a content block object", "messages")
    kind = block.get("type")
    if kind == "text":
        expect(isinstance(block.get("text"), str), f"{where}.text: expected a string", "messages")
        return Part(TEXT, text=block["text"])
    if kind in ("image", "document"):
        source = as_dict(block.get("source"))
        neutral = IMAGE if kind == "image" else DOCUMENT
        if source.get("type") == "base64":
            return Part(neutral, data=source.get("data"), mime_type=source.get("media_type"))
        if source.get("type") == "url":
            return Part(neutral, uri=source.get("url"), mime_type=source.get("media_type"))
        if source.get("type") == "text":
            return Part(TEXT, text=source.get("data", ""))
        return Part(kind, native=block, origin=NAME)
    if kind == "tool_use":
        return Part(FUNCTION_CALL, call_id=block.get("id"), name=block.get("name"), arguments=block.get("input") or {})
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            content = "".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")
        return Part(FUNCTION_RESULT, call_id=block.get("tool_use_id"), result=content, is_error=block.get("is_error"))
    if kind == "thinking":
        return Part(THOUGHT, text=block.get("thinking"), signature=block.get("signature"), origin=NAME)
    if kind == COMPACTION:
        # Its summary is readable: another upstream is told it as text (model.readable_compactions).
        content = block.get("content")
        return Part(COMPACTION, text=content if isinstance(content, str) else None, native=block, origin=NAME)
    expect(isinstance(kind, str), f"{where}.type: Field required", "messages")
    return Part(str(kind), native=block, origin=NAME)


def _parse_usage(usage: Any) -> Usage:
    usage = usage if isinstance(usage, dict) else {}
    parsed = Usage(**{n: usage[w] for w, n in _USAGE_KEYS.items() if isinstance(usage.get(w), int)})
    if parsed.input_tokens is not None and parsed.output_tokens is not None:
        parsed.total_tokens = parsed.input_tokens + parsed.output_tokens
    return parsed


# -- encoding ------------------------------------------------------------------


def _block(part: Part, target: Codec) -> dict[str, Any] | None:
    if part.kind == TEXT:
        return {"type": "text", "text": part.text or ""}
    if part.kind in (IMAGE, DOCUMENT):
        source = ({"type": "base64", "media_type": part.mime_type, "data": part.data} if part.data is not None
                  else {"type": "url", "url": part.uri})
        return {"type": part.kind, "source": source}
    if part.kind == FUNCTION_CALL:
        return {"type": "tool_use", "id": part.call_id or "", "name": part.name, "input": part.arguments or {}}
    if part.kind == FUNCTION_RESULT:
        result = part.result if isinstance(part.result, str) else orjson.dumps(part.result).decode()
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id or "", "content": result}
        if part.is_error:
            block["is_error"] = True
        return block
    if part.kind == THOUGHT:
        if not target.carries(part) or not part.signature:
            return None  # another family's reasoning cannot be verified by Anthropic: dropped
        return {"type": "thinking", "thinking": part.text or "", "signature": part.signature}
    if part.native is not None and part.origin == NAME:
        return dict(part.native)
    return None


def _thinking_out(req: TurnRequest, body: dict[str, Any]) -> None:
    """A reasoning effort as extended thinking, where Anthropic allows it (not with a forced tool)."""
    effort = req.generation.get("reasoning_effort")
    choice = req.generation.get("tool_choice")
    if not effort or isinstance(choice, dict) or choice == "required":
        return
    budget = _BUDGET_OF_EFFORT.get(effort, _MEDIUM_BUDGET)
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    body["max_tokens"] += budget  # max_tokens counts the thinking too: the answer keeps the room it was given
    for key in ("temperature", "top_k"):  # Anthropic refuses them beside thinking
        body.pop(key, None)


def _messages(turns: list[Turn], target: Codec) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for turn in turns:
        blocks = [b for p in turn.parts if (b := _block(p, target)) is not None]
        if not blocks:
            continue
        role = "user" if turn.role == USER else "assistant"
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)  # Anthropic wants roles to alternate
        else:
            messages.append({"role": role, "content": blocks})
    return messages


def _stop_reason(status: str, output: list[Turn]) -> str | None:
    if status == "requires_action":
        return "tool_use"
    if status == "incomplete":
        return "max_tokens"
    if status == "in_progress":
        return None
    return "end_turn"


def _usage(usage: Usage) -> dict[str, int]:
    out = {"input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0}
    if usage.cached_tokens is not None:
        out["cache_read_input_tokens"] = usage.cached_tokens
    return out


# -- streaming -------------------------------------------------------------------


class MessagesStreamEncoder(StreamEncoder):
    """Anthropic's events; every one needs its `event:` line (the SDK drops others)."""

    can_relabel = True

    def __init__(self, codec: AnthropicMessages) -> None:
        self._codec = codec
        self._open: dict[int, Part] = {}

    @staticmethod
    def _frame(kind: str, payload: dict[str, Any]) -> Frame:
        return Frame(None, frame(orjson.dumps({"type": kind, **payload}), kind))

    def opening(self, node: Interaction) -> list[Frame]:
        message: dict[str, Any] = {"id": node.id, "type": "message", "role": "assistant", "model": node.model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0},
                   "interaction_id": node.id}
        return [self._frame("message_start", {"message": message})]

    def delta(self, delta: StreamDelta) -> list[Frame]:
        if isinstance(delta, PartStart):
            self._open[delta.index] = delta.part
            opened = _block(delta.part, self._codec) if delta.part.kind != THOUGHT else {"type": "thinking"}
            shell: dict[str, Any] = dict(opened or {"type": "text"})
            if shell["type"] == "text":
                shell["text"] = ""
            elif shell["type"] == "tool_use":
                shell["input"] = {}
            elif shell["type"] == "thinking":
                shell.update(thinking="", signature="")
            return [self._frame("content_block_start", {"index": delta.index, "content_block": shell})]
        if isinstance(delta, PartDelta):
            part = self._open.get(delta.index) or Part(TEXT)
            frames = []
            if delta.text is not None:
                kind = ("thinking_delta", "thinking") if part.kind == THOUGHT else ("text_delta", "text")
                frames.append(self._frame("content_block_delta", {"index": delta.index,
                                                                   "delta": {"type": kind[0], kind[1]: delta.text}}))
            if delta.arguments is not None:
                frames.append(self._frame("content_block_delta", {"index": delta.index, "delta": {
                    "type": "input_json_delta", "partial_json": delta.arguments}}))
            if delta.signature is not None and part.kind == THOUGHT:
                frames.append(self._frame("content_block_delta", {"index": delta.index, "delta": {
                    "type": "signature_delta", "signature": delta.signature}}))
            return frames
        self._open.pop(delta.index, None)
        return [self._frame("content_block_stop", {"index": delta.index})]

    def closing(self, node: Interaction) -> list[Frame]:
        return [
            self._frame("message_delta", {"delta": {"stop_reason": _stop_reason(node.status, node.output),
                                                    "stop_sequence": None},
                                          # Cumulative, so the input count known only now reaches the SDK's snapshot.
                                          "usage": _usage(node.usage)}),
            self._frame("message_stop", {}),
        ]

    def failure(self, node: Interaction, err: ApiError) -> list[Frame]:
        return [self._frame("error", {"error": {"type": "api_error", "message": err.message}})]

    def relabel(self, event: SSEEvent, node: Interaction) -> Frame | None:
        body = event.json()
        if not isinstance(body, dict) or body.get("type") != "message_start":
            return Frame(None, event.raw)
        message = as_dict(body.get("message"))
        message["id"] = message["interaction_id"] = node.id
        return Frame(None, frame(orjson.dumps(body), "message_start"))


class MessagesStreamDecoder(StreamDecoder):
    def __init__(self) -> None:
        super().__init__()
        self._compactions: dict[int, dict[str, Any]] = {}

    def _compaction_delta(self, index: int, delta: dict[str, Any]) -> list[StreamDelta]:
        """A compaction block's summary (and opaque metadata) as they stream: kept on the block
        that goes back to Anthropic verbatim, the summary also as the part's text."""
        block = self._compactions.get(index)
        for key in ("content", "encrypted_content"):
            if isinstance(delta.get(key), str) and block is not None:
                block[key] = (block.get(key) or "") + delta[key]
        return [PartDelta(index, text=delta["content"])] if isinstance(delta.get("content"), str) else []

    def decode(self, event: SSEEvent) -> list[StreamDelta]:
        body = event.json()
        if not isinstance(body, dict):
            return []
        kind = body.get("type")
        index = as_int(body.get("index"))
        if kind == "message_start":
            message = as_dict(body.get("message"))
            self.assembler.provider_id = message.get("id")
            self.assembler.model = message.get("model")
            self.assembler.usage = _parse_usage(message.get("usage"))
        elif kind == "content_block_start":
            block = dict(body.get("content_block") or {})
            part = _part({**block, "input": {}} if block.get("type") == "tool_use" else block, "content_block")
            part.text = None if part.kind in (TEXT, THOUGHT, COMPACTION) else part.text
            part.signature = None
            if part.kind == COMPACTION:
                self._compactions[index] = block  # the block as it goes back: filled by its deltas
            return [PartStart(index, part)]
        elif kind == "content_block_delta":
            delta = as_dict(body.get("delta"))
            kind = delta.get("type")
            if kind == "text_delta":
                return [PartDelta(index, text=delta.get("text", ""))]
            if kind == "thinking_delta":
                return [PartDelta(index, text=delta.get("thinking", ""))]
            if kind == "input_json_delta":
                return [PartDelta(index, arguments=delta.get("partial_json", ""))]
            if kind == "signature_delta":
                return [PartDelta(index, signature=delta.get("signature", ""))]
            if kind == "compaction_delta":
                return self._compaction_delta(index, delta)
        elif kind == "content_block_stop":
            return [PartStop(index)]
        elif kind == "message_delta":
            delta = as_dict(body.get("delta"))
            stop = delta.get("stop_reason")
            self.assembler.status = _STOP_STATUS.get(stop or "end_turn", "completed")
            usage = as_dict(body.get("usage"))
            if isinstance(usage.get("output_tokens"), int):
                self.assembler.usage.output_tokens = usage["output_tokens"]
                if self.assembler.usage.input_tokens is not None:
                    self.assembler.usage.total_tokens = self.assembler.usage.input_tokens + usage["output_tokens"]
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            error = as_dict(body.get("error"))
            self.failure = str(error.get("message") or "the provider reported an error")
        return []
