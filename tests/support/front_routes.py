"""Every front API recall serves, as one row each: the reliability and security
tests are tables over FRONT_ROUTES, so a new front API is covered by adding a row.

A row says how to call the API over plain HTTP (paths, a valid body, the key
header), how to read what comes back (the id, the reply text, a stream's id and
error event) and what its errors look like (check_error asserts the shape its
official SDK parses, from shared/specs/). Each row also names the upstream
`api` values it is tested over and the fake provider that plays each one.

Error shapes in shared/specs/, for the rows to come: Gemini Interactions
`{"error": {"code": "<snake_case>", "message"}}`; OpenAI Responses and Chat
`{"error": {"message", "type", "param", "code"}}`; Anthropic Messages
`{"type": "error", "error": {"type", "message"}}`; Parallel
`{"type": "error", "error": {"ref_id", "message", "detail"?}}`.

A fake provider for a row needs what tests/support/fake_gemini.py has:
`start()`, `stop()`, `url`; `requests` (each with `.path` and `.headers`);
`stream_delay`, `streams_finished`; and brain.history_problem and
brain.requested_pause applied to every conversation it answers
(`history_mismatches`), so that load, crash and shutdown tests can run on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .fake_gemini import FakeGemini

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

    @property
    def label(self) -> str:
        return f"{self.api}-{self.state}"


@dataclass(frozen=True)
class FrontRoute:
    #: The front API, as named in proxy.codecs (FRONT_CODECS).
    name: str
    #: Upstreams it is tested over; the first is the default.
    upstreams: tuple[Upstream, ...]
    #: Path of a create, under the upstream's mount point.
    create_path: str
    #: Path of one stored item, with `{id}`; and of its cancel, if the API has one.
    item_path: str
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
    #: Field values that make a create stream, or run in the background (None: the API has no such mode).
    stream_fields: JSON | None = None
    background_fields: JSON | None = None

    def item(self, interaction_id: str) -> str:
        return self.item_path.format(id=interaction_id)

    def cancel(self, interaction_id: str) -> str:
        assert self.cancel_path is not None
        return self.cancel_path.format(id=interaction_id)

    def item_operations(self) -> list[tuple[str, str, str]]:
        """(name, method, path template) of every operation on one stored item."""
        ops = [("get", "GET", self.item_path), ("delete", "DELETE", self.item_path)]
        if self.cancel_path:
            ops.append(("cancel", "POST", self.cancel_path))
        return ops

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


def _gemini_error(response: httpx.Response, status: int) -> None:
    """`{"error": {"code": "<snake_case>", "message": "..."}}` (spec section 6)."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:300]}"
    assert_no_traceback(response)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
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

FRONT_ROUTES: tuple[FrontRoute, ...] = (GEMINI_INTERACTIONS,)


def emulated(route: FrontRoute) -> list[Upstream]:
    return [u for u in route.upstreams if u.state == "emulate"]


def route_upstream_pairs(*, emulate_only: bool = False) -> list[tuple[FrontRoute, Upstream]]:
    """(front API, upstream) pairs for pytest.mark.parametrize, ids like gemini-interactions/gemini-emulate."""
    return [(r, u) for r in FRONT_ROUTES for u in r.upstreams if not emulate_only or u.state == "emulate"]


def pair_id(pair: Any) -> str:
    if isinstance(pair, FrontRoute):
        return pair.name
    if isinstance(pair, Upstream):
        return pair.label
    return str(pair)
