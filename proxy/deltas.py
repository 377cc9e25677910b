"""The neutral stream: deltas every upstream stream decodes into and every
front stream encodes from, and the assembler that turns them into a reply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import orjson

from .model import COMPLETED, MODEL, ModelReply, Part, Turn, Usage, settle_status


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
    costs one copy of the output, not one per delta.
    """

    parts: dict[int, Part] = field(default_factory=dict)
    _text: dict[int, list[str]] = field(default_factory=dict)
    _arguments: dict[int, list[str]] = field(default_factory=dict)
    status: str = COMPLETED
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    provider_id: str | None = None
    error: str | None = None

    def apply(self, delta: StreamDelta) -> None:
        if isinstance(delta, PartStart):
            self.parts[delta.index] = delta.part
        elif isinstance(delta, PartDelta):
            part = self.parts.get(delta.index)
            if part is None:  # a delta with no start: open a text part for it
                part = self.parts[delta.index] = Part("text")
            if delta.text is not None:
                self._text.setdefault(delta.index, []).append(delta.text)
            if delta.arguments is not None:
                self._arguments.setdefault(delta.index, []).append(delta.arguments)
            if delta.signature is not None:
                part.signature = (part.signature or "") + delta.signature
            if delta.data is not None:
                part.data = (part.data or "") + delta.data

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
        shell = dataclasses.replace(part, text=None, arguments=None, signature=None, data=None)
        arguments = orjson.dumps(part.arguments).decode() if part.arguments is not None else None
        deltas += [PartStart(index, shell),
                   PartDelta(index, text=part.text, arguments=arguments, signature=part.signature, data=part.data),
                   PartStop(index)]
    return deltas
