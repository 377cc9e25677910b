"""Gemini generateContent (`/{ver}/models/{model}:generateContent`): stateless.

As an upstream it receives the whole rebuilt conversation as `contents`.
Thought signatures ride on the part after the thought (specs section 10).
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import quote

import orjson

from ..errors import ApiError
from ..model import (
    FUNCTION_CALL,
    FUNCTION_RESULT,
    MEDIA_KINDS,
    MODEL,
    TEXT,
    THOUGHT,
    Destination,
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
from ..sse import SSEEvent
from .base import Codec, StreamDecoder, UpstreamCall, as_dict, expect

NAME = "gemini-generate"

_GENERATION_KEYS = {
    "temperature": "temperature",
    "top_p": "topP",
    "max_output_tokens": "maxOutputTokens",
    "stop_sequences": "stopSequences",
    "seed": "seed",
    "top_k": "topK",
}
_USAGE_KEYS = {
    "promptTokenCount": "input_tokens",
    "candidatesTokenCount": "output_tokens",
    "thoughtsTokenCount": "thought_tokens",
    "cachedContentTokenCount": "cached_tokens",
    "totalTokenCount": "total_tokens",
}
_FINISH_STATUS = {"STOP": "completed", "MAX_TOKENS": "incomplete", "FINISH_REASON_UNSPECIFIED": "completed"}
# Google's canonical status words for HTTP statuses, used in error bodies.
_STATUS_WORDS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class GeminiGenerate(Codec):
    name = NAME
    speaks = "gemini-generate"
    same_wire = frozenset({"gemini", "gemini-generate"})
    stateless = True
    family = "google"
    id_prefix = "gc_"
    auth_header = "x-goog-api-key"
    auth_prefix = ""
    media_inline = media_by_url = MEDIA_KINDS
    carries_settings = frozenset({*_GENERATION_KEYS, "reasoning_effort", "response_format", "tool_choice"})

    def error_body(self, err: ApiError) -> dict[str, Any]:
        return {"error": {"code": err.status, "message": err.message, "status": _STATUS_WORDS.get(err.status, "UNKNOWN")}}

    def upstream_call(self, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall:
        expect(bool(req.model), "model: is required to call generateContent", "model")
        body: dict[str, Any] = {"contents": [_content(t, self) for t in [*history, *req.input]]}
        body["contents"] = [c for c in body["contents"] if c["parts"]]
        if req.system:
            body["systemInstruction"] = {"parts": [{"text": req.system}]}
        if req.tools:
            body["tools"] = [{"functionDeclarations": [
                {k: v for k, v in (("name", t.name), ("description", t.description),
                                   ("parametersJsonSchema", t.parameters)) if v is not None}
                for t in req.tools
            ]}]
        config = {wire: req.generation[n] for n, wire in _GENERATION_KEYS.items() if n in req.generation}
        if "reasoning_effort" in req.generation:
            config["thinkingConfig"] = {"thinkingLevel": str(req.generation["reasoning_effort"]).upper()}
        form = req.generation.get("response_format")
        if form:
            config["responseMimeType"] = "application/json"
            if form["type"] == "json_schema":
                config["responseJsonSchema"] = form["schema"]
        if config:
            body["generationConfig"] = config
        choice = req.generation.get("tool_choice")
        if isinstance(choice, dict):
            body["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["name"]]}}
        elif choice is not None:
            body["toolConfig"] = {"functionCallingConfig": {"mode": {"required": "ANY"}.get(choice, choice.upper())}}
        model = req.model.removeprefix("models/") if req.model else ""
        verb = "streamGenerateContent?alt=sse" if req.stream else "generateContent"
        return UpstreamCall("POST", f"/v1beta/models/{quote(model, safe='-._~')}:{verb}", body)

    def stream_decoder(self) -> StreamDecoder:
        return GenerateStreamDecoder(self)

    def parse_reply(self, body: Any) -> ModelReply:
        expect(isinstance(body, dict), "the generateContent response is not a JSON object")
        candidates = body.get("candidates") or []
        candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
        content = as_dict(candidate.get("content"))
        parts: list[Part] = []
        for raw in content.get("parts") or []:
            if isinstance(raw, dict):
                parts.extend(_parts_of(raw))
        finish = candidate.get("finishReason")
        blocked = (body.get("promptFeedback") or {}).get("blockReason")
        status = _FINISH_STATUS.get(finish or "STOP", "failed")
        error = None
        if blocked:
            status, error = "failed", f"the prompt was blocked: {blocked}"
        elif status == "failed":
            error = f"generation stopped: {finish}"
        usage = as_dict(body.get("usageMetadata"))
        output = [Turn(MODEL, parts)] if parts else []
        return ModelReply(
            output=output,
            status=settle_status(output, status),
            usage=Usage(**{n: usage[w] for w, n in _USAGE_KEYS.items() if isinstance(usage.get(w), int)}),
            model=body.get("modelVersion"),
            provider_id=body.get("responseId"),
            error=error,
        )


def _content(turn: Turn, target: Codec) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    pending_signature: str | None = None
    for part in turn.parts:
        if part.kind == THOUGHT:
            if not target.carries(part):
                continue
            if part.text:
                parts.append({"text": part.text, "thought": True})
            if part.signature:
                pending_signature = part.signature
            continue
        encoded = _part(part)
        if encoded is None:
            continue
        if pending_signature:
            encoded["thoughtSignature"] = pending_signature
            pending_signature = None
        parts.append(encoded)
    return {"role": "model" if turn.role == MODEL else "user", "parts": parts}


def _part(part: Part) -> dict[str, Any] | None:
    if part.kind == TEXT:
        return {"text": part.text or ""}
    if part.kind in MEDIA_KINDS:
        if part.data is not None:
            return {"inlineData": {"mimeType": part.mime_type, "data": part.data}}
        # Gemini needs a file's type; an API that names none (a Chat image URL) leaves it to the URL.
        mime_type = part.mime_type or mimetypes.guess_type(part.uri or "")[0]
        return {"fileData": {"fileUri": part.uri, **({"mimeType": mime_type} if mime_type else {})}}
    if part.kind == FUNCTION_CALL:
        call = {"name": part.name, "args": part.arguments or {}}
        if part.call_id:
            call["id"] = part.call_id
        return {"functionCall": call}
    if part.kind == FUNCTION_RESULT:
        response = part.result if isinstance(part.result, dict) else {"result": part.result}
        result = {"name": part.name or "", "response": response}
        if part.call_id:
            result["id"] = part.call_id
        return {"functionResponse": result}
    return None  # a provider-specific part another API produced: not carried


def _parts_of(raw: dict[str, Any]) -> list[Part]:
    parts: list[Part] = []
    signature = raw.get("thoughtSignature")
    if raw.get("thought") and "text" in raw:
        return [Part(THOUGHT, text=raw["text"], signature=signature, origin=NAME)]
    if signature:
        parts.append(Part(THOUGHT, signature=signature, origin=NAME))
    if "text" in raw:
        parts.append(Part(TEXT, text=raw["text"]))
    elif isinstance(raw.get("inlineData"), dict):
        data = raw["inlineData"]
        parts.append(Part(_media_kind(data.get("mimeType")), data=data.get("data"), mime_type=data.get("mimeType")))
    elif isinstance(raw.get("fileData"), dict):
        data = raw["fileData"]
        parts.append(Part(_media_kind(data.get("mimeType")), uri=data.get("fileUri"), mime_type=data.get("mimeType")))
    elif isinstance(raw.get("functionCall"), dict):
        call = raw["functionCall"]
        parts.append(Part(FUNCTION_CALL, call_id=call.get("id"), name=call.get("name"), arguments=call.get("args") or {}))
    elif isinstance(raw.get("functionResponse"), dict):
        result = raw["functionResponse"]
        parts.append(Part(FUNCTION_RESULT, call_id=result.get("id"), name=result.get("name"), result=result.get("response")))
    else:
        parts.append(Part("other", native=raw, origin=NAME))
    return parts


def _media_kind(mime_type: str | None) -> str:
    major = (mime_type or "").split("/", 1)[0]
    return {"image": "image", "audio": "audio", "video": "video"}.get(major, "document")


class GenerateStreamDecoder(StreamDecoder):
    """streamGenerateContent?alt=sse: each event is a whole GenerateContentResponse chunk."""

    def __init__(self, codec: GeminiGenerate) -> None:
        super().__init__()
        self._codec = codec  # each chunk is a whole reply, read as one
        self._open: int | None = None  # index of the text (or thought) part being extended
        self._open_kind: str | None = None
        self._next = 0

    def _start(self, part: Part) -> list[StreamDelta]:
        out = self._stop()
        self._open, self._open_kind = self._next, part.kind
        self._next += 1
        return [*out, PartStart(self._open, part)]

    def _stop(self) -> list[StreamDelta]:
        if self._open is None:
            return []
        index, self._open, self._open_kind = self._open, None, None
        return [PartStop(index)]

    def decode(self, event: SSEEvent) -> list[StreamDelta]:
        chunk = event.json()
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("error"), dict):
            self.failure = str(chunk["error"].get("message") or "the provider reported an error")
            return self._stop()
        reply = self._codec.parse_reply(chunk)
        out: list[StreamDelta] = []
        for part in (p for turn in reply.output for p in turn.parts):
            streams_on = part.kind in (TEXT, THOUGHT) and part.kind == self._open_kind and not part.signature
            if part.kind in (TEXT, THOUGHT):
                if not streams_on:
                    out += self._start(Part(part.kind, origin=part.origin))
                assert self._open is not None
                out.append(PartDelta(self._open, text=part.text, signature=part.signature))
            else:
                out += self._start(Part(part.kind, call_id=part.call_id, name=part.name, mime_type=part.mime_type,
                                        uri=part.uri, result=part.result, native=part.native, origin=part.origin))
                if part.kind == FUNCTION_CALL:
                    out.append(PartDelta(self._open or 0, arguments=orjson.dumps(part.arguments or {}).decode()))
                elif part.data is not None:
                    out.append(PartDelta(self._open or 0, data=part.data))
                out += self._stop()
        candidates = chunk.get("candidates") or []
        if candidates and isinstance(candidates[0], dict) and candidates[0].get("finishReason"):
            out += self._stop()
            self.finished = True
            self.assembler.status, self.assembler.error = reply.status, reply.error
        if reply.usage.to_json():
            self.assembler.usage = reply.usage
        self.assembler.model = reply.model or self.assembler.model
        self.assembler.provider_id = reply.provider_id or self.assembler.provider_id
        return out
