"""Gemini Interactions API (`/{ver}/interactions`), both revisions, and its stream events.

The current revision (google-genai 3.x) reads `steps`; the earlier one (1.5x,
the launch material) reads `outputs`. Replies carry both side by side, which
both SDK generations accept (specs/gemini-interactions.md section 11). Steps and
content items are converted in gemini_interactions_steps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import ApiError
from ..model import (
    FUNCTION_CALL,
    MEDIA_KINDS,
    MODEL,
    TEXT,
    THOUGHT,
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
from ..sse import DONE, SSEEvent, frame
from .base import (
    Codec,
    Frame,
    StreamDecoder,
    StreamEncoder,
    UpstreamCall,
    as_dict,
    as_int,
    expect,
    iso_time,
    mark_provider_only,
    optional_bool,
    optional_str,
    type_name,
)
from .gemini_interactions_steps import (
    NAME,
    content_item,
    flat_item,
    group_steps,
    parse_input,
    part_of_content,
    parts_of_step,
    step_of,
    steps_of,
)

# Generation settings: the name in generation_config, and the neutral one.
_GENERATION_KEYS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_output_tokens",
    "stop_sequences": "stop_sequences",
    "seed": "seed",
}
_USAGE_KEYS = {
    "total_input_tokens": "input_tokens",
    "total_output_tokens": "output_tokens",
    "total_thought_tokens": "thought_tokens",
    "total_cached_tokens": "cached_tokens",
    "total_tokens": "total_tokens",
}
# Fields that name something at Google (a cache, an agent's environment, a webhook).
_PROVIDER_ONLY = ("cached_content", "agent_config", "environment", "environment_id", "webhook_config")
_MODALITIES = ("text", "image", "audio", "video", "document")
# Request fields echoed back on the interaction object.
_ECHOED = ("system_instruction", "tools", "generation_config", "response_format", "agent", "agent_config",
           "safety_settings", "labels", "service_tier", "response_modalities", "response_mime_type")


class GeminiInteractions(Codec):
    name = NAME
    speaks = "gemini"
    stateful_on = frozenset({"gemini"})
    family = "google"
    id_prefix = "v1_"
    auth_header = "x-goog-api-key"
    auth_prefix = ""
    media_inline = media_by_url = MEDIA_KINDS
    builtin_url = "https://generativelanguage.googleapis.com"
    sdk_base_url = ("GOOGLE_GEMINI_BASE_URL", "")  # google-genai
    sdk_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")  # both set makes google-genai warn: one placeholder
    key_pattern = r"AIza[0-9A-Za-z_\-]{35}"
    carries_settings = frozenset({*_GENERATION_KEYS.values(), "reasoning_effort", "response_format", "tool_choice"})
    setting_fields = {"stop_sequences": "generation_config.stop_sequences", "response_format": "response_format",
                      "tool_choice": "generation_config.tool_choice"}

    # -- front side -------------------------------------------------------------

    def parse_create(self, body: Any) -> TurnRequest:
        expect(isinstance(body, dict), f"the request body must be a JSON object; got {type_name(body)}")
        model = optional_str(body, "model")
        agent = optional_str(body, "agent")
        expect(bool(model or agent), "model: a model (or an agent) is required", "model")
        # The provider refuses a null input as it refuses a missing one.
        expect(body.get("input") is not None or "continuation_token" in body,
               "input: is required" if "input" not in body else "input: is required; got null", "input")
        system = optional_str(body, "system_instruction")
        req = TurnRequest(
            front=NAME,
            model=model or agent,
            input=parse_input(body.get("input")),
            previous_id=optional_str(body, "previous_interaction_id"),
            system=system,
            store=optional_bool(body, "store", True),
            stream=optional_bool(body, "stream", False),
            background=optional_bool(body, "background", False),
            raw=body,
        )
        _parse_tools(body.get("tools"), req)
        config = body.get("generation_config")
        expect(config is None or isinstance(config, dict),
               f"generation_config: expected an object; got {type_name(config)}", "generation_config")
        for wire, neutral in _GENERATION_KEYS.items():
            if config and config.get(wire) is not None:
                req.generation[neutral] = config[wire]
        _parse_choices(config or {}, body, req)
        if agent:
            req.untranslatable.append(f"agent '{agent}'")
        mark_provider_only(body, _PROVIDER_ONLY, req)
        return req

    def render(self, it: Interaction, *, include_input: bool = False) -> dict[str, Any]:
        parts = [p for turn in it.output for p in turn.parts]
        out: dict[str, Any] = {
            "id": it.id,
            "object": "interaction",
            "status": it.status,
            "model": it.model,
            "created": iso_time(it.created),
            "updated": iso_time(it.updated),
            "role": "model",
            "steps": [step_of(group) for group in group_steps(parts)],
            "outputs": [item for p in parts if (item := flat_item(p)) is not None],
            "usage": {wire: value for wire, neutral in _USAGE_KEYS.items()
                      if (value := getattr(it.usage, neutral)) is not None},
        }
        if it.parent_id:
            out["previous_interaction_id"] = it.parent_id
        for key in _ECHOED:
            if key in it.request:
                out[key] = it.request[key]
        if it.error:
            out["errors"] = [{"code": "failed", "message": it.error}]
        if include_input:
            out["input"] = steps_of(it.input)
        return out

    def error_body(self, err: ApiError) -> dict[str, Any]:
        return {"error": {"code": err.code, "message": err.message}}

    def stream_encoder(self, headers: Mapping[str, str], body: Any) -> StreamEncoder:
        return InteractionsStreamEncoder(self, wants_legacy_events(headers, body))

    # -- upstream side ----------------------------------------------------------

    def stream_decoder(self) -> StreamDecoder:
        return InteractionsStreamDecoder()

    def upstream_call(self, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall:
        """A self-contained create: the whole conversation as steps, not stored upstream."""
        if req.front == NAME:
            # Same wire API: keep every field the app sent, swap the history in.
            body = {k: v for k, v in req.raw.items() if k not in ("previous_interaction_id", "background")}
        else:
            body = {"model": req.model}
            if req.system:
                body["system_instruction"] = req.system
            if req.tools:
                body["tools"] = [
                    {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
                    for t in req.tools
                ]
            config = {wire: req.generation[n] for wire, n in _GENERATION_KEYS.items() if n in req.generation}
            if "reasoning_effort" in req.generation:
                config["thinking_level"] = req.generation["reasoning_effort"]
            if "tool_choice" in req.generation:
                config["tool_choice"] = _tool_choice_out(req.generation["tool_choice"])
            if config:
                body["generation_config"] = config
            form = req.generation.get("response_format")
            if form and form["type"] == "json_schema":
                body["response_format"] = form["schema"]
            elif form:
                body["response_mime_type"] = "application/json"
        if req.stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        body["input"] = steps_of([*history, *req.input], target=self)
        body["store"] = False
        return UpstreamCall("POST", "/v1beta/interactions", body)

    def parse_reply(self, body: Any) -> ModelReply:
        expect(isinstance(body, dict), "the interaction is not a JSON object")
        parts: list[Part] = []
        if isinstance(body.get("steps"), list):
            for step in body["steps"]:
                if isinstance(step, dict) and step.get("type") != "user_input":
                    parts.extend(parts_of_step(step))
        elif isinstance(body.get("outputs"), list):
            parts = [part_of_content(c) for c in body["outputs"] if isinstance(c, dict)]
        usage = as_dict(body.get("usage"))
        status = body.get("status") or "completed"
        output = [Turn(MODEL, parts)] if parts else []
        errors = body.get("errors")
        return ModelReply(
            output=output,
            status=settle_status(output, status),
            usage=Usage(**{n: usage[w] for w, n in _USAGE_KEYS.items() if isinstance(usage.get(w), int)}),
            model=body.get("model"),
            provider_id=body.get("id"),
            error=errors[0].get("message") if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None,
        )



# -- decoding ------------------------------------------------------------------


def _parse_tools(tools: Any, req: TurnRequest) -> None:
    if tools is None:
        return
    expect(isinstance(tools, list), f"tools: expected a list; got {type_name(tools)}", "tools")
    for i, tool in enumerate(tools):
        expect(isinstance(tool, dict), f"tools[{i}]: expected an object", "tools")
        expect(isinstance(tool.get("type"), str), f"tools[{i}].type: a tool needs a type", "tools")
        if tool.get("type") == "function":
            expect(isinstance(tool.get("name"), str), f"tools[{i}].name: a function needs a name", "tools")
            req.tools.append(FunctionTool(tool["name"], tool.get("description"), tool.get("parameters")))
        else:
            req.untranslatable.append(f"tools[{i}] (type {tool.get('type')!r})")


def _parse_choices(config: dict[str, Any], body: dict[str, Any], req: TurnRequest) -> None:
    """Thinking level, tool choice, structured output and output modalities, as neutral settings
    (or, where they have no neutral form, as what another API cannot carry)."""
    level = config.get("thinking_level")
    if isinstance(level, str):
        req.generation["reasoning_effort"] = "high" if level == "xhigh" else level
    choice = config.get("tool_choice")
    if choice is not None:
        neutral = _tool_choice_in(choice)
        if neutral is None:
            req.untranslatable.append(f"generation_config.tool_choice {choice!r}")
        else:
            req.generation["tool_choice"] = neutral
    form = body.get("response_format")
    forms = form if isinstance(form, list) else [form] if form is not None else []
    for item in forms:
        expect(isinstance(item, dict), f"response_format: expected an object; got {type_name(item)}", "response_format")
        if item.get("type") in ("audio", "image", "video"):
            req.untranslatable.append(f"response_format (type {item['type']!r})")
        elif item.get("type") != "text":  # a JSON schema object
            req.generation["response_format"] = {"type": "json_schema", "schema": item}
        elif item.get("mime_type") == "application/json":
            schema = item.get("schema")
            req.generation["response_format"] = (
                {"type": "json_schema", "schema": schema} if isinstance(schema, dict) else {"type": "json_object"})
    if body.get("response_mime_type") == "application/json" and "response_format" not in req.generation:
        req.generation["response_format"] = {"type": "json_object"}
    modalities = body.get("response_modalities")
    # Google refuses a modality it does not know; the interaction repeats the list, so it must be one
    # (google.genai interactions ResponseModality).
    expect(modalities is None or (isinstance(modalities, list) and all(m in _MODALITIES for m in modalities)),
           f"response_modalities: expected a list of {', '.join(_MODALITIES)}; got {modalities!r}",
           "response_modalities")
    if isinstance(modalities, list) and any(str(m).lower() != "text" for m in modalities):
        req.untranslatable.append(f"response_modalities {modalities!r}")


def _tool_choice_in(choice: Any) -> Any:
    """A tool_choice as the neutral form, or None when it has none ('validated', several allowed tools)."""
    words = {"auto": "auto", "any": "required", "none": "none"}
    if isinstance(choice, str):
        return words.get(choice)
    allowed = choice.get("allowed_tools") if isinstance(choice, dict) else None
    if isinstance(allowed, dict) and allowed.get("mode") == "any" and len(allowed.get("tools") or []) == 1:
        return {"name": allowed["tools"][0]}
    return None


def _tool_choice_out(choice: Any) -> Any:
    if isinstance(choice, dict):
        return {"allowed_tools": {"mode": "any", "tools": [choice["name"]]}}
    return "any" if choice == "required" else choice


# -- streaming -------------------------------------------------------------------

_SDK_VERSION = re.compile(r"google-genai-sdk/(\d+)\.")
_CURRENT = {"created": "interaction.created", "completed": "interaction.completed",
            "start": "step.start", "delta": "step.delta", "stop": "step.stop"}
_LEGACY = {"created": "interaction.start", "completed": "interaction.complete",
           "start": "content.start", "delta": "content.delta", "stop": "content.stop"}
# Events whose payload names the interaction, so a relayed one needs recall's id.
_ID_EVENTS = frozenset({"interaction.created", "interaction.completed", "interaction.start",
                        "interaction.complete", "interaction.status_update"})


def wants_legacy_events(headers: Mapping[str, str], body: Any) -> bool:
    """Whether the app reads the earlier revision's `content.*` stream events.

    The SDK's version header decides; without one, the earlier revision's
    `{role, content}` input turns give it away.
    """
    for name in ("x-goog-api-client", "user-agent"):
        found = _SDK_VERSION.search(headers.get(name, ""))
        if found:
            return int(found.group(1)) < 2
    raw_input = body.get("input") if isinstance(body, dict) else None
    return isinstance(raw_input, list) and any(isinstance(i, dict) and "role" in i for i in raw_input)


class InteractionsStreamEncoder(StreamEncoder):
    def __init__(self, codec: GeminiInteractions, legacy: bool) -> None:
        self._codec = codec
        self._legacy = legacy
        # Google streams the current revision; an app on the earlier one needs re-encoding.
        self.can_relabel = not legacy
        # The earlier revision's completion event carries the whole interaction.
        self.renders_output_at_close = legacy
        self._names = _LEGACY if legacy else _CURRENT
        self._count = 0
        self._open: dict[int, Part] = {}
        self._arguments: dict[int, list[str]] = {}

    def _frame(self, event_type: str, payload: dict[str, Any]) -> Frame:
        self._count += 1
        event_id = f"e{self._count}"
        body = {"event_type": event_type, "event_id": event_id, **payload}
        return Frame(event_id, frame(orjson.dumps(body), event_type))

    def _summary(self, node: Interaction, *, final: bool) -> dict[str, Any]:
        if final and self._legacy:
            return self._codec.render(node)
        summary = {"id": node.id, "status": node.status, "object": "interaction", "model": node.model,
                   "created": iso_time(node.created)}
        if final:
            summary["updated"] = iso_time(node.updated)
            summary["usage"] = self._codec.render(node)["usage"]
        return summary

    def opening(self, node: Interaction) -> list[Frame]:
        return [
            self._frame(self._names["created"], {"interaction": self._summary(node, final=False)}),
            self._frame("interaction.status_update", {"interaction_id": node.id, "status": node.status}),
        ]

    def delta(self, delta: StreamDelta) -> list[Frame]:
        if isinstance(delta, PartStart):
            self._open[delta.index] = delta.part
            shell = _stream_shell(delta.part, self._legacy)
            key = "content" if self._legacy else "step"
            return [self._frame(self._names["start"], {"index": delta.index, key: shell})]
        if isinstance(delta, PartDelta):
            part = self._open.get(delta.index) or Part(TEXT)
            if self._legacy and part.kind == FUNCTION_CALL:
                # 1.5x sends a call's arguments whole, as an object, at its end.
                if delta.arguments:
                    self._arguments.setdefault(delta.index, []).append(delta.arguments)
                return []
            return [self._frame(self._names["delta"], {"index": delta.index, "delta": d})
                    for d in _wire_deltas(part, delta)]
        frames = []
        closed = self._open.pop(delta.index, None)
        if self._legacy and closed is not None and closed.kind == FUNCTION_CALL:
            raw = "".join(self._arguments.pop(delta.index, []))
            call = {"type": FUNCTION_CALL, "id": closed.call_id or "", "name": closed.name,
                    "arguments": orjson.loads(raw) if raw else {}}
            frames.append(self._frame(self._names["delta"], {"index": delta.index, "delta": call}))
        frames.append(self._frame(self._names["stop"], {"index": delta.index}))
        return frames

    def closing(self, node: Interaction) -> list[Frame]:
        done = self._frame(self._names["completed"], {"interaction": self._summary(node, final=True)})
        return [done, Frame(None, frame(b"[DONE]", "done"))]

    def failure(self, node: Interaction, err: ApiError) -> list[Frame]:
        error = self._frame("error", {"error": {"code": err.code, "message": err.message}})
        return [error, Frame(None, frame(b"[DONE]", "done"))]

    def relabel(self, event: SSEEvent, node: Interaction) -> Frame | None:
        if event.data == DONE:
            return Frame(None, event.raw)
        body = event.json()
        if not isinstance(body, dict):
            return None
        event_type = body.get("event_type")
        if event_type not in _ID_EVENTS:
            return Frame(body.get("event_id"), event.raw)  # deltas pass through untouched
        if isinstance(body.get("interaction"), dict):
            body["interaction"]["id"] = node.id
        if "interaction_id" in body:
            body["interaction_id"] = node.id
        return Frame(body.get("event_id"), frame(orjson.dumps(body), event_type))


def _stream_shell(part: Part, legacy: bool) -> dict[str, Any]:
    if part.kind == FUNCTION_CALL:
        return {"type": FUNCTION_CALL, "id": part.call_id or "", "name": part.name, "arguments": {}}
    if part.kind == THOUGHT:
        return {"type": THOUGHT}
    if legacy:
        return content_item(part) if part.kind != TEXT else {"type": TEXT, "text": ""}
    return {"type": "model_output"}


def _wire_deltas(part: Part, delta: PartDelta) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if delta.text is not None:
        if part.kind == THOUGHT:
            out.append({"type": "thought_summary", "content": {"type": TEXT, "text": delta.text}})
        else:
            out.append({"type": TEXT, "text": delta.text})
    if delta.signature is not None:
        out.append({"type": "thought_signature", "signature": delta.signature})
    if delta.arguments is not None:
        out.append({"type": "arguments_delta", "arguments": delta.arguments})
    if delta.data is not None:
        out.append({"type": part.kind, "data": delta.data, "mime_type": part.mime_type})
    return out


class InteractionsStreamDecoder(StreamDecoder):
    """Reads either revision's events from a provider."""

    def __init__(self) -> None:
        super().__init__()
        # Provider step index -> our part index; a model_output step may hold several parts.
        self._current: dict[int, int] = {}
        self._next = 0

    def _open(self, step_index: int, part: Part) -> list[StreamDelta]:
        self._close(step_index)
        index = self._next
        self._next += 1
        self._current[step_index] = index
        return [PartStart(index, part)]

    def _close(self, step_index: int) -> list[StreamDelta]:
        index = self._current.pop(step_index, None)
        return [PartStop(index)] if index is not None else []

    def decode(self, event: SSEEvent) -> list[StreamDelta]:
        body = event.json()
        if not isinstance(body, dict):
            return []
        kind = body.get("event_type")
        step = as_int(body.get("index"))
        if kind in ("interaction.created", "interaction.start", "interaction.completed", "interaction.complete"):
            summary = as_dict(body.get("interaction"))
            self.assembler.provider_id = summary.get("id") or self.assembler.provider_id
            self.assembler.model = summary.get("model") or self.assembler.model
            if kind in ("interaction.completed", "interaction.complete"):
                self.finished = True
                self.assembler.status = summary.get("status") or self.assembler.status
                usage = as_dict(summary.get("usage"))
                self.assembler.usage = Usage(**{n: usage[w] for w, n in _USAGE_KEYS.items() if isinstance(usage.get(w), int)})
            return []
        if kind in ("step.start", "content.start"):
            shell = body.get("step") or body.get("content") or {}
            if shell.get("type") in (FUNCTION_CALL, THOUGHT):
                return self._open(step, part_of_content({**shell, "arguments": {}}))
            return []  # a content step: its parts open with their first delta
        if kind in ("step.delta", "content.delta"):
            return self._delta(step, body.get("delta") or {})
        if kind in ("step.stop", "content.stop"):
            return self._close(step)
        if kind == "error":
            error = as_dict(body.get("error"))
            self.failure = str(error.get("message") or "the provider reported an error")
        return []

    def _delta(self, step: int, delta: dict[str, Any]) -> list[StreamDelta]:
        kind = delta.get("type")
        out: list[StreamDelta] = []
        index = self._current.get(step)
        if kind == TEXT:
            if index is None:
                out += self._open(step, Part(TEXT))
            out.append(PartDelta(self._current[step], text=delta.get("text") or ""))
        elif kind == "thought_summary":
            content = as_dict(delta.get("content"))
            if index is None:
                out += self._open(step, Part(THOUGHT, origin=NAME))
            out.append(PartDelta(self._current[step], text=content.get("text") or ""))
        elif kind == "thought_signature":
            if index is None:
                out += self._open(step, Part(THOUGHT, origin=NAME))
            out.append(PartDelta(self._current[step], signature=delta.get("signature") or ""))
        elif kind == "arguments_delta" and index is not None:
            out.append(PartDelta(index, arguments=delta.get("arguments") or ""))
        elif kind == FUNCTION_CALL:  # the earlier revision: the whole call at once
            out += self._open(step, part_of_content({**delta, "arguments": {}}))
            out.append(PartDelta(self._current[step], arguments=orjson.dumps(delta.get("arguments") or {}).decode()))
        elif kind in MEDIA_KINDS:
            out += self._open(step, Part(kind, mime_type=delta.get("mime_type"), uri=delta.get("uri")))
            if delta.get("data"):
                out.append(PartDelta(self._current[step], data=delta["data"]))
        return out
