"""Every front API recall serves, as one row each: the reliability and security
tests are tables over FRONT_ROUTES, so a new front API is covered by adding a row.

A row says how to call the API over plain HTTP (paths, a valid body, the key
header), how to read what comes back (the id, the reply text, a stream's id and
error event) and what its errors look like (check_error asserts the shape its
official SDK parses, from shared/specs/). Each row also names the upstream
`api` values it is tested over and the fake provider that plays each one.

A turn is a create, and for an asynchronous API (Parallel's task runs: the
create answers a run still queued) the read of its `result_path` too; such an
API's stream is its `events_path`, read after the create (tests/support/rigs.py
and load.py take turns so). A front API with no stored-item paths (Chat
Completions, Messages) has `item_path` None, and the item tests skip it.

Error shapes in shared/specs/: Gemini Interactions
`{"error": {"code": "<snake_case>", "message"}}`; OpenAI Responses and Chat
`{"error": {"message", "type", "param", "code"}}`; Anthropic Messages
`{"type": "error", "error": {"type", "message"}}`; Parallel
`{"type": "error", "error": {"ref_id", "message", "detail"?}}`.

A fake provider for a row needs what every fake in tests/support/ has:
`start()`, `stop()` (ending paused answers at once), `url`; `requests` (each
with `.path`, `.headers` and `.body`); `stream_delay`, `streams_finished`;
`hold` (an event: while unset, a background turn's answer waits for it); and
brain.history_problem and brain.requested_pause applied to every conversation
it answers (`history_mismatches`), so that load, crash and shutdown tests can
run on it. A request it cannot read is a 400 in its provider's shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .fake_anthropic import FakeAnthropic
from .fake_gemini import FakeGemini
from .fake_openai import FakeOpenAI
from .fake_parallel import FakeParallel

JSON = dict[str, Any]


def assert_no_traceback(response: httpx.Response) -> None:
    """No Python internals in an answer: what the app sees is an error, not a crash."""
    text = response.text
    for leak in ("Traceback (most recent call last)", 'File "/', "proxy/", "site-packages"):
        assert leak not in text, f"{response.status_code} body leaks internals: {text[:500]}"


@dataclass(frozen=True)
class Upstream:
    """One upstream a front API is tested over: its `api` value, the fake that plays it, and state."""

    api: str
    fake: Callable[[], Any]
    state: str = "emulate"
    #: A stateless API over its own wire: a create that names no previous turn goes
    #: to the provider as it is (as every create does in native mode).
    relays_new_turns: bool = False
    #: Tested in the slow run only (`pytest -m slow`, which .ci/run runs): a translated
    #: upstream, whose ways through recall the other pairs already take in the fast run.
    slow: bool = False

    @property
    def label(self) -> str:
        return f"{self.api}-{self.state}"

    @property
    def relays(self) -> bool:
        """Whether a create naming no previous turn is relayed to the provider byte for byte."""
        return self.state == "native" or self.relays_new_turns


@dataclass(frozen=True)
class FrontRoute:
    #: The front API, as named in proxy.codecs (FRONT_CODECS).
    name: str
    #: Upstreams it is tested over; the first is the default.
    upstreams: tuple[Upstream, ...]
    #: Path of a create, under the upstream's mount point.
    create_path: str
    #: Path of one stored item, with `{id}` (None: the API has none); and of its cancel, if the API has one.
    item_path: str | None
    cancel_path: str | None
    #: A valid create body: (user text, previous id or None, extra fields) -> body.
    create_body: Callable[[str, str | None, JSON], JSON]
    #: The field of a create body that names the previous turn.
    previous_field: str
    #: Top-level fields of a create body the API knows, and which of them are required
    #: (bad-input tests break them one at a time).
    create_fields: tuple[str, ...]
    required_fields: tuple[str, ...]
    #: The id in a create's or get's JSON answer.
    read_id: Callable[[JSON], str]
    #: The model's text in a create's or get's JSON answer.
    reply_text: Callable[[JSON], str]
    #: The status of a create's or get's JSON answer ("completed", "failed", ...).
    read_status: Callable[[JSON], str]
    #: The id in a streamed create, from the raw SSE bytes.
    stream_id: Callable[[bytes], str | None]
    #: The message of an error event in a streamed answer, or None.
    stream_error: Callable[[bytes], str | None]
    #: The model's text in a streamed answer (its text deltas joined).
    stream_text: Callable[[bytes], str]
    #: Headers that carry an app's provider key.
    key_headers: Callable[[str], dict[str, str]]
    #: Asserts that a response is an error of this status in the API's own shape.
    check_error: Callable[[httpx.Response, int], None]
    #: The message of an error answer (for tests that look for words in it).
    error_message: Callable[[JSON], str]
    #: The status the API answers a chain onto an unknown or foreign id with.
    previous_not_found_status: int = 404
    #: Field values that make a create stream, or run in the background (None: the API has no such mode;
    #: {}: every create runs in the background).
    stream_fields: JSON | None = None
    background_fields: JSON | None = None
    #: Whether a stored item can be deleted, and more reads of one item (paths with `{id}`).
    deletable: bool = True
    item_reads: tuple[str, ...] = ()
    #: The id that names a stored item in item paths, from a create's or get's answer (None: read_id).
    read_item_id: Callable[[JSON], str] | None = None
    #: An asynchronous API: where the finished turn is read (`{id}` an item id), with the status
    #: its read answers a failed turn with; and where a created item's stream is read.
    result_path: str | None = None
    failed_result_status: int = 422
    events_path: str | None = None
    #: Whether a streamed or background turn in emulate mode reads a stream from the
    #: upstream (False: it asks the upstream whole, as Parallel's task runs do).
    emulated_runs_stream: bool = True

    def item(self, interaction_id: str) -> str:
        assert self.item_path is not None, f"{self.name} has no item path"
        return self.item_path.format(id=interaction_id)

    def item_id(self, answer: JSON) -> str:
        return (self.read_item_id or self.read_id)(answer)

    def cancel(self, interaction_id: str) -> str:
        assert self.cancel_path is not None
        return self.cancel_path.format(id=interaction_id)

    def item_operations(self) -> list[tuple[str, str, str]]:
        """(name, method, path template) of every operation on one stored item."""
        if self.item_path is None:
            return []
        ops = [("get", "GET", self.item_path)]
        if self.deletable:
            ops.append(("delete", "DELETE", self.item_path))
        if self.cancel_path:
            ops.append(("cancel", "POST", self.cancel_path))
        ops += [(path.rsplit("/", 1)[-1], "GET", path) for path in self.item_reads]
        return ops

    @property
    def streams(self) -> bool:
        """Whether a turn of this API can be streamed (by its create, or by reading its events)."""
        return self.stream_fields is not None or self.events_path is not None

    def body(self, text: str, previous: str | None = None, **extra: Any) -> JSON:
        return self.create_body(text, previous, extra)

    def __str__(self) -> str:
        return self.name


# -- Gemini Interactions (shared/specs/gemini-interactions.md) ---------------------


def _gemini_body(text: str, previous: str | None, extra: JSON) -> JSON:
    body: JSON = {"model": "gemini-3-flash-preview", "input": text, **extra}
    if previous:
        body["previous_interaction_id"] = previous
    return body


def _gemini_text(answer: JSON) -> str:
    return "".join(
        c.get("text", "")
        for step in answer.get("steps") or []
        if step.get("type") == "model_output"
        for c in step.get("content") or []
    )


def sse_events(raw: bytes) -> list[Any]:
    """The JSON data of every SSE event in a raw stream (non-JSON data skipped)."""
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"\n".join(line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:"))
        try:
            events.append(json.loads(data))
        except ValueError:
            continue
    return events


def _gemini_stream_id(raw: bytes) -> str | None:
    for event in sse_events(raw):
        if isinstance(event, dict) and isinstance(event.get("interaction"), dict):
            return event["interaction"].get("id")
    return None


def _gemini_stream_error(raw: bytes) -> str | None:
    for event in sse_events(raw):
        if isinstance(event, dict) and event.get("event_type") == "error":
            return event["error"]["message"]
    return None


def _gemini_stream_text(raw: bytes) -> str:
    return "".join(
        event["delta"].get("text", "")
        for event in sse_events(raw)
        if isinstance(event, dict) and event.get("event_type") in ("step.delta", "content.delta")
    )


def _check_json_error(response: httpx.Response, status: int) -> None:
    """An error answer of this status, as JSON, with no Python internals in it."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:300]}"
    assert_no_traceback(response)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers


def _gemini_error(response: httpx.Response, status: int) -> None:
    """`{"error": {"code": "<snake_case>", "message": "..."}}` (spec section 6)."""
    _check_json_error(response, status)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert error["code"].replace("_", "").isalnum() and error["code"].islower(), body
    assert isinstance(error.get("message"), str) and error["message"].strip(), body


GEMINI_INTERACTIONS = FrontRoute(
    name="gemini-interactions",
    upstreams=(
        Upstream("gemini", FakeGemini),
        Upstream("gemini-generate", FakeGemini),
        Upstream("gemini", lambda: FakeGemini(stateful=True), state="native"),
    ),
    create_path="/v1beta/interactions",
    item_path="/v1beta/interactions/{id}",
    cancel_path="/v1beta/interactions/{id}/cancel",
    create_body=_gemini_body,
    previous_field="previous_interaction_id",
    create_fields=("model", "input", "previous_interaction_id", "system_instruction", "tools", "generation_config",
                   "store", "stream", "background", "agent", "response_format", "response_modalities"),
    required_fields=("model", "input"),
    read_id=lambda answer: answer["id"],
    reply_text=_gemini_text,
    read_status=lambda answer: answer["status"],
    stream_id=_gemini_stream_id,
    stream_error=_gemini_stream_error,
    stream_text=_gemini_stream_text,
    key_headers=lambda key: {"x-goog-api-key": key},
    check_error=_gemini_error,
    error_message=lambda body: body["error"]["message"],
    previous_not_found_status=404,
    stream_fields={"stream": True},
    background_fields={"background": True},
)


# -- OpenAI Responses and Chat Completions (shared/specs/openai-anthropic-parallel.md 4, 5) --


def _openai_error(response: httpx.Response, status: int) -> None:
    """`{"error": {"message", "type", "param", "code"}}` (spec 4.5): the SDK unwraps `error`."""
    _check_json_error(response, status)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and error["message"].strip(), body
    assert isinstance(error["type"], str) and error["type"], body
    assert error["param"] is None or isinstance(error["param"], str), body
    assert error["code"] is None or isinstance(error["code"], str), body


def _responses_body(text: str, previous: str | None, extra: JSON) -> JSON:
    body: JSON = {"model": "gpt-5.5", "input": text, **extra}
    if previous:
        body["previous_response_id"] = previous
    return body


def _responses_text(answer: JSON) -> str:
    return "".join(
        c.get("text", "")
        for item in answer.get("output") or []
        if item.get("type") == "message"
        for c in item.get("content") or []
        if c.get("type") == "output_text"
    )


def _responses_stream_id(raw: bytes) -> str | None:
    for event in sse_events(raw):
        if isinstance(event, dict) and isinstance(event.get("response"), dict):
            return event["response"].get("id")
    return None


def _responses_stream_error(raw: bytes) -> str | None:
    for event in sse_events(raw):
        if isinstance(event, dict) and event.get("type") == "error":
            return event["message"]
        if isinstance(event, dict) and event.get("type") == "response.failed":
            return (event["response"].get("error") or {}).get("message") or "response.failed"
    return None


def _responses_stream_text(raw: bytes) -> str:
    return "".join(event["delta"] for event in sse_events(raw)
                   if isinstance(event, dict) and event.get("type") == "response.output_text.delta")


OPENAI_RESPONSES = FrontRoute(
    name="openai-responses",
    upstreams=(
        Upstream("openai", FakeOpenAI),
        Upstream("openai", lambda: FakeOpenAI(stateful=True), state="native"),
    ),
    create_path="/v1/responses",
    item_path="/v1/responses/{id}",
    cancel_path="/v1/responses/{id}/cancel",
    item_reads=("/v1/responses/{id}/input_items",),
    create_body=_responses_body,
    previous_field="previous_response_id",
    create_fields=("model", "input", "previous_response_id", "instructions", "tools", "tool_choice", "temperature",
                   "top_p", "max_output_tokens", "store", "stream", "background", "reasoning", "text", "include",
                   "metadata", "conversation", "parallel_tool_calls", "truncation", "user"),
    required_fields=("model", "input"),
    read_id=lambda answer: answer["id"],
    reply_text=_responses_text,
    read_status=lambda answer: answer["status"],
    stream_id=_responses_stream_id,
    stream_error=_responses_stream_error,
    stream_text=_responses_stream_text,
    key_headers=lambda key: {"authorization": f"Bearer {key}"},
    check_error=_openai_error,
    error_message=lambda body: body["error"]["message"],
    previous_not_found_status=400,
    stream_fields={"stream": True},
    background_fields={"background": True},
)


def _chat_body(text: str, previous: str | None, extra: JSON) -> JSON:
    body: JSON = {"model": "gpt-5.5", "messages": [{"role": "user", "content": text}], **extra}
    if previous:
        body["previous_interaction_id"] = previous
    return body


def _chat_chunks(raw: bytes) -> list[JSON]:
    return [event for event in sse_events(raw) if isinstance(event, dict)]


def _chat_stream_id(raw: bytes) -> str | None:
    return next((chunk["interaction_id"] for chunk in _chat_chunks(raw) if chunk.get("interaction_id")), None)


def _chat_stream_error(raw: bytes) -> str | None:
    return next((chunk["error"]["message"] for chunk in _chat_chunks(raw) if isinstance(chunk.get("error"), dict)),
                None)


def _chat_stream_text(raw: bytes) -> str:
    return "".join(choice["delta"].get("content") or ""
                   for chunk in _chat_chunks(raw) for choice in chunk.get("choices") or [])


OPENAI_CHAT = FrontRoute(
    name="openai-chat",
    upstreams=(
        Upstream("openai-chat", lambda: FakeOpenAI(chat_only=True)),
        Upstream("anthropic", FakeAnthropic, slow=True),
    ),
    create_path="/v1/chat/completions",
    item_path=None,
    cancel_path=None,
    create_body=_chat_body,
    previous_field="previous_interaction_id",
    create_fields=("model", "messages", "previous_interaction_id", "temperature", "top_p", "max_completion_tokens",
                   "max_tokens", "tools", "tool_choice", "response_format", "stream", "stream_options", "store",
                   "metadata", "seed", "stop", "n", "user", "reasoning_effort", "parallel_tool_calls"),
    required_fields=("model", "messages"),
    read_id=lambda answer: answer["interaction_id"],
    reply_text=lambda answer: answer["choices"][0]["message"]["content"] or "",
    read_status=lambda answer: "completed" if answer["choices"][0]["finish_reason"] else "failed",
    stream_id=_chat_stream_id,
    stream_error=_chat_stream_error,
    stream_text=_chat_stream_text,
    key_headers=lambda key: {"authorization": f"Bearer {key}"},
    check_error=_openai_error,
    error_message=lambda body: body["error"]["message"],
    previous_not_found_status=404,
    stream_fields={"stream": True},
)


# -- Anthropic Messages (shared/specs/openai-anthropic-parallel.md 6) ------------------


def _anthropic_error(response: httpx.Response, status: int) -> None:
    """`{"type": "error", "error": {"type", "message"}}` (spec 6.5), `request_id` optional."""
    _check_json_error(response, status)
    body = response.json()
    assert body.get("type") == "error" and set(body) <= {"type", "error", "request_id"}, body
    error = body["error"]
    assert isinstance(error.get("type"), str) and error["type"].endswith(("_error", "request_too_large")), body
    assert isinstance(error.get("message"), str) and error["message"].strip(), body


def _anthropic_body(text: str, previous: str | None, extra: JSON) -> JSON:
    body: JSON = {"model": "claude-sonnet-4-5", "max_tokens": 100_000, "messages": [{"role": "user", "content": text}],
                  **extra}
    if previous:
        body["previous_interaction_id"] = previous
    return body


def _anthropic_stream_id(raw: bytes) -> str | None:
    for event in sse_events(raw):
        if isinstance(event, dict) and event.get("type") == "message_start":
            return event["message"].get("interaction_id") or event["message"].get("id")
    return None


def _anthropic_stream_error(raw: bytes) -> str | None:
    for event in sse_events(raw):
        if isinstance(event, dict) and event.get("type") == "error":
            return event["error"]["message"]
    return None


def _anthropic_stream_text(raw: bytes) -> str:
    return "".join(event["delta"].get("text", "") for event in sse_events(raw)
                   if isinstance(event, dict) and event.get("type") == "content_block_delta")


ANTHROPIC_MESSAGES = FrontRoute(
    name="anthropic-messages",
    upstreams=(
        Upstream("anthropic", FakeAnthropic, relays_new_turns=True),
        Upstream("openai-chat", lambda: FakeOpenAI(chat_only=True), slow=True),
    ),
    create_path="/v1/messages",
    item_path=None,
    cancel_path=None,
    create_body=_anthropic_body,
    previous_field="previous_interaction_id",
    create_fields=("model", "max_tokens", "messages", "previous_interaction_id", "system", "metadata",
                   "stop_sequences", "stream", "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking"),
    required_fields=("model", "max_tokens", "messages"),
    # A relayed first turn has the provider's id; a chained one carries recall's as interaction_id too.
    read_id=lambda answer: answer.get("interaction_id") or answer["id"],
    reply_text=lambda answer: "".join(b.get("text", "") for b in answer["content"] if b.get("type") == "text"),
    read_status=lambda answer: "completed" if answer["stop_reason"] else "failed",
    stream_id=_anthropic_stream_id,
    stream_error=_anthropic_stream_error,
    stream_text=_anthropic_stream_text,
    # What anthropic 2.10 sends (spec 6.1).
    key_headers=lambda key: {"authorization": f"Bearer {key}", "anthropic-version": "2026-10-21"},
    check_error=_anthropic_error,
    error_message=lambda body: body["error"]["message"],
    previous_not_found_status=404,
    stream_fields={"stream": True},
)


# -- Parallel task runs (shared/specs/openai-anthropic-parallel.md 2) -------------------


def _parallel_error(response: httpx.Response, status: int) -> None:
    """`{"type": "error", "error": {"ref_id", "message", "detail"?}}` (spec 2.8)."""
    _check_json_error(response, status)
    body = response.json()
    assert body.get("type") == "error" and set(body) == {"type", "error"}, body
    error = body["error"]
    assert set(error) <= {"ref_id", "message", "detail"}, body
    assert isinstance(error.get("ref_id"), str) and error["ref_id"], body
    assert isinstance(error.get("message"), str) and error["message"].strip(), body
    assert isinstance(error.get("detail", {}), dict), body


def _parallel_body(text: str, previous: str | None, extra: JSON) -> JSON:
    body: JSON = {"input": text, "processor": "lite", "task_spec": {"output_schema": {"type": "text"}}, **extra}
    if previous:
        body["previous_interaction_id"] = previous
    return body


def _run(answer: JSON) -> JSON:
    """The TaskRun of a create's or get's answer, or of a result's (`{run, output}`)."""
    return answer["run"] if isinstance(answer.get("run"), dict) else answer


def _parallel_text(answer: JSON) -> str:
    content = (answer.get("output") or {}).get("content")
    return content if isinstance(content, str) else json.dumps(content) if content is not None else ""


def _parallel_states(raw: bytes) -> list[JSON]:
    return [e for e in sse_events(raw) if isinstance(e, dict) and e.get("type") == "task_run.state"]


def _parallel_stream_id(raw: bytes) -> str | None:
    states = _parallel_states(raw)
    return states[0]["run"]["interaction_id"] if states else None


def _parallel_stream_error(raw: bytes) -> str | None:
    for event in sse_events(raw):
        if isinstance(event, dict) and event.get("type") == "error":
            return event["error"]["message"]
    states = _parallel_states(raw)
    if states and states[-1]["run"]["status"] in ("failed", "cancelled"):
        return (states[-1]["run"].get("error") or {}).get("message") or states[-1]["run"]["status"]
    return None


def _parallel_stream_text(raw: bytes) -> str:
    states = _parallel_states(raw)
    return _parallel_text(states[-1]) if states else ""


PARALLEL_TASKS = FrontRoute(
    name="parallel-tasks",
    upstreams=(
        Upstream("parallel", FakeParallel),
        Upstream("parallel", lambda: FakeParallel(stateful=True), state="native"),
        Upstream("openai-chat", lambda: FakeOpenAI(chat_only=True), slow=True),
    ),
    create_path="/v1/tasks/runs",
    item_path="/v1/tasks/runs/{id}",
    cancel_path=None,
    deletable=False,
    item_reads=("/v1/tasks/runs/{id}/result", "/v1/tasks/runs/{id}/input", "/v1/tasks/runs/{id}/events"),
    create_body=_parallel_body,
    previous_field="previous_interaction_id",
    create_fields=("input", "processor", "task_spec", "previous_interaction_id", "metadata", "enable_events",
                   "source_policy", "mcp_servers", "webhook"),
    required_fields=("processor", "input"),
    read_id=lambda answer: _run(answer)["interaction_id"],
    read_item_id=lambda answer: _run(answer)["run_id"],
    reply_text=_parallel_text,
    read_status=lambda answer: _run(answer)["status"],
    stream_id=_parallel_stream_id,
    stream_error=_parallel_stream_error,
    stream_text=_parallel_stream_text,
    key_headers=lambda key: {"x-api-key": key},
    check_error=_parallel_error,
    error_message=lambda body: body["error"]["message"],
    previous_not_found_status=404,
    background_fields={},
    result_path="/v1/tasks/runs/{id}/result",
    failed_result_status=422,
    events_path="/v1/tasks/runs/{id}/events",
    emulated_runs_stream=False,
)

FRONT_ROUTES: tuple[FrontRoute, ...] = (GEMINI_INTERACTIONS, OPENAI_RESPONSES, OPENAI_CHAT, ANTHROPIC_MESSAGES,
                                        PARALLEL_TASKS)


def emulated(route: FrontRoute) -> list[Upstream]:
    return [u for u in route.upstreams if u.state == "emulate"]


def route_upstream_pairs(*, emulate_only: bool = False,
                         where: Callable[[FrontRoute, Upstream], bool] | None = None) -> list[Any]:
    """(front API, upstream) pairs for pytest.mark.parametrize (ids like gemini-interactions-gemini-emulate),
    those `where` holds for; a slow upstream's pairs carry the slow mark."""
    return [pytest.param(r, u, marks=pytest.mark.slow) if u.slow else (r, u)
            for r in FRONT_ROUTES for u in r.upstreams
            if (not emulate_only or u.state == "emulate") and (where is None or where(r, u))]


def pair_id(pair: Any) -> str:
    if isinstance(pair, FrontRoute):
        return pair.name
    if isinstance(pair, Upstream):
        return pair.label
    return str(pair)
