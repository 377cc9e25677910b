"""Parallel's Responses API (`POST /v1/responses`), as the fake Parallel serves it.

What it does follows Parallel's field-by-field compatibility page
(https://docs.parallel.ai/responses-api/openai-compatibility, read December 2026;
docs/PARALLEL_RESPONSES.md): model `parallel` only; `input` a string or `{role, content}`
messages, text only, with at least one user message; `background` refused; `store`,
`truncation`, `temperature`, `include`… accepted and ignored; `reasoning` and `text` echoed
as null, ignored fields at their defaults; the answer's sources as `url_citation`
annotations; a stream of the OpenAI event sequence with the whole answer in one text
delta and one `annotation.added` event per citation. A stateful fake keeps every response
(Parallel does, whatever `store` says); a stateless one refuses `previous_response_id`, as
the Task API fake does for a zero-data-retention account.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .brain import requested_pause, research_answer
from .fake_openai import message_text, openai_error
from .serving import sse_frame

if TYPE_CHECKING:
    from .fake_parallel import FakeParallel

PATH = "/v1/responses"
SOURCE = {"url": "https://example.org/fake-almanac", "title": "Fake almanac"}


def _refusal(fake: FakeParallel, body: Any) -> web.Response | None:
    """Parallel's documented 400s (its "Rejected" table), in the OpenAI error envelope."""
    if not isinstance(body, dict):
        return openai_error(400, "Request validation error. [the body is not a JSON object]")
    if str(body.get("model", "")).lower() != "parallel":
        return openai_error(400, "The Responses API only supports model 'parallel'.")
    if body.get("background"):
        return openai_error(400, "background mode is not supported on /v1/responses; submit long-running work via "
                                 "the Task API (POST /v1/tasks/runs) instead.")
    value = body.get("input")
    if not value:
        return openai_error(400, "input must not be empty.")
    if isinstance(value, list):
        for message in value:
            content = message.get("content") if isinstance(message, dict) else None
            kinds = [p.get("type") for p in content if isinstance(p, dict)] if isinstance(content, list) else []
            odd = sorted({k for k in kinds if k not in ("input_text", "output_text", "text")})
            if odd:
                return openai_error(400, f"input contains unsupported non-text content parts: {', '.join(odd)}"
                                         " (this endpoint only accepts text input today)")
        if not any(isinstance(m, dict) and m.get("role") == "user" for m in value):
            return openai_error(400, "input must contain at least one user message.")
    previous = body.get("previous_response_id")
    if previous and not fake.stateful:
        return openai_error(400, f"Previous response with id '{previous}' not found.", param="previous_response_id")
    if previous and previous not in fake.response_memory:
        return openai_error(404, f"Response with id '{previous}' not found.", param="previous_response_id")
    return None


def _messages(value: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": value}] if isinstance(value, str) else list(value)


def create(fake: FakeParallel, body: Any) -> tuple[web.Response | None, dict[str, Any] | None, float]:
    """Parallel's answer to a create: (a refusal, None, 0) or (None, the Response, its pause)."""
    refused = _refusal(fake, body)
    if refused is not None:
        return refused, None, 0.0
    previous = body.get("previous_response_id")
    earlier = fake.response_memory.get(previous, []) if previous else []
    messages = [*earlier, *_messages(body["input"])]
    user_texts = [message_text(m) for m in messages if m.get("role") == "user"]
    if problem := fake._history_mismatch(user_texts):
        return openai_error(400, problem), None, 0.0
    context = "\n".join(message_text(m) for m in messages[:-1])
    text = research_answer(user_texts[-1], context, user_texts)
    n = next(fake._ids)
    response_id = f"resp_par{n}"
    citation = {"type": "url_citation", **SOURCE, "start_index": 0, "end_index": len(text)}
    output = [
        {"id": f"ws_par{n}", "type": "web_search_call", "status": "completed",
         "action": {"type": "search", "query": user_texts[-1][:80]}},
        {"id": f"msg_par{n}", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": text, "annotations": [citation], "logprobs": []}]},
    ]
    response = {
        "id": response_id, "object": "response", "created_at": 1760000000, "status": "completed", "error": None,
        "incomplete_details": None, "instructions": body.get("instructions"), "model": "parallel", "output": output,
        "previous_response_id": previous, "metadata": body.get("metadata") or {},
        # Ignored fields come back at their defaults; reasoning and text as null (Parallel's note).
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "temperature": None, "top_p": None,
        "reasoning": None, "text": None, "store": True, "truncation": "disabled",
        "usage": {"input_tokens": 12 * len(user_texts),
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 12 * len(user_texts) + 9},
    }
    # Parallel keeps every response, whatever `store` says; a zero-data-retention fake keeps none.
    if fake.stateful:
        fake.response_memory[response_id] = [*messages, {"role": "assistant", "content": text}]
    return None, response, requested_pause(user_texts)


def stream_frames(response: dict[str, Any]) -> list[bytes]:
    """The documented event sequence: the answer in one delta, then one annotation event per citation."""
    shell = {**response, "status": "in_progress", "output": []}
    del shell["usage"]
    message_index = len(response["output"]) - 1
    message = response["output"][message_index]
    part = message["content"][0]
    where = {"item_id": message["id"], "output_index": message_index, "content_index": 0}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": shell},
                                    {"type": "response.in_progress", "response": shell}]
    for index, item in enumerate(response["output"][:message_index]):
        events += [{"type": "response.output_item.added", "output_index": index, "item": item},
                   {"type": "response.output_item.done", "output_index": index, "item": item}]
    events += [
        {"type": "response.output_item.added", "output_index": message_index,
         "item": {**message, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **where,
         "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}},
        {"type": "response.output_text.delta", **where, "delta": part["text"], "logprobs": []},
    ]
    events += [{"type": "response.output_text.annotation.added", **where, "annotation_index": i, "annotation": a}
               for i, a in enumerate(part["annotations"])]
    events += [
        {"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []},
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": message_index, "item": message},
        {"type": "response.completed", "response": response},
    ]
    return [sse_frame({**e, "sequence_number": n}, e["type"]) for n, e in enumerate(events)]

