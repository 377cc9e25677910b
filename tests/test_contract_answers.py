"""recall's own answers in emulate mode are what the providers' published contracts allow
(tests/support/contract, docs/FIDELITY.md), through the official SDKs where they can tell.

Each test failed before its fix: by its own assertion, and by the contract check every test
runs under (tests/conftest.py, provider_contracts).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from .conftest import Recall
from .support.contract import check_answer
from .support.front_routes import OPENAI_RESPONSES, sse_events
from .support.openai_sdk import MODEL, client
from .support.rigs import RigFactory

WEATHER_NOT_STRICT: dict[str, Any] = {"type": "function", "name": "get_weather",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _raw(recall: Recall, body: dict[str, Any], upstream: str = "openai") -> dict[str, Any]:
    answer = httpx.post(f"{recall.base(upstream)}/v1/responses", json=body,
                        headers={"authorization": "Bearer sk-A"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert check_answer("test", "POST", "/v1/responses", 200, answer.headers["content-type"], answer.content) == []
    return answer.json()


def test_a_response_never_says_null_where_openai_says_a_string_or_an_object(openai_recall: Recall) -> None:
    """`user` is a string and `usage` a ResponseUsage with cache_write_tokens (openai-v3.3.1.yml)."""
    body = _raw(openai_recall, {"model": MODEL, "input": "Hi"})
    assert "user" not in body
    assert body["usage"]["input_tokens_details"]["cache_write_tokens"] == 0
    assert body["metadata"] == {}
    assert _raw(openai_recall, {"model": MODEL, "input": "Hi", "user": "u-1"})["user"] == "u-1"
    # The SDK sees the same: a field left out, not set to null.
    response = client(openai_recall).responses.create(model=MODEL, input="Hi")
    assert "user" not in response.model_fields_set


def test_a_streamed_response_has_no_usage_until_it_has_one(openai_recall: Recall) -> None:
    """Over a Chat-Completions-only server recall writes the Responses events itself."""
    with client(openai_recall, "local").responses.create(model=MODEL, input="Hi", stream=True) as stream:
        events = list(stream)
    created = next(e for e in events if e.type == "response.created")
    assert "usage" not in created.response.model_fields_set
    completed = next(e for e in events if e.type == "response.completed")
    assert completed.response.usage is not None and completed.response.usage.total_tokens > 0


def test_a_function_tool_is_stated_with_strict_and_parameters(openai_recall: Recall) -> None:
    """FunctionTool requires `strict` and `parameters`; a tool that does not say is strict in Responses."""
    no_params = {"type": "function", "name": "now"}
    body = _raw(openai_recall, {"model": MODEL, "input": "Hi", "tools": [WEATHER_NOT_STRICT, no_params]})
    assert [(t["strict"], t["parameters"]) for t in body["tools"]] == [(True, WEATHER_NOT_STRICT["parameters"]),
                                                                       (True, None)]
    response = client(openai_recall).responses.create(
        model=MODEL, input="Hi", tools=[{**WEATHER_NOT_STRICT, "strict": False}])  # type: ignore[list-item]
    assert response.tools[0].strict is False  # type: ignore[union-attr]


@pytest.mark.parametrize(("field", "value"), [
    ("parallel_tool_calls", "yes"), ("truncation", "sometimes"), ("metadata", {"n": 1}),
    ("metadata", {f"k{i}": "v" for i in range(17)}), ("temperature", 2.5), ("top_p", -0.1),
    ("tool_choice", {"name": "x"}), ("user", 42),
])
def test_fields_a_response_repeats_are_judged_as_openai_does(openai_recall: Recall, field: str, value: Any) -> None:
    """A value OpenAI refuses is a 400 naming the field, not a Response that repeats it off contract.
    Over a Chat-Completions-only server, where no OpenAI judges the Responses request but recall."""
    with pytest.raises(openai.BadRequestError) as refused:
        client(openai_recall, "local").responses.create(model=MODEL, input="Hi", extra_body={field: value})
    assert refused.value.param == field


def test_a_failed_responses_error_code_is_one_openai_has(rig_factory: RigFactory) -> None:
    """A Response's error.code is a ResponseErrorCode; recall's own failure codes go in the `error` event."""
    rig = rig_factory(OPENAI_RESPONSES, OPENAI_RESPONSES.upstreams[0])
    rig.faulty.fault, rig.faulty.after_events = "bad_event", 3
    status, raw = rig.stream("Hi")
    assert status == 200
    events = [e for e in sse_events(raw) if isinstance(e, dict)]
    failed = [e for e in events if e.get("type") == "response.failed"]
    assert failed and failed[0]["response"]["error"]["code"] == "server_error", events[-2:]
    assert any(e.get("type") == "error" for e in events)


def test_a_chat_completion_recall_writes_has_no_null_system_fingerprint(matrix_recall: Recall) -> None:
    """Chat Completions over another provider: recall writes the completion; `system_fingerprint`
    is a string when present (CreateChatCompletionResponse), so it is left out."""
    answer = httpx.post(f"{matrix_recall.base('anthropic')}/v1/chat/completions", timeout=10,
                        headers={"authorization": "Bearer sk-A"},
                        json={"model": "claude-fake-1", "messages": [{"role": "user", "content": "Hi"}]})
    assert answer.status_code == 200, answer.text
    assert "system_fingerprint" not in answer.json()
    completion = openai.OpenAI(api_key="sk-A", base_url=f"{matrix_recall.base('anthropic')}/v1", max_retries=0) \
        .chat.completions.create(model="claude-fake-1", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.refusal is None and "refusal" in completion.choices[0].message.model_fields_set


@pytest.mark.parametrize(("field", "value"), [("response_modalities", ["smell"]), ("response_modalities", "text"),
                                              ("tools", [{}])])
def test_gemini_fields_an_interaction_repeats_are_judged_as_google_does(recall: Recall, field: str,
                                                                       value: Any) -> None:
    answer = httpx.post(f"{recall.base('gemini')}/v1beta/interactions", timeout=10,
                        headers={"x-goog-api-key": "g-A"},
                        json={"model": "gemini-3-flash-preview", "input": "Hi", field: value})
    assert answer.status_code == 400, answer.text
    assert field in json.dumps(answer.json())
