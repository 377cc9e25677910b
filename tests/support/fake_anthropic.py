"""A fake Anthropic Messages provider on loopback.

Stateless, as Anthropic is: it refuses recall's `previous_interaction_id`,
requires `anthropic-version`, and answers from the whole `messages` history it
receives. It calls the declared tool when the user asks about the weather in a
city, and streams the events of spec section 6.3. With `thinking` enabled it
thinks first, with a signature it checks when the thinking block comes back.
An answer longer than `max_tokens` words is cut there (`stop_reason: max_tokens`).
`context_window=N` gives its model a window of N tokens, counted by the shared rule
(tests/support/tokens.py): a prompt over it is refused as Anthropic refuses it (400
invalid_request_error "prompt is too long: N tokens > M maximum"), and usage reports the
count. `POST /v1/messages/count_tokens` counts a request's prompt by that rule.

Like every fake provider it refuses a `chain C turn N` message that arrives
without exactly its chain's earlier turns, and waits when the last message
asks for `[pause Ns]` (brain.history_problem, brain.requested_pause).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .brain import answer, requested_pause, weather_city
from .serving import FakeProvider, sse_frame, word_pieces
from .tokens import count_tokens


@dataclass
class FakeAnthropic(FakeProvider):
    name = "fake Anthropic"
    # Thinking signatures the fake handed out, and those that came back to it.
    minted_signatures: set[str] = field(default_factory=set)
    signatures_received: list[str] = field(default_factory=list)
    # The model's context window in tokens (tests/support/tokens.py counts them); None: unlimited.
    context_window: int | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        counting = request.path == "/v1/messages/count_tokens"
        if request.method != "POST" or (request.path != "/v1/messages" and not counting):
            return _error(404, "not_found_error", f"fake anthropic has no route {request.method} {request.path}")
        try:
            return self._count(body) if counting else await self._messages(request, body)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            # Like the real provider: a request it cannot read is a 400, never a crash.
            return _error(400, "invalid_request_error", f"fake anthropic cannot read this request: {exc!r}")

    async def _messages(self, request: web.Request, body: Any) -> web.StreamResponse:
        if "anthropic-version" not in request.headers:
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        if not (request.headers.get("x-api-key") or request.headers.get("authorization")):
            return _error(401, "authentication_error", "x-api-key header is required")
        if "previous_interaction_id" in body:
            return _error(400, "invalid_request_error", "previous_interaction_id: Extra inputs are not permitted")
        refused = _context_management_refusal(body, request.headers.get("anthropic-beta", ""))
        if refused is not None:
            return refused
        messages = _after_compaction(body["messages"])
        for message in messages:
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block.get("type") == "thinking":
                    if block.get("signature") not in self.minted_signatures:
                        return _error(400, "invalid_request_error", "Invalid `signature` in `thinking` block")
                    self.signatures_received.append(block["signature"])
        texts = [_text_of(m["content"]) for m in messages if m["role"] == "user" and _text_of(m["content"])]
        # A compaction block is the conversation before it, summarised: the model reads it first.
        summaries = [b["content"] for b in _blocks(messages[0]) if b.get("type") == "compaction" and b.get("content")]
        compacting = _compact_trigger(body) is not None and 10 * len(messages) >= _compact_trigger(body)
        if problem := self._history_mismatch(texts):
            return _error(400, "invalid_request_error", problem)
        counted = prompt_tokens(body)
        if self.context_window is not None and counted > self.context_window:
            return _error(400, "invalid_request_error", f"prompt is too long: {counted} tokens > "
                          f"{self.context_window} maximum")
        pause = requested_pause(texts)
        last = messages[-1]["content"]
        answered_tool = isinstance(last, list) and any(b.get("type") == "tool_result" for b in last)
        message_id = f"msg_fake{next(self._ids)}"
        content: list[dict[str, Any]] = []
        if compacting:  # compact_20260112: the summary first, then the answer from it
            content.append({"type": "compaction", "content": "Summary: " + " | ".join([*summaries, *texts])})
        if (body.get("thinking") or {}).get("type") == "enabled":
            signature = f"asig::{message_id}"
            self.minted_signatures.add(signature)
            content.append({"type": "thinking", "thinking": "Thinking it over.", "signature": signature})
        city = weather_city(texts[-1]) if texts and not answered_tool else None
        if body.get("tools") and city:
            content.append({"type": "tool_use", "id": f"toolu_{message_id}", "name": body["tools"][0]["name"],
                            "input": {"city": city}})
            stop = "tool_use"
        else:
            reply = answer([*summaries, *texts])
            if answered_tool:
                reply += " The tool said: " + json.dumps([b.get("content") for b in last if b.get("type") == "tool_result"])
            stop = "end_turn"
            if len(reply.split(" ")) > body["max_tokens"]:  # a word a token: cut off at the limit
                reply, stop = " ".join(reply.split(" ")[: body["max_tokens"]]), "max_tokens"
            content.append({"type": "text", "text": reply})
        message = {"id": message_id, "type": "message", "role": "assistant", "model": body["model"],
                   "content": content, "stop_reason": stop, "stop_sequence": None,
                   "usage": {"input_tokens": counted if self.context_window is not None else 10 * len(messages),
                             "output_tokens": 7}}
        if "context_management" in body:
            message["context_management"] = {"applied_edits": []}
        if not body.get("stream"):
            await asyncio.sleep(pause)
            return web.json_response(message, headers={"request-id": f"req_{message_id}"})
        return await self._stream(request, message, pause)

    def _count(self, body: Any) -> web.Response:
        """POST /v1/messages/count_tokens: the request's prompt tokens ({"input_tokens": N})."""
        for required in ("model", "messages"):
            if required not in body:
                return _error(400, "invalid_request_error", f"{required}: Field required")
        for extra in ("previous_interaction_id", "max_tokens", "stream"):
            if extra in body:
                return _error(400, "invalid_request_error", f"{extra}: Extra inputs are not permitted")
        return web.json_response({"input_tokens": prompt_tokens(body)})

    async def _stream(self, request: web.Request, message: dict[str, Any], pause: float) -> web.StreamResponse:
        frames: list[bytes] = []

        def send(kind: str, payload: dict[str, Any]) -> None:
            frames.append(sse_frame({"type": kind, **payload}, kind))

        start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1}}
        send("message_start", {"message": start})
        send("ping", {})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                send("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                for piece in word_pieces(block["text"]):
                    send("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}})
            elif block["type"] == "compaction":
                send("content_block_start", {"index": index, "content_block": {"type": "compaction", "content": None}})
                send("content_block_delta", {"index": index, "delta": {"type": "compaction_delta",
                                                                       "content": block["content"]}})
            elif block["type"] == "thinking":
                send("content_block_start", {"index": index, "content_block": {
                    "type": "thinking", "thinking": "", "signature": ""}})
                send("content_block_delta", {"index": index, "delta": {"type": "thinking_delta",
                                                                       "thinking": block["thinking"]}})
                send("content_block_delta", {"index": index, "delta": {"type": "signature_delta",
                                                                       "signature": block["signature"]}})
            else:
                send("content_block_start", {"index": index, "content_block": {**block, "input": {}}})
                raw = json.dumps(block["input"])
                for piece in (raw[: len(raw) // 2], raw[len(raw) // 2:]):
                    send("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})
            send("content_block_stop", {"index": index})
        send("message_delta", {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                               "usage": {"output_tokens": message["usage"]["output_tokens"]}})
        send("message_stop", {})
        return await self._write_stream(request, frames, pause=pause)

def prompt_tokens(body: dict[str, Any]) -> int:
    """A request's prompt by the shared rule: its system prompt and each message (text, tool
    calls' names and inputs, tool results)."""
    system = body.get("system")
    items = [system if isinstance(system, str) else _text_of(system)] if system else []
    return count_tokens([*items, *(_message_text(m["content"]) for m in body["messages"])])


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    pieces = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            pieces.append(block.get("text", ""))
        elif kind == "tool_use":
            pieces.append(block.get("name", "") + json.dumps(block.get("input")))
        elif kind == "tool_result":
            result = block.get("content")
            pieces.append(result if isinstance(result, str) else _text_of(result or []))
    return "".join(pieces)


# Beta headers context management needs (Anthropic's docs: context editing, compaction).
_EDIT_BETAS = {"clear_tool_uses_20250919": "context-management-2025-06-27",
               "clear_thinking_20251015": "context-management-2025-06-27", "compact_20260112": "compact-2026-01-12"}


def _context_management_refusal(body: dict[str, Any], betas: str) -> web.Response | None:
    for edit in (body.get("context_management") or {}).get("edits") or []:
        beta = _EDIT_BETAS.get(edit.get("type"))
        if beta is None:
            return _error(400, "invalid_request_error", f"context_management.edits: unknown edit {edit.get('type')!r}")
        if beta not in betas.split(","):
            return _error(400, "invalid_request_error", f"context_management: {edit['type']} needs the beta header "
                                                        f"anthropic-beta: {beta}")
    return None


def _compact_trigger(body: dict[str, Any]) -> int | None:
    """The input tokens at which a compact_20260112 edit compacts (150000 unless it says)."""
    for edit in (body.get("context_management") or {}).get("edits") or []:
        if edit.get("type") == "compact_20260112":
            return int((edit.get("trigger") or {}).get("value") or 150_000)
    return None


def _after_compaction(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages from the newest compaction block on, as Anthropic reads them ("the API
    drops all message blocks prior to the compaction block")."""
    for index in range(len(messages) - 1, -1, -1):
        blocks = _blocks(messages[index])
        at = next((n for n, b in enumerate(blocks) if b.get("type") == "compaction"), None)
        if at is not None:
            return [{**messages[index], "content": blocks[at:]}, *messages[index + 1:]]
    return messages


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)
