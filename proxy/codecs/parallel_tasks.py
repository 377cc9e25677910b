"""Parallel Task API (`/v1/tasks/runs…`): asynchronous research runs.

As a front API: a create is a run that goes on without the app (proxy/endpoints/tasks.py
runs it); its interaction id chains it to earlier turns. As an upstream API:
a create answers a run still going, which `pending_result` awaits through the
result long-poll. Parallel keeps chains itself, except for zero-data-retention
accounts: for them recall folds the earlier turns into the next run's input
(`fold_context`, the rule the README states).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from ..errors import ApiError, bad_request
from ..ids import mint_id
from ..model import (
    CANCELLED,
    COMPLETED,
    FAILED,
    FUNCTION_CALL,
    FUNCTION_RESULT,
    IN_PROGRESS,
    INCOMPLETE,
    MEDIA_KINDS,
    MODEL,
    REQUIRES_ACTION,
    TEXT,
    USER,
    Destination,
    Interaction,
    ModelReply,
    Part,
    StreamDelta,
    Turn,
    TurnRequest,
)
from ..sse import frame
from .base import (
    Codec,
    Frame,
    StreamEncoder,
    UpstreamCall,
    as_dict,
    expect,
    iso_time,
    optional_bool,
    optional_str,
    type_name,
)

NAME = "parallel-tasks"
# Parallel answers a task-run create 202 Accepted (the run is queued).
ACCEPTED = 202
# `…/result` holds at most this long when the app names no timeout (Parallel's default).
_DEFAULT_HOLD_S = 600.0

# Run statuses on the wire, from the neutral ones and back.
_WIRE_STATUS = {IN_PROGRESS: "running", COMPLETED: "completed", INCOMPLETE: "completed", FAILED: "failed",
                CANCELLED: "cancelled", REQUIRES_ACTION: "action_required"}
_NEUTRAL_STATUS = {"queued": IN_PROGRESS, "running": IN_PROGRESS, "cancelling": IN_PROGRESS,
                   "action_required": REQUIRES_ACTION, "completed": COMPLETED, "failed": FAILED,
                   "cancelled": CANCELLED}
_ACTIVE = frozenset({"queued", "running", "cancelling"})

# Create fields recall models itself; every other field is the provider's alone
# (passed on to Parallel, refused by name for any other upstream).
_MODELLED = frozenset({"input", "processor", "task_spec", "previous_interaction_id", "metadata", "enable_events"})
_PROVIDER_FIELDS: dict[str, type] = {"source_policy": dict, "mcp_servers": list, "memory_scope_key": str,
                                     "advanced_settings": dict, "webhook": dict}

# The folding rule (README, "Parallel"): earlier turns as a context block.
CONTEXT_HEADER = "Context from earlier turns of this conversation (oldest first):"
REQUEST_HEADER = "Current request:"
INSTRUCTIONS_HEADER = "Instructions:"
#: The key an object input gets for the context block; its input schema gets the same property.
CONTEXT_FIELD = "earlier_turns"
_CUT = " […]"
_ROLE_LABEL = {USER: "User", MODEL: "Assistant"}


@dataclass(frozen=True, slots=True)
class Schema:
    """An input or output schema in any of the shapes the SDK sends (spec 2.3)."""

    kind: str  # text | json | auto
    description: str | None = None
    json_schema: dict[str, Any] | None = None


def parse_schema(value: Any, where: str, *, allow_auto: bool) -> Schema:
    """A bare string is text with that description; an object with no `type` is
    json when it has `json_schema`, else text."""
    if isinstance(value, str):
        return Schema("text", value)
    expect(isinstance(value, dict), f"{where}: expected a schema object or a string; got {type_name(value)}", "task_spec")
    kind = value.get("type")
    if kind is None:
        kind = "json" if "json_schema" in value else "text"
    kinds = ("text", "json", "auto") if allow_auto else ("text", "json")
    expect(kind in kinds, f"{where}.type: expected one of {', '.join(kinds)}; got {kind!r}", "task_spec")
    description = value.get("description")
    expect(description is None or isinstance(description, str),
           f"{where}.description: expected a string; got {type_name(description)}", "task_spec")
    json_schema = value.get("json_schema")
    if kind == "json":
        expect(isinstance(json_schema, dict),
               f"{where}.json_schema: a json schema needs `json_schema`, a JSON Schema object; got {type_name(json_schema)}",
               "task_spec")
    return Schema(kind, description, json_schema if kind == "json" else None)


def output_schema_of(request: Mapping[str, Any]) -> Schema:
    """The output schema a stored run asked for (auto when it named none)."""
    spec = request.get("task_spec")
    if not isinstance(spec, dict) or "output_schema" not in spec:
        return Schema("auto")
    return parse_schema(spec["output_schema"], "task_spec.output_schema", allow_auto=True)


class ParallelTasks(Codec):
    name = NAME
    speaks = "parallel"
    stateful_on = frozenset({"parallel"})
    family = "parallel"
    id_prefix = "itr_"
    run_id_prefix = "trun_"
    asks_whole = True
    auth_header = "x-api-key"
    auth_prefix = ""
    reads_key_header_only = True
    not_ready_statuses = frozenset({408})
    # A run's output arrives whole: recall asks, awaits the result, and streams the finished turn.
    reads_streams = False
    carries_settings = frozenset({"response_format"})
    builtin_url = "https://api.parallel.ai"
    sdk_base_url = ("PARALLEL_BASE_URL", "")  # parallel-web
    sdk_key_env = ("PARALLEL_API_KEY",)
    setting_fields = {"response_format": "task_spec.output_schema"}

    # -- front side -------------------------------------------------------------

    def parse_create(self, body: Any) -> TurnRequest:
        expect(isinstance(body, dict), f"the request body must be a JSON object; got {type_name(body)}")
        expect("input" in body, "input: is required; give the task as a string or a JSON object", "input")
        raw_input = body["input"]
        expect(isinstance(raw_input, (str, dict)),
               f"input: expected a string or a JSON object; got {type_name(raw_input)}", "input")
        expect(bool(raw_input), "input: must not be empty", "input")
        processor = body.get("processor")
        expect(isinstance(processor, str) and bool(processor),
               f"processor: is required, a string such as \"lite\", \"core\" or \"ultra\"; got {type_name(processor)}",
               "processor")
        output, input_schema = _parse_task_spec(body.get("task_spec"))
        _check_metadata(body.get("metadata"))
        optional_bool(body, "enable_events", False)
        for key, kind in _PROVIDER_FIELDS.items():
            value = body.get(key)
            expect(value is None or isinstance(value, kind),
                   f"{key}: expected {type_name(kind())}; got {type_name(value)}", key)
        return TurnRequest(
            front=NAME,
            model=processor,
            input=[Turn(USER, [_input_part(raw_input)])],
            previous_id=optional_str(body, "previous_interaction_id") or None,
            system=_instruction(output, input_schema),
            background=True,
            raw=body,
            untranslatable=[key for key, value in body.items() if key not in _MODELLED and value is not None],
            # A json output schema binds other APIs too (their structured output), beside the instruction.
            generation={"response_format": {"type": "json_schema", "name": "task_output", "schema": output.json_schema}}
            if output.kind == "json" else {},
        )

    def render(self, it: Interaction, *, include_input: bool = False, status: str | None = None) -> dict[str, Any]:
        """The TaskRun object; `status` overrides the node's (a create answers `queued`)."""
        word = status or _WIRE_STATUS.get(it.status, "failed")
        run: dict[str, Any] = {
            "run_id": it.run_id or it.id,
            "interaction_id": it.id,
            "status": word,
            "is_active": word in _ACTIVE,
            "processor": it.model,
            "created_at": iso_time(it.created),
            "modified_at": iso_time(it.updated),
            "metadata": it.request.get("metadata"),
            "warnings": None,
            "error": None,
            "taskgroup_id": None,
        }
        if it.error and word in ("failed", "cancelled"):
            run["error"] = {"ref_id": f"ref_{run['run_id']}", "message": it.error}
        return run

    def created_answer(self, node: Interaction) -> tuple[int, dict[str, Any]]:
        # Parallel answers a task-run create 202 Accepted, the run `queued`.
        return ACCEPTED, self.render(node, status="queued")

    def finish_output(self, node: Interaction) -> str | None:
        return shape_output(node) if node.status in (COMPLETED, INCOMPLETE) else None

    def result_hold_s(self, query: Mapping[str, str], headers: Mapping[str, str]) -> float:
        """How long `…/result` holds: min(`timeout` or 600 s, the SDK's read timeout less a
        margin), so that the app gets a 408 before its own read timeout fires."""
        hold = _DEFAULT_HOLD_S
        raw = query.get("timeout")
        if raw is not None:
            try:
                hold = float(raw)
            except ValueError:
                raise bad_request(f"timeout: expected a number of seconds; got {raw!r}", param="timeout") from None
            if not math.isfinite(hold) or hold < 0:
                raise bad_request(f"timeout: expected 0 or more seconds; got {raw!r}", param="timeout")
        try:
            read_s = float(headers.get("x-stainless-read-timeout", ""))
        except ValueError:
            read_s = math.nan
        if math.isfinite(read_s) and read_s > 0:
            hold = min(hold, read_s - min(5.0, read_s / 2))
        return hold

    def run_state_of(self, event: Any) -> ModelReply | None:
        """The run as a relayed `task_run.state` event reports it, or None for any other event."""
        if not isinstance(event, dict) or event.get("type") != "task_run.state" or not isinstance(event.get("run"), dict):
            return None
        try:
            return self.parse_reply({"run": event["run"], "output": event.get("output")})
        except ApiError:
            return None

    def render_result(self, it: Interaction) -> dict[str, Any]:
        return {"run": self.render(it), "output": task_output(it)}

    def render_input(self, it: Interaction) -> dict[str, Any]:
        """The RunInput: the create body as the app sent it."""
        return {"input": _original_input(it), "processor": it.model,
                **{k: v for k, v in it.request.items() if k != "processor"}}

    def error_body(self, err: ApiError) -> dict[str, Any]:
        detail: dict[str, Any] = {"code": err.code}
        if err.param:
            detail["param"] = err.param
        return {"type": "error", "error": {"ref_id": mint_id("ref_"), "message": err.message, "detail": detail}}

    def stream_encoder(self, headers: Mapping[str, str], body: Any) -> StreamEncoder:
        return TaskEventsEncoder(self)

    # -- upstream side ----------------------------------------------------------

    def upstream_call(self, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall:
        """A create for a provider that keeps nothing: earlier turns folded into the input."""
        if req.tools:
            raise bad_request("tools cannot be carried to an upstream that speaks parallel: the Task API has no"
                              " function tools; remove them or use another upstream", param="tools")
        budget = to.context_max_chars
        if req.front == NAME:
            expect(req.raw.get("webhook") is None,
                   "webhook: on an emulated upstream Parallel would call it with its own run ids, which this app"
                   " never sees; poll the result or follow the events instead", "webhook")
            body = {k: v for k, v in req.raw.items() if k != "previous_interaction_id"}
            context = fold_context(history, budget)
            return UpstreamCall("POST", "/v1/tasks/runs", _with_context(body, context) if context else body)
        turns = [*history, *req.input]
        current = turns.pop() if turns and turns[-1].role == USER else None
        question = _turn_text(current) if current else ""
        expect(bool(question), "input: an upstream that speaks parallel needs the last turn to be the user's text",
               "input")
        expect(bool(req.model), "model: is required; it names the Parallel processor (lite, core, ultra…)", "model")
        sections = [f"{INSTRUCTIONS_HEADER}\n{req.system}"] if req.system else []
        if context := fold_context(turns, budget):
            sections.append(context)
        text = "\n\n".join([*sections, f"{REQUEST_HEADER}\n{question}"]) if sections else question
        body = {"input": text, "processor": req.model, "task_spec": {"output_schema": _output_schema(req)}}
        return UpstreamCall("POST", "/v1/tasks/runs", body)

    def parse_reply(self, body: Any) -> ModelReply:
        """A TaskRun (a create's answer) or a TaskRunResult (`{run, output}`)."""
        expect(isinstance(body, dict), "the task run is not a JSON object")
        run = body["run"] if isinstance(body.get("run"), dict) else body
        expect(isinstance(run.get("run_id"), str), "the task run has no run_id")
        wire = run.get("status")
        status = _NEUTRAL_STATUS.get(wire, FAILED)
        error = as_dict(run.get("error"))
        message = error.get("message") if isinstance(error.get("message"), str) else None
        if wire not in _NEUTRAL_STATUS:
            message = f"the provider reported a run status recall does not know: {wire!r}"
        output = body.get("output")
        parts = []
        if isinstance(output, dict) and "content" in output:
            content = output["content"]
            text = content if isinstance(content, str) else orjson.dumps(content).decode()
            parts.append(Part(TEXT, text=text, native=output, origin=NAME))
        return ModelReply(
            output=[Turn(MODEL, parts)] if parts else [],
            status=status,
            model=run.get("processor"),
            provider_id=run.get("interaction_id") or run["run_id"],
            run_id=run["run_id"],
            error=message,
        )

    def pending_result(self, reply: ModelReply, wait_s: int) -> UpstreamCall | None:
        """A run still going (or done without its output yet): long-poll its result."""
        if not reply.run_id or not (reply.status == IN_PROGRESS or (reply.status == COMPLETED and not reply.output)):
            return None
        return UpstreamCall("GET", f"/v1/tasks/runs/{quote(reply.run_id, safe='')}/result?timeout={wait_s}", None)


# -- the front API's pieces -------------------------------------------------------


def _output_schema(req: TurnRequest) -> dict[str, Any]:
    """The output schema for another front API's request: its structured output, else text."""
    form = req.generation.get("response_format")
    if not form:
        return {"type": "text"}
    if form["type"] == "json_schema":
        return {"type": "json", "json_schema": form["schema"]}
    return {"type": "auto"}  # JSON wanted, no schema given: Parallel picks one



def _parse_task_spec(spec: Any) -> tuple[Schema, Schema | None]:
    if spec is None:
        return Schema("auto"), None
    expect(isinstance(spec, dict), f"task_spec: expected an object; got {type_name(spec)}", "task_spec")
    expect("output_schema" in spec,
           "task_spec.output_schema: is required in a task_spec (leave task_spec out for an automatic schema)",
           "task_spec")
    output = parse_schema(spec["output_schema"], "task_spec.output_schema", allow_auto=True)
    raw_input_schema = spec.get("input_schema")
    input_schema = (parse_schema(raw_input_schema, "task_spec.input_schema", allow_auto=False)
                    if raw_input_schema is not None else None)
    return output, input_schema


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    expect(isinstance(metadata, dict), f"metadata: expected an object; got {type_name(metadata)}", "metadata")
    for key, value in metadata.items():
        expect(isinstance(value, (str, int, float)),
               f"metadata.{key}: expected a string, number or boolean; got {type_name(value)}", "metadata")


def _instruction(output: Schema, input_schema: Schema | None) -> str | None:
    """The task spec as an instruction, for an upstream that has no task spec of its own."""
    lines = []
    if input_schema is not None and input_schema.description:
        lines.append(f"About the input: {input_schema.description}")
    if output.kind == "json":
        lines.append("Answer with one JSON object and nothing else, matching this JSON Schema: "
                     + orjson.dumps(output.json_schema).decode())
        if output.description:
            lines.append(output.description)
    elif output.kind == "text":
        lines.append("Answer in plain text." + (f" {output.description}" if output.description else ""))
    return "\n".join(lines) or None


def _input_part(value: str | dict[str, Any]) -> Part:
    if isinstance(value, str):
        return Part(TEXT, text=value)
    # Other APIs read an object input as its JSON text; this one gets the object back.
    return Part(TEXT, text=orjson.dumps(value).decode(), native=value, origin=NAME)


def _original_input(it: Interaction) -> Any:
    parts = [p for turn in it.input for p in turn.parts]
    if len(parts) == 1 and parts[0].origin == NAME and isinstance(parts[0].native, dict):
        return parts[0].native
    return "\n\n".join(_turn_text(turn) for turn in it.input)


def task_output(it: Interaction) -> dict[str, Any]:
    """A run's output object: as the provider gave it, else its text as a text output."""
    for part in (p for turn in it.output for p in turn.parts):
        if part.origin == NAME and isinstance(part.native, dict) and part.native.get("type") in ("text", "json"):
            return part.native
    return {"type": "text", "content": "\n\n".join(_turn_text(t) for t in it.output if t.role == MODEL), "basis": []}


def shape_output(it: Interaction) -> str | None:
    """Give a run answered by another API the Task API's output shape, as its
    output schema asks; the reason it cannot, if the answer does not fit."""
    if any(p.origin == NAME and isinstance(p.native, dict) for turn in it.output for p in turn.parts):
        return None  # the provider's own output
    text = "\n\n".join(_turn_text(t) for t in it.output if t.role == MODEL)
    output: dict[str, Any] = {"type": "text", "content": text, "basis": []}
    if output_schema_of(it.request).kind == "json":
        content = _json_object_in(text)
        if content is None:
            return "the model's answer is not the JSON object the task's output schema asks for"
        output = {"type": "json", "content": content, "basis": []}
        text = orjson.dumps(content).decode()
    it.output = [Turn(MODEL, [Part(TEXT, text=text, native=output, origin=NAME)])]
    return None


def _json_object_in(text: str) -> dict[str, Any] | None:
    """The JSON object an answer holds, allowing for a Markdown code fence around it."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[-1].rsplit("```", 1)[0]
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# -- folding earlier turns into one input ----------------------------------------


def _turn_text(turn: Turn) -> str:
    """A turn as plain text for a context block; thoughts are left out."""
    pieces = []
    for part in turn.parts:
        if part.kind == TEXT and part.text:
            pieces.append(part.text)
        elif part.kind == FUNCTION_CALL:
            pieces.append(f"[called {part.name} with {orjson.dumps(part.arguments).decode()}]")
        elif part.kind == FUNCTION_RESULT:
            pieces.append(f"[{part.name or 'the function'} returned {orjson.dumps(part.result).decode()}]")
        elif part.kind in MEDIA_KINDS:
            pieces.append(f"[{part.kind}]")
    return "\n".join(pieces)


def fold_context(turns: list[Turn], budget: int) -> str | None:
    """Earlier turns as one context block, or None when there are none.

    Each turn is written `User: …` or `Assistant: …`. Whole turns are kept,
    newest first, while their sum stays within `budget` characters; older ones
    are left out and a line says how many. A newest turn longer than the whole
    budget is cut to fit, its end marked ` […]`.
    """
    blocks = [f"{_ROLE_LABEL.get(turn.role, 'User')}: {text}" for turn in turns if (text := _turn_text(turn))]
    if not blocks:
        return None
    kept: list[str] = []
    used = 0
    for block in reversed(blocks):
        if used + len(block) > budget:
            if not kept:
                kept.append(block[: max(budget - len(_CUT), 0)] + _CUT)
            break
        kept.append(block)
        used += len(block)
    kept.reverse()
    left_out = len(blocks) - len(kept)
    note = [f"({left_out} earlier turns left out to stay within {budget} characters.)"] if left_out else []
    return "\n\n".join([CONTEXT_HEADER, *note, *kept])


def _with_context(body: dict[str, Any], context: str) -> dict[str, Any]:
    """A create body with the context folded in: before a text question, or as one more
    field of an object input (whose json input schema gains that property)."""
    value = body["input"]
    if isinstance(value, str):
        return {**body, "input": f"{context}\n\n{REQUEST_HEADER}\n{value}"}
    expect(CONTEXT_FIELD not in value,
           f"input.{CONTEXT_FIELD}: recall puts the earlier turns of a chain in this field; rename yours to continue"
           " a chain on an emulated upstream", "input")
    folded = {**body, "input": {**value, CONTEXT_FIELD: context}}
    spec = as_dict(body.get("task_spec"))
    schema = spec.get("input_schema")
    if isinstance(schema, dict) and isinstance(schema.get("json_schema"), dict):
        json_schema = schema["json_schema"]
        properties = {**(json_schema.get("properties") or {}),
                      CONTEXT_FIELD: {"type": "string", "description": "Earlier turns of this conversation, as context."}}
        folded["task_spec"] = {**spec, "input_schema": {**schema, "json_schema": {**json_schema, "properties": properties}}}
    return folded


# -- the events stream -------------------------------------------------------------


class TaskEventsEncoder(StreamEncoder):
    """`GET …/events`: a `task_run.state` event per status, the last one with the output."""

    def __init__(self, codec: ParallelTasks) -> None:
        self._codec = codec
        self._count = 0

    def _event(self, payload: dict[str, Any]) -> Frame:
        self._count += 1
        event_id = f"e{self._count}"
        body = {**payload, "event_id": event_id}
        return Frame(event_id, frame(orjson.dumps(body), payload["type"]))

    def _state(self, node: Interaction, status: str | None = None) -> Frame:
        run = self._codec.render(node, status=status)
        output = task_output(node) if run["status"] == "completed" else None
        return self._event({"type": "task_run.state", "run": run, "output": output})

    def opening(self, node: Interaction) -> list[Frame]:
        return [self._state(node, "queued"), self._state(node, "running")]

    def delta(self, delta: StreamDelta) -> list[Frame]:
        return []  # a run's output arrives whole, with its final state

    def closing(self, node: Interaction) -> list[Frame]:
        return [self._state(node)]

    def failure(self, node: Interaction, err: ApiError) -> list[Frame]:
        # A run that fails ends as any run ends: its final state says `failed`, with the reason.
        return self.closing(node)
