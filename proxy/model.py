"""The one neutral conversation model that every wire format is decoded into.

Codecs translate their provider's JSON to and from these classes; the state,
cache and store layers speak only this model, never a provider's format.
A stream is this model too: the deltas every upstream stream decodes into and
every front stream encodes from, and the assembler that turns them into a reply.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import orjson

# Part kinds. Media kinds carry `data` (base64) or `uri` plus `mime_type`.
TEXT = "text"
IMAGE = "image"
AUDIO = "audio"
VIDEO = "video"
DOCUMENT = "document"
FUNCTION_CALL = "function_call"
FUNCTION_RESULT = "function_result"
THOUGHT = "thought"
# A system or developer message inside the conversation (OpenAI input items);
# APIs with no such message drop it.
INSTRUCTION = "instruction"
# A compacted stretch of the conversation: the provider's opaque item (OpenAI's
# `encrypted_content`, in `signature`) or a summary recall or the provider can read
# (`text`: Anthropic's compaction block, recall's own sealed summary). A rebuilt
# history starts at the newest one (pipeline/state.py).
COMPACTION = "compaction"
MEDIA_KINDS = frozenset({IMAGE, AUDIO, VIDEO, DOCUMENT})

USER = "user"
MODEL = "model"

# How many characters of earlier turns an upstream API that folds history into one
# input carries by default ([upstreams.NAME] context_max_chars).
DEFAULT_CONTEXT_MAX_CHARS = 50_000

# Interaction statuses, in the Interactions API's own vocabulary; codecs map
# them to their front API's words.
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
REQUIRES_ACTION = "requires_action"
INCOMPLETE = "incomplete"
FAILED = "failed"
CANCELLED = "cancelled"


@dataclass(slots=True)
class Part:
    """One piece of a turn: text, media, a function call or result, or a thought."""

    kind: str
    text: str | None = None
    data: str | None = None
    uri: str | None = None
    mime_type: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: Any = None
    result: Any = None
    is_error: bool | None = None
    # Opaque provider token that must travel back with a thought or call
    # (Gemini thought signatures, OpenAI encrypted reasoning).
    signature: str | None = None
    # Which codec produced `signature`/`native`; they are only sent back to it.
    origin: str | None = None
    # The provider's own JSON for this part when it holds more than the fields
    # above; re-sent verbatim when the same wire API is on both sides.
    native: Any = None
    # True when the text of this part, from a long streamed reply, was not kept: its node's
    # recorded events hold it (pipeline/spill.py reads it back). In memory `text` holds its
    # head, for the search index; stored, the part holds no text at all.
    spilled: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: v for f in fields(self)
                if (v := getattr(self, f.name)) is not None and not (self.spilled and f.name == "text")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        return cls(**data)


@dataclass(slots=True)
class Turn:
    """A run of parts from one side of the conversation."""

    role: str
    parts: list[Part] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "parts": [p.to_json() for p in self.parts]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Turn:
        # Part(**p) rather than Part.from_json: one call less per part, and a cold chain
        # rebuild decodes thousands of parts on a turn's path (issue 21).
        return cls(data["role"], [Part(**p) for p in data["parts"]])

    @property
    def text(self) -> str:
        return "".join(p.text or "" for p in self.parts if p.kind == TEXT)


@dataclass(slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    thought_tokens: int | None = None
    cached_tokens: int | None = None
    total_tokens: int | None = None

    def to_json(self) -> dict[str, int]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Usage:
        return cls(**(data or {}))


@dataclass(slots=True)
class FunctionTool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    # Whether the provider must hold the call's arguments to `parameters` exactly. Each API
    # has its own default when the field is absent (Responses strict, Chat Completions and
    # Messages not), so the decoder resolves it: the neutral value is always explicit.
    strict: bool = False


@dataclass(slots=True)
class TurnRequest:
    """A create call decoded from a front API: the new input and how to answer."""

    front: str
    model: str | None
    input: list[Turn]
    previous_id: str | None = None
    system: str | None = None
    tools: list[FunctionTool] = field(default_factory=list)
    # Neutral generation settings (codecs.base.SETTINGS says which ones bind):
    #   temperature, top_p, top_k, seed: numbers; max_output_tokens: int;
    #   stop_sequences: [str]; reasoning_effort: "minimal" | "low" | "medium" | "high";
    #   response_format: {"type": "json_schema", "schema", "name"?, "strict"?, "description"?}
    #                    | {"type": "json_object"};
    #   tool_choice: "auto" | "none" | "required" | {"name": function name}.
    generation: dict[str, Any] = field(default_factory=dict)
    store: bool = True
    stream: bool = False
    background: bool = False
    # A conversation object recall keeps (OpenAI Conversations): its items are
    # the history, and the turn's items are appended to it.
    conversation: str | None = None
    # The body as the app sent it; used when the upstream speaks the same wire
    # API, so that fields recall does not model still reach the provider.
    raw: dict[str, Any] = field(default_factory=dict)
    # Things this front API has that no neutral field holds (e.g. built-in
    # search tools). Another wire API refuses them by name.
    untranslatable: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a turn's self-contained call goes, as an upstream codec needs to know it
    (from the upstream's config): its `api`, for an API that several providers serve at
    different paths (Chat Completions), how many characters of earlier turns an API that
    folds history into one input may carry, and the thread's prompt cache key."""

    api: str
    context_max_chars: int = DEFAULT_CONTEXT_MAX_CHARS
    # The thread's root id: where the API takes a prompt cache key, the default one for a call
    # recall rebuilt from the thread (not a first turn, which goes as the app sent it), so that
    # every later turn of a thread lands on the cache that holds its prefix.
    cache_key: str | None = None


@dataclass(slots=True)
class ModelReply:
    """What an upstream answered, decoded."""

    output: list[Turn]
    status: str = COMPLETED
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    provider_id: str | None = None
    error: str | None = None
    # The provider's id for the run that produced this reply, where its API names
    # runs apart from conversation nodes (Parallel's run_id beside interaction_id).
    run_id: str | None = None


def name_results(turns: list[Turn]) -> None:
    """Give each function result the name of the call it answers, where its API left it out
    (OpenAI and Anthropic results carry only the call id; Gemini's need the name)."""
    names = {p.call_id: p.name for turn in turns for p in turn.parts if p.kind == FUNCTION_CALL and p.call_id}
    for turn in turns:
        for part in turn.parts:
            if part.kind == FUNCTION_RESULT and not part.name and part.call_id in names:
                part.name = names[part.call_id]


def lift_instructions(turns: list[Turn]) -> tuple[list[Turn], list[str]]:
    """Turns without their instruction parts (system or developer messages inside the
    conversation), and those instructions' texts in order, for an API that has a
    system instruction but no such messages."""
    lifted = [p.text or "" for turn in turns for p in turn.parts if p.kind == INSTRUCTION]
    if not lifted:
        return turns, []
    kept = [Turn(t.role, [p for p in t.parts if p.kind != INSTRUCTION]) for t in turns]
    return [t for t in kept if t.parts], lifted


def readable_compactions(turns: list[Turn], carries: Callable[[Part], bool]) -> list[Turn]:
    """Turns with each compaction an upstream cannot take as it is (another provider's, or
    recall's own sealed summary) told as text: the summary it holds, where it holds one."""
    out = []
    for turn in turns:
        parts = []
        for part in turn.parts:
            if part.kind != COMPACTION or (part.native is not None and part.origin is not None and carries(part)):
                parts.append(part)
            elif part.text:
                parts.append(Part(TEXT, text=f"{SUMMARY_HEADING}\n{part.text}"))
        if parts:
            out.append(Turn(turn.role, parts))
    return out


# How a summary of earlier turns is told to a model that reads it as text.
SUMMARY_HEADING = "Summary of the conversation so far:"


def give_call_id(part: Part) -> None:
    """A function call the provider left without an id (Gemini's generateContent) gets one,
    so that every front API can name it and the app's result can point back at it."""
    if part.kind == FUNCTION_CALL and not part.call_id:
        part.call_id = "call_" + secrets.token_urlsafe(12)


def settle_status(output: list[Turn], finished: str) -> str:
    """`requires_action` when a completed turn ends with the model calling a function."""
    parts = [p for t in output if t.role == MODEL for p in t.parts]
    if finished == COMPLETED and parts and parts[-1].kind == FUNCTION_CALL:
        return REQUIRES_ACTION
    return finished


#: Where a node records the cut its call was made with, in its stored `request` (pipeline/window.py).
TRUNCATION = "recall_truncation"


@dataclass(slots=True)
class Interaction:
    """One stored turn of a conversation: a node with a parent pointer."""

    id: str
    owner: str
    upstream: str
    front: str
    mode: str
    model: str | None
    status: str
    input: list[Turn]
    output: list[Turn]
    created: float
    updated: float
    parent_id: str | None = None
    root_id: str | None = None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    # Front-API request fields echoed on GET (system instruction, tools, config).
    request: dict[str, Any] = field(default_factory=dict)
    provider_id: str | None = None
    # The id of the run that produced this node, where the front API has one
    # besides the interaction id (Parallel task runs: `run_id`).
    run_id: str | None = None

    def turns(self) -> list[Turn]:
        """This node's contribution to the conversation history."""
        return [*self.input, *self.output]

    @property
    def spilled(self) -> bool:
        """Whether some of its output's text is read from its recorded events (pipeline/spill.py)."""
        # Asked of every node of a chain on every follow-up: plain loops, no generator.
        for turn in self.output:
            for part in turn.parts:
                if part.spilled:
                    return True
        return False

    @property
    def truncation(self) -> dict[str, Any]:
        """The cut its call was made with ({} when none), kept in its request by pipeline/window.py."""
        found = self.request.get(TRUNCATION)
        return found if isinstance(found, dict) else {}


# -- the neutral stream -------------------------------------------------------------


@dataclass(slots=True)
class PartStart:
    """A new part begins: `part` is its shell (kind, call id, name, mime type)."""

    index: int
    part: Part


@dataclass(slots=True)
class PartDelta:
    """More of an open part. `arguments` is a fragment of a JSON string."""

    index: int
    text: str | None = None
    arguments: str | None = None
    signature: str | None = None
    data: str | None = None


@dataclass(slots=True)
class PartStop:
    index: int


StreamDelta = PartStart | PartDelta | PartStop


@dataclass
class Assembler:
    """Builds the final reply from deltas, as the stream passes.

    Text is kept as a list of pieces and joined once at the end, so assembling
    costs one copy of the output, not one per delta. When `spill_after` is set (a
    stored stream, whose recorded events hold every byte), text past that many
    characters in all is not kept: the parts that hold text are marked `spilled`,
    keep what was held (their head), and keep nothing of what follows.
    """

    parts: dict[int, Part] = field(default_factory=dict)
    _text: dict[int, list[str]] = field(default_factory=dict)
    _arguments: dict[int, list[str]] = field(default_factory=dict)
    status: str = COMPLETED
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    provider_id: str | None = None
    error: str | None = None
    spill_after: int | None = None
    _kept_chars: int = 0
    _spilling: bool = False

    def apply(self, delta: StreamDelta) -> None:
        if isinstance(delta, PartStart):
            self.parts[delta.index] = delta.part
        elif isinstance(delta, PartDelta):
            part = self.parts.get(delta.index)
            if part is None:  # a delta with no start: open a text part for it
                part = self.parts[delta.index] = Part("text")
            if delta.text is not None:
                self._keep_text(delta.index, part, delta.text)
            if delta.arguments is not None:
                self._arguments.setdefault(delta.index, []).append(delta.arguments)
            if delta.signature is not None:
                part.signature = (part.signature or "") + delta.signature
            if delta.data is not None:
                part.data = (part.data or "") + delta.data

    def _keep_text(self, index: int, part: Part, text: str) -> None:
        if self._spilling:
            part.spilled = True
            return
        self._text.setdefault(index, []).append(text)
        self._kept_chars += len(text)
        if self.spill_after is not None and self._kept_chars > self.spill_after:
            # From here on the text lives only in the recorded events; what was held stays as the head.
            self._spilling = True
            for held in self._text:
                self.parts[held].spilled = True

    def reply(self) -> ModelReply:
        parts = []
        for index in sorted(self.parts):
            part = self.parts[index]
            # Pieces are joined into the part once and let go: a long reply is not held twice.
            if index in self._text:
                part.text = (part.text or "") + "".join(self._text.pop(index))
            if index in self._arguments:
                raw = "".join(self._arguments.pop(index))
                try:
                    part.arguments = orjson.loads(raw) if raw else {}
                except orjson.JSONDecodeError:
                    part.arguments = {"_unparsed": raw}
            parts.append(part)
        output = [Turn(MODEL, parts)] if parts else []
        return ModelReply(
            output=output,
            status=settle_status(output, self.status),
            usage=self.usage,
            model=self.model,
            provider_id=self.provider_id,
            error=self.error,
        )


def deltas_of(parts: list[Part]) -> list[StreamDelta]:
    """The deltas a stream of these finished parts would have held: each part's shell,
    its whole content at once, and its end."""
    deltas: list[StreamDelta] = []
    for index, part in enumerate(parts):
        shell = replace(part, text=None, arguments=None, signature=None, data=None)
        arguments = orjson.dumps(part.arguments).decode() if part.arguments is not None else None
        deltas += [PartStart(index, shell),
                   PartDelta(index, text=part.text, arguments=arguments, signature=part.signature, data=part.data),
                   PartStop(index)]
    return deltas
