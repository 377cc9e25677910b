"""A fake OpenAI provider on loopback: Responses and Chat Completions.

Stateless by default, like a zero-data-retention organisation: it refuses
`previous_response_id`, `store` other than false and `background`, and answers
from the whole history each request carries (tests/support/brain.py). Reasoning
models return a reasoning item when the request has `reasoning`; with
`include: ["reasoning.encrypted_content"]` the item carries encrypted content
that the fake checks when it comes back, and a reasoning item sent back without
it is refused as OpenAI refuses it under store=false. `stateful=True` keeps
responses (previous ids, retrieve, delete) for native-mode tests;
`chat_only=True` serves Chat Completions alone, like vLLM or Ollama.
`context_window=N` gives its model a window of N tokens, counted by the shared rule
(tests/support/tokens.py): an input over it is refused as OpenAI refuses it (400
`context_length_exceeded`), and usage reports the count. `POST /v1/responses/input_tokens`
counts a create's input by that rule.

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
from .serving import FakeProvider, Step, sse_frame, word_pieces
from .tokens import count_tokens

ENCRYPTED = "reasoning.encrypted_content"
NON_REASONING_MODELS = ("gpt-4o", "gpt-4.1")
_CHAT_KEYS = frozenset({
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "reasoning_effort", "response_format", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
})


@dataclass
class FakeOpenAI(FakeProvider):
    name = "fake OpenAI"
    stateful: bool = False
    chat_only: bool = False
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Encrypted reasoning the fake handed out, and what came back to it.
    minted_reasoning: set[str] = field(default_factory=set)
    reasoning_received: list[str] = field(default_factory=list)
    # `hold` holds a whole answer too. A stream that stops after its fourth event, with no terminal event.
    truncate: bool = False
    # Compaction items the fake handed out (`encrypted_content`), checked when they come back.
    minted_compactions: set[str] = field(default_factory=set)
    # Every body the fake answered, byte for byte (a stream's events joined).
    answers: list[bytes] = field(default_factory=list)
    # Prompts stored at the provider (`prompt: {"id": …}` on a create): id -> the model it names.
    prompts: dict[str, str] = field(default_factory=dict)
    # Answer every stream request with the whole JSON reply instead (what a contract that
    # declares no event stream for a path allows, and what mock servers built from it do).
    whole_for_streams: bool = False
    # The model's context window in tokens (tests/support/tokens.py counts them); None: unlimited.
    context_window: int | None = None

    def bodies(self, path: str) -> list[Any]:
        return [seen.body for seen in self.requests if seen.path == path]

    # -- routing -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._serve(request)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            # Like the real provider: a request it cannot read is a 400, never a crash.
            return openai_error(400, f"fake openai cannot read this request: {exc!r}")

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        path = request.path
        if path == "/v1/chat/completions" and request.method == "POST":
            return await self._chat(request, body)
        if self.chat_only:
            return openai_error(404, f"fake chat-only server has no route {request.method} {path}", code="not_found")
        if path == "/v1/responses" and request.method == "POST":
            return await self._create(request, body)
        if path == "/v1/responses/input_tokens" and request.method == "POST":
            return self._count(body)
        if path == "/v1/responses/compact" and request.method == "POST":
            return self._compact(body)
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[1] == "responses":
            return self._by_id(request.method, parts[2])
        return openai_error(404, f"fake openai has no route {request.method} {path}", code="not_found")

    # -- Responses -----------------------------------------------------------------

    def _refusal(self, body: dict[str, Any]) -> web.Response | None:
        previous = body.get("previous_response_id")
        if not self.stateful:
            if previous:
                return openai_error(400, f"Previous response with id '{previous}' not found.",
                              param="previous_response_id", code="previous_response_not_found")
            if body.get("store") is not False:
                return openai_error(400, "This organization has zero data retention: store must be false.", param="store")
            for key in ("background", "conversation"):
                if body.get(key):
                    return openai_error(400, f"{key} needs stored responses, which zero data retention forbids.", param=key)
        elif previous and previous not in self.histories:
            return openai_error(400, f"Previous response with id '{previous}' not found.",
                          param="previous_response_id", code="previous_response_not_found")
        prompt = body.get("prompt")
        if prompt is not None:
            prompt_id = prompt.get("id") if isinstance(prompt, dict) else None
            if prompt_id not in self.prompts:
                return openai_error(404, f"Prompt with id '{prompt_id}' not found.", param="prompt")
        elif not body.get("model"):
            # OpenAI: the model comes from the request or from the stored prompt it names.
            return openai_error(400, "Missing required parameter: 'model'.", param="model",
                          code="missing_required_parameter")
        if (refused := _check_tools(body.get("tools"))) is not None:
            return refused
        include = body.get("include") or []
        if ENCRYPTED in include and str(body.get("model", "")).startswith(NON_REASONING_MODELS):
            return openai_error(400, "Encrypted content is not supported with this model.", param="include")
        return None

    def _check_items(self, items: list[dict[str, Any]]) -> web.Response | None:
        """Input items as OpenAI checks them under store=false."""
        calls: set[str] = set()
        for item in items:
            kind = item.get("type") or ("message" if "role" in item else None)
            if kind == "reasoning":
                encrypted = item.get("encrypted_content")
                if not encrypted:
                    return openai_error(404, f"Item with id '{item.get('id')}' not found. Items are not persisted when "
                                       "`store` is set to false.", param="input")
                if encrypted not in self.minted_reasoning:
                    return openai_error(400, "The encrypted content could not be verified.", param="input")
                self.reasoning_received.append(encrypted)
            elif kind == "compaction" and item.get("encrypted_content") not in self.minted_compactions:
                return openai_error(400, "The encrypted content of the compaction item could not be verified.",
                                    param="input")
            elif kind == "function_call":
                calls.add(item.get("call_id"))
            elif kind == "function_call_output" and item.get("call_id") not in calls:
                return openai_error(400, f"No tool call found for function call output with call_id "
                                   f"{item.get('call_id')}.", param="input")
        return None

    def _mismatch(self, texts: list[str]) -> web.Response | None:
        """A 400 when a conversation arrives without its whole history."""
        problem = self._history_mismatch(texts)
        return None if problem is None else openai_error(400, problem, code="history_mismatch")

    def _items(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of a create's conversation: the stored history of its previous id, then its input."""
        previous = body.get("previous_response_id")
        raw_input = body.get("input")
        new_items = [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else list(raw_input or [])
        return [*self.histories.get(previous, []), *new_items] if previous else new_items

    def _reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The Response for a create whose full item history is known."""
        previous = body.get("previous_response_id")
        items = self._items(body)
        response_id = f"resp_fake{next(self._ids)}"
        output: list[dict[str, Any]] = []
        if body.get("reasoning") and not str(body.get("model", "")).startswith(NON_REASONING_MODELS):
            reasoning: dict[str, Any] = {"id": f"rs_{response_id}", "type": "reasoning",
                                         "summary": [{"type": "summary_text", "text": "Thinking it over."}]}
            if ENCRYPTED in (body.get("include") or []):
                encrypted = f"enc::{response_id}"
                self.minted_reasoning.add(encrypted)
                reasoning["encrypted_content"] = encrypted
            output.append(reasoning)
        threshold = next((entry.get("compact_threshold") for entry in body.get("context_management") or []
                          if entry.get("type") == "compaction"), None)
        if threshold is not None and 10 * len(_user_texts(items)) >= threshold:
            # Server-side compaction: the compaction item first, in the same response (no store needed).
            encrypted = f"cmp::{response_id}"
            self.minted_compactions.add(encrypted)
            output.append({"id": f"cmp_{response_id}", "type": "compaction", "encrypted_content": encrypted})
        last = items[-1] if items else {}
        city = weather_city(message_text(last)) if last.get("role") == "user" else None
        if body.get("tools") and city:
            output.append({"id": f"fc_{response_id}", "type": "function_call", "status": "completed",
                           "call_id": f"call_{response_id}", "name": body["tools"][0]["name"],
                           "arguments": json.dumps({"city": city})})
        else:
            if last.get("type") == "function_call_output":
                text = f"The tool said: {last.get('output')}"
            else:
                text = answer(_user_texts(items))
            output.append({"id": f"msg_{response_id}", "type": "message", "role": "assistant",
                           "status": "completed",
                           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
        user_count = len(_user_texts(items))
        counted = self.input_tokens(body) if self.context_window is not None else 10 * user_count
        response = {
            "id": response_id, "object": "response", "created_at": 1760000000, "status": "completed",
            "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
            "model": body.get("model") or self.prompts.get((body.get("prompt") or {}).get("id")), "output": output,
            "parallel_tool_calls": True, "previous_response_id": previous, "store": body.get("store", True),
            # A function tool as a Response states it: `strict` (true unless the request said false)
            # and `parameters` always there (FunctionTool requires both).
            "tools": [{**t, "strict": t.get("strict") is not False, "parameters": t.get("parameters")}
                      if isinstance(t, dict) and t.get("type") == "function" else t for t in body.get("tools", [])],
            "tool_choice": "auto", "text": {"format": {"type": "text"}},
            # Required in a Response (openai-v3.3.1.yml, ResponseProperties / ModelResponseProperties).
            "metadata": body.get("metadata") or {}, "temperature": 1.0, "top_p": 1.0,
            "usage": {"input_tokens": counted, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                      "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3 if len(output) > 1 else 0},
                      "total_tokens": counted + 7},
        }
        if self.stateful and body.get("store", True) is not False:
            self.responses[response_id] = response
            self.histories[response_id] = [*items, *output]
        return response

    async def _create(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        refused = self._refusal(body) or _bad_metadata(body.get("metadata"))
        if refused is None and isinstance(body.get("input"), list):
            refused = self._check_items(body["input"])
        texts = _user_texts(self._items(body))
        refused = refused or self._mismatch(texts) or self._too_long(body)
        if refused is not None:
            return refused
        response = self._reply(body)
        pause = requested_pause(texts)
        if not body.get("stream") or self.whole_for_streams:
            return await self._whole(response, pause)
        return await self._send_stream(request, _response_events(response), done=False, pause=pause)

    def input_tokens(self, body: dict[str, Any]) -> int:
        """A create's input tokens by the shared rule: its instructions and every item of its conversation."""
        instructions = [body["instructions"]] if body.get("instructions") else []
        return count_tokens([*instructions, *(_item_text(item) for item in self._items(body))])

    def _too_long(self, body: dict[str, Any]) -> web.Response | None:
        """OpenAI's refusal of an input over the model's window (Responses: no figures in the message)."""
        if self.context_window is None or self.input_tokens(body) <= self.context_window:
            return None
        return openai_error(400, "Your input exceeds the context window of this model. Please adjust your input and "
                            "try again.", param="input", code="context_length_exceeded")

    def _count(self, body: dict[str, Any]) -> web.Response:
        """POST /v1/responses/input_tokens (TokenCountsBody -> TokenCountsResource)."""
        previous = body.get("previous_response_id")
        if previous and previous not in self.histories:
            return openai_error(400, f"Previous response with id '{previous}' not found.",
                                param="previous_response_id", code="previous_response_not_found")
        return self._json({"object": "response.input_tokens", "input_tokens": self.input_tokens(body)})

    def _compact(self, body: dict[str, Any]) -> web.Response:
        """POST /v1/responses/compact as OpenAI answers it (openai-v3.3.1.yml, CompactResource): every user
        message of the conversation, then one opaque compaction item. Stateless: `input` only."""
        if body.get("previous_response_id"):
            return openai_error(400, f"Previous response with id '{body['previous_response_id']}' not found.",
                                param="previous_response_id", code="previous_response_not_found")
        if not body.get("model"):
            return openai_error(400, "Missing required parameter: 'model'.", param="model",
                                code="missing_required_parameter")
        items = self._items(body)
        refused = self._check_items(items)
        if refused is not None:
            return refused
        number = next(self._ids)
        encrypted = f"cmp::{number}"
        self.minted_compactions.add(encrypted)
        texts = _user_texts(items)
        output: list[dict[str, Any]] = [
            {"id": f"msg_cmpfake{number}_{n}", "type": "message", "status": "completed", "role": "user",
             "content": [{"type": "input_text", "text": text}]} for n, text in enumerate(texts)]
        output.append({"id": f"cmp_fake{number}", "type": "compaction", "encrypted_content": encrypted})
        return self._json({"id": f"resp_cmpfake{number}", "object": "response.compaction", "created_at": 1760000000,
                           "output": output,
                           "usage": {"input_tokens": 10 * len(texts),
                                     "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                                     "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 0},
                                     "total_tokens": 10 * len(texts) + 50}})

    def _by_id(self, method: str, response_id: str) -> web.Response:
        if not self.stateful or response_id not in self.responses:
            return openai_error(404, f"Response with id '{response_id}' not found.")
        if method == "DELETE":
            del self.responses[response_id]
            return self._json({"id": response_id, "object": "response.deleted", "deleted": True})
        return self._json(self.responses[response_id])

    # -- Chat Completions ------------------------------------------------------------

    async def _chat(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        # OpenAI's own Chat Completions take a prompt cache key; a chat-only server (vLLM…) is not sent one.
        known = _CHAT_KEYS if self.chat_only else _CHAT_KEYS | {"prompt_cache_key"}
        unknown = sorted(set(body) - known)
        if unknown:
            return openai_error(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        if (refused := _check_tools(body.get("tools"))) is not None:
            return refused
        messages = body["messages"]
        calls = {c["id"] for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []}
        for message in messages:
            if message.get("role") == "tool" and message.get("tool_call_id") not in calls:
                return openai_error(400, "Invalid parameter: messages with role 'tool' must be a response to a preceding "
                                   "message with 'tool_calls'.", param="messages")
        user_texts = [message_text(m) for m in messages if m.get("role") == "user"]
        if (refused := self._mismatch(user_texts)) is not None:
            return refused
        counted = count_tokens(_chat_text(m) for m in messages)
        if self.context_window is not None and counted > self.context_window:
            return openai_error(400, f"This model's maximum context length is {self.context_window} tokens. However, "
                                f"your messages resulted in {counted} tokens. Please reduce the length of the "
                                "messages.", param="messages", code="context_length_exceeded")
        number = next(self._ids)
        last = messages[-1]
        city = weather_city(message_text(last)) if last.get("role") == "user" else None
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
        if body.get("tools") and city:
            message["tool_calls"] = [{"id": f"call_chat{number}", "type": "function", "function": {
                "name": body["tools"][0]["function"]["name"], "arguments": json.dumps({"city": city})}}]
            finish = "tool_calls"
        else:
            message["content"] = (f"The tool said: {last['content']}" if last.get("role") == "tool"
                                  else answer(user_texts))
            finish = "stop"
        if body.get("reasoning_effort"):  # as vLLM and DeepSeek show a reasoning model's thinking
            message["reasoning_content"] = "Thinking it over."
        system = [m for m in messages if m.get("role") in ("system", "developer")]
        prompt = counted if self.context_window is not None else 5 * len(messages) + len(system)
        usage = {"prompt_tokens": prompt, "completion_tokens": 6, "total_tokens": prompt + 6}
        completion = {"id": f"chatcmpl-fake{number}", "object": "chat.completion", "created": 1760000000,
                      "model": body["model"], "choices": [{"index": 0, "message": message, "finish_reason": finish,
                                                          "logprobs": None}],
                      "usage": usage, "system_fingerprint": "fp_fake", "service_tier": "default"}
        pause = requested_pause(user_texts)
        if not body.get("stream") or self.whole_for_streams:
            return await self._whole(completion, pause)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._send_stream(request, _chat_chunks(completion, include_usage), done=True, pause=pause)

    # -- streams ---------------------------------------------------------------------

    async def _whole(self, payload: dict[str, Any], pause: float) -> web.Response:
        """A whole answer, once its pause has passed and nothing holds it."""
        await asyncio.sleep(pause)
        if self.hold is not None:
            await self.hold.wait()
        return self._json(payload)

    def _json(self, payload: dict[str, Any]) -> web.Response:
        body = json.dumps(payload).encode()
        self.answers.append(body)
        return web.Response(body=body, content_type="application/json")

    async def _send_stream(self, request: web.Request, events: list[bytes], *, done: bool,
                           pause: float = 0.0) -> web.StreamResponse:
        events = [*events, *([b"data: [DONE]\n\n"] if done else [])]
        self.answers.append(b"".join(events))
        return await self._write_stream(request, events, pause=pause, fault=self._truncation if self.truncate else None)

    @staticmethod
    async def _truncation(n: int, response: web.StreamResponse) -> Step:
        if n < 4:
            return Step.WRITE
        await response.write_eof()
        return Step.END

def _response_events(response: dict[str, Any]) -> list[bytes]:
    """A Response as the stream events OpenAI sends for it (spec 4.6)."""
    shell = {**response, "status": "in_progress", "output": []}
    del shell["usage"]  # none yet: OpenAI's description has no null usage
    events: list[dict[str, Any]] = [{"type": "response.created", "response": shell},
                                    {"type": "response.in_progress", "response": shell}]
    for index, item in enumerate(response["output"]):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events += [{"type": "response.output_item.added", "output_index": index,
                        "item": {**item, "status": "in_progress", "content": []}},
                       {"type": "response.content_part.added", **where, "content_index": 0, "part": part}]
            events += [{"type": "response.output_text.delta", **where, "content_index": 0, "logprobs": [],
                        "delta": piece} for piece in word_pieces(text)]
            events += [{"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []},
                       {"type": "response.content_part.done", **where, "content_index": 0,
                        "part": item["content"][0]}]
        elif item["type"] == "function_call":
            events += [{"type": "response.output_item.added", "output_index": index,
                        "item": {**item, "arguments": "", "status": "in_progress"}},
                       {"type": "response.function_call_arguments.delta", **where, "delta": item["arguments"][:5]},
                       {"type": "response.function_call_arguments.delta", **where, "delta": item["arguments"][5:]},
                       {"type": "response.function_call_arguments.done", **where, "name": item["name"],
                        "arguments": item["arguments"]}]
        elif item["type"] == "compaction":
            events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        else:
            summary = item["summary"][0]
            events += [{"type": "response.output_item.added", "output_index": index,
                        "item": {"id": item["id"], "type": "reasoning", "summary": []}},
                       {"type": "response.reasoning_summary_part.added", **where, "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""}},
                       {"type": "response.reasoning_summary_text.delta", **where, "summary_index": 0,
                        "delta": summary["text"]},
                       {"type": "response.reasoning_summary_text.done", **where, "summary_index": 0,
                        "text": summary["text"]},
                       {"type": "response.reasoning_summary_part.done", **where, "summary_index": 0, "part": summary}]
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": response})
    return [sse_frame({**e, "sequence_number": n}, e["type"]) for n, e in enumerate(events)]


def _chat_chunks(completion: dict[str, Any], include_usage: bool) -> list[bytes]:
    """A chat completion as the chunks OpenAI streams for it (spec 5.2)."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    message = completion["choices"][0]["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    if message.get("reasoning_content"):
        chunks.append(chunk({"reasoning_content": message["reasoning_content"]}))
    if message["content"]:
        chunks += [chunk({"content": piece}) for piece in word_pieces(message["content"])]
    for n, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        chunks.append(chunk({"tool_calls": [{"index": n, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        chunks += [chunk({"tool_calls": [{"index": n, "function": {"arguments": piece}}]})
                   for piece in (arguments[:6], arguments[6:])]
    chunks.append(chunk({}, completion["choices"][0]["finish_reason"]))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return [sse_frame(c) for c in chunks]


def message_text(item: dict[str, Any]) -> str:
    """The text of a message (Responses input item or chat message): its string content, or its parts' text joined."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content or [] if isinstance(c, dict))


def _item_text(item: dict[str, Any]) -> str:
    """The text of a Responses input item, as the shared token rule counts it."""
    kind = item.get("type") or "message"
    if kind == "function_call":
        return f"{item.get('name', '')}{item.get('arguments', '')}"
    if kind == "function_call_output":
        output = item.get("output")
        return output if isinstance(output, str) else json.dumps(output)
    if kind == "message":
        return message_text(item)
    return ""  # reasoning: its encrypted content is not counted


def _chat_text(message: dict[str, Any]) -> str:
    """The text of a chat message, its tool calls' names and arguments included."""
    calls = "".join(f"{c['function']['name']}{c['function']['arguments']}" for c in message.get("tool_calls") or [])
    return (message_text(message) if message.get("content") else "") + calls


def _user_texts(items: list[dict[str, Any]]) -> list[str]:
    """The user messages among Responses input items."""
    return [message_text(item) for item in items
            if (item.get("type") or "message") == "message" and item.get("role") == "user"]


def _bad_metadata(metadata: Any) -> web.Response | None:
    """OpenAI refuses metadata that is not up to 16 string pairs (openai-v3.3.1.yml, Metadata);
    a Response repeats it, so the fake must not accept what OpenAI would not."""
    if metadata is None or (isinstance(metadata, dict) and len(metadata) <= 16
                            and all(isinstance(v, str) for v in metadata.values())):
        return None
    return openai_error(400, "Invalid 'metadata': expected up to 16 string key-value pairs.", param="metadata")


def openai_error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> web.Response:
    """An error in OpenAI's shape (Responses and Chat Completions alike)."""
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                        "code": code}}, status=status)


def _check_tools(tools: Any) -> web.Response | None:
    """OpenAI refuses a tool that is not an object with a type (its own messages and codes)."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        return openai_error(400, f"Invalid type for 'tools': expected an array, but got {type(tools).__name__} instead.",
                            param="tools", code="invalid_type")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return openai_error(400, f"Invalid type for 'tools[{index}]': expected an object, but got"
                                f" {type(tool).__name__} instead.", param=f"tools[{index}]", code="invalid_type")
        if not isinstance(tool.get("type"), str):
            return openai_error(400, f"Missing required parameter: 'tools[{index}].type'.",
                                param=f"tools[{index}].type", code="missing_required_parameter")
    return None
