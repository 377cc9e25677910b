"""The contract check itself can fail: answers off the providers' contracts are reported.

Each case is an answer a provider would not send, checked the way the fakes' and
recall's answers are (tests/support/contract); the last ones go through a real
aiohttp server, to show the hook sees bodies, streams and statuses as sent.
"""

from __future__ import annotations

import json

import httpx
import pytest
from aiohttp import web

from tests.support.contract import VIOLATIONS, StreamCheck, check_answer, contract_for
from tests.support.contract.tap import EXEMPTED, off_contract
from tests.support.loop_thread import LoopThread
from tests.support.serving import serve_on_loopback, sse_response

RUN = {"run_id": "trun_1", "interaction_id": "itr_1", "status": "queued", "is_active": True, "processor": "lite",
       "created_at": "2026-01-01T00:00:00Z", "modified_at": "2026-01-01T00:00:00Z"}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
           "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 1, "output_tokens": 1}}


def _errors(method: str, path: str, status: int, body: object, content_type: str = "application/json") -> list[str]:
    return [str(v) for v in check_answer("test", method, path, status, content_type, json.dumps(body).encode())]


def test_conforming_answers_pass() -> None:
    assert _errors("POST", "/v1/tasks/runs", 202, RUN) == []
    assert _errors("POST", "/v1/messages", 200, MESSAGE) == []
    assert _errors("GET", "/v1/tasks/runs/trun_1/result", 408,
                   {"type": "error", "error": {"ref_id": "r", "message": "still running"}}) == []


@pytest.mark.parametrize(("method", "path", "status", "body", "expected"), [
    # Parallel answers a create with 202 Accepted, never 200.
    ("POST", "/v1/tasks/runs", 200, RUN, "status 200; the provider answers [202]"),
    ("POST", "/v1/tasks/runs", 202, {**RUN, "status": "waiting"}, "parallel.types.TaskRun"),
    # A Response with no id.
    ("GET", "/v1/responses/resp_1", 200, {"object": "response", "status": "completed", "output": []},
     "'id' is a required property"),
    # An Anthropic message whose type is not "message".
    ("POST", "/v1/messages", 200, {**MESSAGE, "type": "msg"}, "anthropic.types.Message"),
    # Errors in another provider's shape.
    ("POST", "/v1/messages", 400, {"error": {"message": "bad"}}, "anthropic.types.ErrorResponse"),
    ("POST", "/v1/responses", 404, {"error": {"message": "gone"}}, "ErrorResponse"),
    ("GET", "/v1beta/interactions/v1_x", 200, {"id": "v1_x", "status": "done"}, "Interaction"),
    ("POST", "/v1beta/models/gemini-3:generateContent", 500, {"error": {"message": "m"}}, "APIError"),
])
def test_off_contract_answers_are_violations(method: str, path: str, status: int, body: object,
                                            expected: str) -> None:
    found = _errors(method, path, status, body)
    assert len(found) == 1 and expected in found[0], found
    assert path in found[0] and str(status) in found[0]


def test_an_error_answered_with_a_success_status_or_as_text_is_a_violation() -> None:
    assert "content type 'text/plain'" in _errors("POST", "/v1/messages", 500, "oops", "text/plain")[0]
    assert "neither a success nor an error" in _errors("GET", "/v1/tasks/runs/trun_1", 302, RUN)[0]


def test_each_streamed_event_is_checked() -> None:
    contract = contract_for("/v1/responses")
    assert contract is not None
    stream = StreamCheck("test", "POST", "/v1/responses", 200, contract)
    good = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
            "delta": "Hi", "sequence_number": 1, "logprobs": []}
    assert stream.feed(b"event: response.output_text.delta\ndata: " + json.dumps(good).encode() + b"\n\n") == []
    assert stream.feed(b": keep-alive\n\n") == []
    found = stream.feed(b"data: " + json.dumps({**good, "type": "response.output_text.typo"}).encode() + b"\n\ndat")
    assert len(found) == 1 and "response.output_text.typo" in str(found[0]) and "ResponseStreamEvent" in str(found[0])
    # An Anthropic stream: ping is documented (the SDK skips it); an unknown event type is not.
    anthropic = contract_for("/v1/messages")
    assert anthropic is not None
    messages = StreamCheck("test", "POST", "/v1/messages", 200, anthropic)
    assert messages.feed(b'event: ping\ndata: {"type": "ping"}\n\n') == []
    assert len(messages.feed(b'event: pong\ndata: {"type": "pong"}\n\n')) == 1


def test_a_fake_server_answer_off_contract_is_recorded(loop_thread: LoopThread) -> None:
    """Through serve_on_loopback, as every fake is served: a 200 create, a stream with a bad event,
    and a deliberately broken answer that is marked so (and is let through, and only it)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/v1/tasks/runs/trun_1/events":
            response = sse_response()
            if request.query.get("broken"):
                off_contract(response, "the test's deliberate misbehaviour")
            await response.prepare(request)
            await response.write(b'event: task_run.state\ndata: {"type": "task_run.state"}\n\n')
            await response.write_eof()
            return response
        return web.json_response(RUN)  # 200: Parallel answers 202

    runner, url = loop_thread.run(serve_on_loopback(handler, "fake under test"))
    try:
        assert httpx.post(f"{url}/v1/tasks/runs", json={}).status_code == 200
        httpx.get(f"{url}/v1/tasks/runs/trun_1/events")
        before = len(EXEMPTED)
        httpx.get(f"{url}/v1/tasks/runs/trun_1/events?broken=1")
    finally:
        loop_thread.run(runner.cleanup())
    found = [str(v) for v in VIOLATIONS.take()]
    assert len(found) == 2, found
    assert "fake under test: POST /v1/tasks/runs -> 200" in found[0] and "[202]" in found[0]
    assert "GET /v1/tasks/runs/trun_1/events" in found[1] and "TaskRunEventsResponse (event 1)" in found[1]
    assert EXEMPTED[before:] == ["fake under test GET /v1/tasks/runs/trun_1/events: the test's deliberate misbehaviour"]


def test_anthropic_documented_error_types_the_sdk_lacks_pass_and_no_others() -> None:
    """413 request_too_large is in Anthropic's error reference but not in the SDK's ErrorObject union."""
    too_large = {"type": "error", "error": {"type": "request_too_large", "message": "Request exceeds 32 MB"}}
    assert _errors("POST", "/v1/messages", 413, too_large) == []
    invented = {"type": "error", "error": {"type": "too_big_error", "message": "no"}}
    assert len(_errors("POST", "/v1/messages", 413, invented)) == 1
