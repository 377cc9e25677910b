"""A fake Gemini provider on loopback: Interactions and generateContent.

Stateless by default, like a zero-data-retention project: it refuses
`previous_interaction_id` and `store` other than false, and answers from the
whole history each request carries. `stateful=True` makes it keep
interactions itself, for native-mode tests. It calls a declared function tool
when the user asks about the weather in a city, says what a function result
said, and a model whose name has "thinking" in it thinks first, with a thought
signature it checks when it comes back (as Gemini does). `context_window=N` gives
generateContent's model a window of N tokens, counted by the shared rule
(tests/support/tokens.py): longer contents are refused as Gemini refuses them (400
INVALID_ARGUMENT "The input token count (N) exceeds the maximum number of tokens allowed
(M)."), and usage reports the count.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .brain import answer, requested_pause, weather_city
from .contract.tap import off_contract
from .serving import FakeProvider, Step, sse_frame, sse_response, word_pieces
from .tokens import count_tokens


@dataclass
class FakeGemini(FakeProvider):
    name = "fake Gemini"
    stateful: bool = False
    interactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    histories: dict[str, list[str]] = field(default_factory=dict)
    # Seconds before any whole answer; a fault injected at a stream's fourth event
    # ("reset", "error_event", "bad_chunk", "truncate").
    reply_delay: float = 0.0
    fault: str | None = None
    # Thought signatures the fake handed out, and those that came back to it.
    minted_signatures: set[str] = field(default_factory=set)
    signatures_received: list[str] = field(default_factory=list)
    # generateContent's context window in tokens (tests/support/tokens.py counts them); None: unlimited.
    context_window: int | None = None

    # -- handlers --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._serve(request)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # Like the real provider: a request it cannot read is a 400, never a crash.
            return _error(400, "invalid_request", f"fake gemini cannot read this request: {exc!r}")

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        path = request.path
        if ":generateContent" in path:
            return await self._generate(path, body)
        if ":streamGenerateContent" in path:
            return await self._stream_generate(request, path, body)
        parts = path.strip("/").split("/")
        if parts and parts[-1] == "interactions" and request.method == "POST":
            if body.get("stream"):
                return await self._stream_create(request, body)
            return await self._create(body)
        if len(parts) >= 2 and parts[-2] == "interactions":
            return self._by_id(request.method, parts[-1])
        return _error(404, "not_found", f"fake gemini has no route {request.method} {path}")

    def _mismatch(self, texts: list[str]) -> web.Response | None:
        """A 400 when a conversation arrives without its whole history."""
        problem = self._history_mismatch(texts)
        return None if problem is None else _error(400, "history_mismatch", problem)

    async def _wait(self, texts: list[str]) -> None:
        if delay := self.reply_delay + requested_pause(texts):
            await asyncio.sleep(delay)

    def _refusal(self, body: dict[str, Any]) -> web.Response | None:
        previous = body.get("previous_interaction_id")
        if not self.stateful:
            if previous:
                return _error(400, "invalid_request", "previous_interaction_id is not supported: this project has zero data retention")
            if body.get("store") is not False:
                return _error(400, "invalid_request", "store must be false: this project has zero data retention")
        if previous and previous not in self.histories:
            return _error(404, "not_found", f"interaction {previous} not found")
        return None

    def _history(self, body: dict[str, Any]) -> list[str]:
        previous = body.get("previous_interaction_id")
        return [*self.histories.get(previous, []), *_user_texts_of_input(body.get("input"))]

    def _steps(self, body: dict[str, Any], history: list[str], interaction_id: str) -> tuple[list[dict[str, Any]], str]:
        """The model's steps for an Interactions create, and its status.

        A thinking model (its name says so) thinks first, with a signature it checks
        when it comes back. With a function tool declared and the user asking about
        the weather in a city, it calls the tool; answered a function result, it says
        what the tool said; otherwise brain.answer."""
        steps: list[dict[str, Any]] = []
        if "thinking" in str(body.get("model")):
            signature = f"gsig::{interaction_id}"
            self.minted_signatures.add(signature)
            steps.append({"type": "thought", "signature": signature,
                          "summary": [{"type": "text", "text": "Thinking it over."}]})
        items = body.get("input") if isinstance(body.get("input"), list) else []
        last = items[-1] if items else {}
        tool = _function_tool(body.get("tools"), "name")
        city = weather_city(history[-1]) if history and last.get("type") != "function_result" else None
        if tool and city:
            steps.append({"type": "function_call", "id": f"call_{interaction_id}", "name": tool,
                          "arguments": {"city": city}})
            return steps, "requires_action"
        if last.get("type") == "function_result":
            text = f"The tool said: {json.dumps(last.get('result'))}"
        else:
            text = answer(history)
        steps.append({"type": "model_output", "content": [{"type": "text", "text": text}]})
        return steps, "completed"

    def _valid(self, signature: Any) -> bool:
        """A signature some fake provider minted (they all hold "::", generateContent's base64-encoded)
        must be this one's; one an app wrote itself into its history is taken as it is."""
        return not _minted_by_a_fake(signature) or signature in self.minted_signatures

    def _check_signatures(self, body: dict[str, Any]) -> web.Response | None:
        """Thought signatures sent back must be ones this provider handed out (Gemini validates them)."""
        for item in body.get("input") if isinstance(body.get("input"), list) else []:
            if isinstance(item, dict) and item.get("type") == "thought":
                if not self._valid(item.get("signature")):
                    return _error(400, "invalid_argument", "Thought signature is not valid.")
                self.signatures_received.append(item["signature"])
        return None

    async def _create(self, body: dict[str, Any]) -> web.Response:
        refused = self._refusal(body) or self._check_signatures(body) or self._mismatch(self._history(body))
        if refused is not None:
            return refused
        previous = body.get("previous_interaction_id")
        history = self._history(body)
        await self._wait(history)
        interaction_id = f"v1_fake{next(self._ids)}"
        steps, status = self._steps(body, history, interaction_id)
        reply = {
            "id": interaction_id,
            "object": "interaction",
            "status": status,
            "model": body.get("model"),
            "created": "2026-01-01T00:00:00Z",
            "updated": "2026-01-01T00:00:01Z",
            "steps": steps,
            "usage": {"total_input_tokens": 10 * len(history), "total_output_tokens": 7, "total_tokens": 10 * len(history) + 7},
        }
        if previous:
            reply["previous_interaction_id"] = previous
        if self.stateful and body.get("store", True):
            self.interactions[interaction_id] = reply
            self.histories[interaction_id] = [*history]
        return web.json_response(reply)

    async def _stream_create(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """An Interactions stream in the current revision's vocabulary (spec 5.3)."""
        refused = self._refusal(body) or self._check_signatures(body) or self._mismatch(self._history(body))
        if refused is not None:
            return refused
        history = self._history(body)
        interaction_id = f"v1_fake{next(self._ids)}"
        steps, status = self._steps(body, history, interaction_id)
        events: list[dict[str, Any]] = [
            {"event_type": "interaction.created",
             "interaction": {"id": interaction_id, "status": "in_progress", "model": body.get("model")}}]
        words: list[str] = []
        for index, step in enumerate(steps):
            if step["type"] == "thought":
                events += [{"event_type": "step.start", "index": index, "step": {"type": "thought"}},
                           {"event_type": "step.delta", "index": index, "delta": {
                               "type": "thought_summary", "content": step["summary"][0]}},
                           {"event_type": "step.delta", "index": index, "delta": {
                               "type": "thought_signature", "signature": step["signature"]}}]
            elif step["type"] == "function_call":
                events += [{"event_type": "step.start", "index": index, "step": {**step, "arguments": {}}},
                           {"event_type": "step.delta", "index": index, "delta": {
                               "type": "arguments_delta", "arguments": json.dumps(step["arguments"])}}]
            else:
                words = word_pieces(step["content"][0]["text"])
                events.append({"event_type": "step.start", "index": index, "step": {"type": "model_output"}})
                events += [{"event_type": "step.delta", "index": index, "delta": {"type": "text", "text": word}}
                           for word in words]
            events.append({"event_type": "step.stop", "index": index})
        events.append({"event_type": "interaction.completed",
                       "interaction": {"id": interaction_id, "status": status, "model": body.get("model"),
                                       "usage": {"total_input_tokens": 10 * len(history),
                                                 "total_output_tokens": len(words),
                                                 "total_tokens": 10 * len(history) + len(words)}}})
        for n, event in enumerate(events, start=1):
            event["event_id"] = f"p{n}"
        frames = [sse_frame(e, e["event_type"]) for e in events]
        frames.append(b"event: done\ndata: [DONE]\n\n")
        if self.stateful and body.get("store", True):
            self.histories[interaction_id] = history
            self.interactions[interaction_id] = {**events[-1]["interaction"], "object": "interaction", "steps": steps}
        return await self._send_stream(request, frames, error_frame=b'event: error\ndata: {"event_type": "error", '
                                       b'"error": {"code": "internal", "message": "the fake model crashed"}}\n\n',
                                       pause=requested_pause(history))

    def _generate_parts(self, path: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        """The model's parts for a generateContent call (as _steps decides), and the user texts.

        Calls come without an id, as Gemini's generateContent sends them; a thinking
        model's signature rides on the part after its thought."""
        texts = _user_texts_of_contents(body)
        number = next(self._ids)
        contents = body.get("contents") or []
        last_parts = contents[-1].get("parts", []) if contents else []
        result = next((p["functionResponse"] for p in last_parts if "functionResponse" in p), None)
        tool = _function_tool([d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []], "name")
        city = weather_city(texts[-1]) if texts and result is None else None
        signature = None
        parts: list[dict[str, Any]] = []
        if "thinking" in path.rsplit("/", 1)[-1]:  # …/models/{model}:generateContent
            # generateContent's thoughtSignature is bytes, base64 in JSON (google.genai.types.Part).
            signature = base64.b64encode(f"gsig::gc{number}".encode()).decode()
            self.minted_signatures.add(signature)
            parts.append({"text": "Thinking it over.", "thought": True})
        if tool and city:
            parts.append({"functionCall": {"name": tool, "args": {"city": city}}})
        elif result is not None:
            parts.append({"text": f"The tool said: {json.dumps(result.get('response'))}"})
        else:
            parts.append({"text": answer(texts)})
        if signature:
            parts[-1]["thoughtSignature"] = signature
        return parts, texts

    def _check_generate_signatures(self, body: dict[str, Any]) -> web.Response | None:
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                if "thoughtSignature" in part:
                    if not self._valid(part["thoughtSignature"]):
                        return _error(400, "invalid_argument", "Thought signature is not valid.")
                    self.signatures_received.append(part["thoughtSignature"])
        return None

    async def _stream_generate(self, request: web.Request, path: str, body: dict[str, Any]) -> web.StreamResponse:
        refused = self._check_generate_signatures(body) or self._mismatch(_user_texts_of_contents(body))
        if refused is not None:
            return refused
        model_parts, texts = self._generate_parts(path, body)
        pieces: list[dict[str, Any]] = []
        for part in model_parts:
            if "text" in part and not part.get("thought"):
                pieces += [{"text": word} for word in word_pieces(part["text"])]
                if "thoughtSignature" in part:
                    pieces[-1]["thoughtSignature"] = part["thoughtSignature"]
            else:
                pieces.append(part)
        chunks = []
        for i, piece in enumerate(pieces):
            chunk: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": [piece]}, "index": 0}],
                                     "modelVersion": "gemini-fake-001", "responseId": "gcs1"}
            if i == len(pieces) - 1:
                chunk["candidates"][0]["finishReason"] = "STOP"
                chunk["usageMetadata"] = {"promptTokenCount": 5 * len(texts), "candidatesTokenCount": len(pieces),
                                          "totalTokenCount": 5 * len(texts) + len(pieces)}
            chunks.append(sse_frame(chunk, end=b"\r\n\r\n"))
        return await self._send_stream(request, chunks, error_frame=b'data: {"error": {"code": 500, '
                                       b'"message": "the fake model crashed", "status": "INTERNAL"}}\r\n\r\n',
                                       pause=requested_pause(texts))

    async def _send_stream(self, request: web.Request, frames: list[bytes], error_frame: bytes,
                           pause: float = 0.0) -> web.StreamResponse:
        response = sse_response()
        if self.fault == "bad_chunk":
            off_contract(response, "fault bad_chunk: an event that is not JSON, on purpose")

        async def misbehave(n: int, response: web.StreamResponse) -> Step:
            if n != 3 or self.fault is None:
                return Step.WRITE
            if self.fault == "reset":
                await asyncio.sleep(0.1)  # let what was written reach the client first
                assert request.transport is not None
                request.transport.abort()
                return Step.END
            if self.fault == "error_event":
                await response.write(error_frame)
                await response.write_eof()
                return Step.END
            if self.fault == "bad_chunk":
                await response.write(b"data: {this is not json\n\n")
                return Step.SKIP
            if self.fault == "truncate":
                await response.write_eof()
                return Step.END
            return Step.WRITE

        return await self._write_stream(request, frames, pause=pause, response=response, fault=misbehave)

    def _by_id(self, method: str, interaction_id: str) -> web.Response:
        if not self.stateful or interaction_id not in self.interactions:
            return _error(404, "not_found", f"interaction {interaction_id} not found")
        if method == "DELETE":
            del self.interactions[interaction_id]
            return web.json_response({})
        return web.json_response(self.interactions[interaction_id])

    async def _generate(self, path: str, body: dict[str, Any]) -> web.Response:
        refused = self._check_generate_signatures(body) or self._mismatch(_user_texts_of_contents(body))
        if refused is not None:
            return refused
        counted = contents_tokens(body)
        if self.context_window is not None and counted > self.context_window:
            return web.json_response({"error": {
                "code": 400, "status": "INVALID_ARGUMENT",
                "message": f"The input token count ({counted}) exceeds the maximum number of tokens allowed "
                           f"({self.context_window})."}}, status=400)
        parts, texts = self._generate_parts(path, body)
        await self._wait(texts)
        prompt = counted if self.context_window is not None else 5 * len(texts)
        return web.json_response({
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": 6,
                              "totalTokenCount": prompt + 6},
            "modelVersion": "gemini-fake-001",
            "responseId": f"gc{next(self._ids)}",
        })


def contents_tokens(body: dict[str, Any]) -> int:
    """A generateContent body's prompt by the shared rule: its system instruction and each content
    (text, function calls' names and arguments, function responses)."""
    def text(content: Any) -> str:
        pieces = []
        for part in (content or {}).get("parts", []):
            if "text" in part:
                pieces.append(part["text"])
            for key in ("functionCall", "functionResponse"):
                if key in part:
                    pieces.append(part[key].get("name", "") + json.dumps(part[key].get("args")
                                                                         or part[key].get("response")))
        return "".join(pieces)
    system = [text(body["systemInstruction"])] if body.get("systemInstruction") else []
    return count_tokens([*system, *(text(c) for c in body.get("contents", []))])


def _user_texts_of_contents(body: dict[str, Any]) -> list[str]:
    """The user messages in a generateContent body's `contents` (one per content with text)."""
    texts = []
    for content in body.get("contents", []):
        pieces = [part["text"] for part in content.get("parts", []) if "text" in part]
        if content.get("role") == "user" and pieces:
            texts.append("".join(pieces))
    return texts


def _function_tool(tools: Any, key: str) -> str | None:
    """The name of the first function tool declared, if any."""
    for tool in tools or []:
        if isinstance(tool, dict) and tool.get("type", "function") == "function" and tool.get(key):
            return tool[key]
    return None


def _user_texts_of_input(value: Any) -> list[str]:
    """The user messages in an Interactions `input`, whatever its shape."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [value.get("text", "")] if value.get("type", "text") == "text" else []
    texts: list[str] = []
    for item in value or []:
        if item.get("type") == "user_input" or item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                texts.append(content)
            else:
                texts.append("".join(c.get("text", "") for c in content or [] if c.get("type", "text") == "text"))
        elif item.get("type") == "text":
            texts.append(item.get("text", ""))
    return texts


def _minted_by_a_fake(signature: Any) -> bool:
    if not isinstance(signature, str):
        return False
    if "::" in signature:
        return True
    try:
        return b"::" in base64.b64decode(signature, validate=True)
    except ValueError:
        return False


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
