"""Chat Completions through recall: recorded passthrough, and stateful chat by `previous_interaction_id`."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_gemini import FakeGemini
from .support.fake_openai import FakeOpenAI
from .support.openai_sdk import client

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


def post(openai_recall: Recall, upstream: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(f"{openai_recall.base(upstream)}/v1/chat/completions", json=body,
                      headers={"authorization": "Bearer sk-A", **headers})


@pytest.mark.parametrize("upstream", ["openai", "local"])
def test_plain_passthrough_is_byte_exact_and_recorded(openai_recall: Recall, fake_openai: FakeOpenAI,
                                                      chat_only_openai: FakeOpenAI, upstream: str) -> None:
    fake = fake_openai if upstream == "openai" else chat_only_openai
    body = {"model": "gpt-5.5", "messages": [{"role": "system", "content": "terse"},
                                             {"role": "user", "content": "hello"}],
            "max_completion_tokens": 50, "temperature": 0.2}
    answer = post(openai_recall, upstream, body)
    assert answer.status_code == 200 and answer.headers["x-recall-stored"] == "true"
    provider = fake.answers[-1]
    interaction_id = answer.json()["interaction_id"]
    # Every byte as the provider sent it, `interaction_id` added at the end.
    assert answer.content == provider[:-1] + b',"interaction_id":"' + interaction_id.encode() + b'"}'
    assert fake.last_body() == body  # and the request went on as the app sent it
    rows = openai_recall.query("SELECT interaction_id, request_body, response_body FROM exchanges")
    assert rows == [(interaction_id, answer.request.content, answer.content)]
    node = openai_recall.query("SELECT front, mode, input_tokens, provider_id, request FROM interactions WHERE id = ?",
                               interaction_id)
    assert node[0][:4] == ("openai-chat", "emulate", 11, "chatcmpl-fake1")
    assert "hello" not in node[0][4] and "terse" not in node[0][4]  # the messages are kept once, as turns


@pytest.mark.parametrize("upstream", ["openai", "local"])
def test_streamed_passthrough_is_recorded(openai_recall: Recall, chat_only_openai: FakeOpenAI, fake_openai: FakeOpenAI,
                                          upstream: str) -> None:
    fake = fake_openai if upstream == "openai" else chat_only_openai
    body = {"model": "gpt-5.5", "stream": True, "messages": [{"role": "user", "content": "hello"}],
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{openai_recall.base(upstream)}/v1/chat/completions", json=body,
                      headers={"authorization": "Bearer sk-A"}) as answer:
        raw = b"".join(answer.iter_bytes())
    sent, provided = raw.split(b"\n\n"), fake.answers[-1].split(b"\n\n")
    assert len(sent) == len(provided) and raw.endswith(b"data: [DONE]\n\n")
    marked = [n for n, (a, b) in enumerate(zip(sent, provided, strict=True)) if a != b]
    chunks = [json.loads(event[6:]) for event in sent if event.startswith(b"data: {")]
    # interaction_id on the first chunk and the closing ones (finish reason, usage); the rest byte for byte.
    assert marked == [0, len(chunks) - 2, len(chunks) - 1]
    interaction_id = chunks[0]["interaction_id"]
    assert all(chunks[n]["interaction_id"] == interaction_id for n in marked)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    frames = openai_recall.query("SELECT frame FROM stream_events WHERE interaction_id = ? ORDER BY seq", interaction_id)
    assert b"".join(f[0] for f in frames) == raw
    stored = openai_recall.query("SELECT status, output, input_tokens FROM interactions WHERE id = ?", interaction_id)
    assert stored[0][0] == "completed" and "You said: hello" in stored[0][1] and stored[0][2] == 5


def test_stateful_chat_with_previous_interaction_id(openai_recall: Recall, chat_only_openai: FakeOpenAI) -> None:
    c = client(openai_recall, "local")
    first = c.chat.completions.create(model="llama3", messages=[
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi, my name is Karthik."}])
    assert first.interaction_id.startswith("chatcmpl-") and first.id == "chatcmpl-fake1"
    second = c.chat.completions.create(
        model="llama3", messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "I like tea."}],
        extra_body={"previous_interaction_id": first.interaction_id})
    sent = chat_only_openai.last_body()
    # Only the conversation carries over: the new request's system message leads, the old one is gone.
    assert sent["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi, my name is Karthik."},
        {"role": "assistant", "content": "[1 user messages] You said: Hi, my name is Karthik."},
        {"role": "user", "content": "I like tea."},
    ]
    assert "previous_interaction_id" not in sent
    with c.chat.completions.stream(model="llama3", messages=[{"role": "user", "content": "What is my name?"}],
                                   extra_body={"previous_interaction_id": second.interaction_id}) as stream:
        chunks = list(stream)
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "[3 user messages] Your name is Karthik."
    assert chunks[0].chunk.interaction_id == final.interaction_id != second.interaction_id
    rows = openai_recall.query("SELECT depth FROM interactions WHERE id = ?", final.interaction_id)
    assert rows == [(2,)]


def test_stateful_chat_tool_round_trip(openai_recall: Recall, chat_only_openai: FakeOpenAI) -> None:
    c = client(openai_recall, "local")
    first = c.chat.completions.create(model="llama3", tools=[WEATHER],
                                      messages=[{"role": "user", "content": "What is the weather in Rome?"}])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    # The fake refuses a tool message whose call is not in the history: recall must send it.
    second = c.chat.completions.create(model="llama3", tools=[WEATHER],
                                       messages=[{"role": "tool", "tool_call_id": call.id, "content": "25 C"}],
                                       extra_body={"previous_interaction_id": first.interaction_id})
    assert second.choices[0].message.content == "The tool said: 25 C"


def test_unknown_or_foreign_interaction_is_404(openai_recall: Recall, chat_only_openai: FakeOpenAI) -> None:
    mine, theirs = client(openai_recall, "local", key="sk-A"), client(openai_recall, "local", key="sk-B")
    turn = mine.chat.completions.create(model="m", messages=[{"role": "user", "content": "private"}])
    for c, previous in ((mine, "chatcmpl-unknown"), (mine, turn.id), (theirs, turn.interaction_id)):
        with pytest.raises(openai.NotFoundError) as caught:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                      extra_body={"previous_interaction_id": previous})
        assert caught.value.param == "previous_interaction_id" and previous in caught.value.message
        assert "interaction_id" in caught.value.message
    assert len(chat_only_openai.requests) == 1


def test_opting_out_gives_the_providers_bytes_and_stores_nothing(openai_recall: Recall, chat_only_openai: FakeOpenAI) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Secret-Okapi-5150"}]}
    answer = post(openai_recall, "local", body, **{"x-recall-store": "false"})
    assert answer.content == chat_only_openai.answers[-1]
    assert answer.headers["x-recall-stored"] == "false"
    assert b"Secret-Okapi-5150" not in openai_recall.db_bytes()
    assert openai_recall.query("SELECT count(*) FROM interactions") == [(0,)]


def test_store_is_openais_flag_not_recalls(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    answer = post(openai_recall, "openai", {"model": "m", "store": False, "messages": [{"role": "user", "content": "hi"}]})
    assert "interaction_id" in answer.json()
    assert fake_openai.last_body()["store"] is False
    assert openai_recall.query("SELECT count(*) FROM interactions") == [(1,)]


def test_parallel_paths_are_served(openai_recall: Recall, chat_only_openai: FakeOpenAI) -> None:
    for path in ("/v1beta/chat/completions", "/chat/completions"):
        answer = httpx.post(f"{openai_recall.base('local')}{path}", json={"model": "m", "messages": [
            {"role": "user", "content": "hi"}]}, headers={"x-api-key": "pk-A"})
        assert answer.status_code == 200 and answer.json()["interaction_id"]
    assert {seen.path for seen in chat_only_openai.requests} == {"/v1/chat/completions"}


def test_chat_over_a_gemini_upstream(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    openai_recall = recall_factory({"gemgen": Upstream("gemgen", fake_gemini.url, "gemini-generate")})
    c = client(openai_recall, "gemgen")
    first = c.chat.completions.create(model="gemini-3-flash-preview", messages=[
        {"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi, my name is Priya."}])
    assert first.id == first.interaction_id and first.object == "chat.completion"
    with c.chat.completions.stream(model="gemini-3-flash-preview",
                                   messages=[{"role": "user", "content": "What is my name?"}],
                                   extra_body={"previous_interaction_id": first.interaction_id}) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "[2 user messages] Your name is Priya."
    assert fake_gemini.last_body()["contents"][0]["parts"][0]["text"] == "Hi, my name is Priya."


@pytest.mark.parametrize(
    ("body", "fragment", "param"),
    [
        (b"{", "not valid JSON", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model", "model"),
        (b'{"model": "m"}', "messages", "messages"),
        (b'{"model": "m", "messages": []}', "messages", "messages"),
        (b'{"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}', "messages[0].role", "messages"),
        (b'{"model": "m", "messages": [{"role": "tool", "content": "x"}]}', "tool_call_id", "messages"),
        (b'{"model": "m", "messages": [{"role": "user", "content": 5}]}', "messages[0].content", "messages"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": 3}', "stop", "stop"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "previous_interaction_id": 1}',
         "previous_interaction_id", "previous_interaction_id"),
    ],
)
def test_bad_bodies_are_400_in_openai_shape(openai_recall: Recall, chat_only_openai: FakeOpenAI, body: bytes,
                                            fragment: str, param: str | None) -> None:
    answer = httpx.post(f"{openai_recall.base('local')}/v1/chat/completions", content=body,
                        headers={"authorization": "Bearer sk-A", "content-type": "application/json"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert fragment in error["message"] and error["param"] == param and error["type"] == "invalid_request_error"
    assert chat_only_openai.requests == []
    assert openai_recall.query("SELECT count(*) FROM exchanges WHERE stored OR request_body IS NOT NULL") == [(0,)]


def test_a_providers_own_interaction_id_gives_way_to_recalls() -> None:
    from proxy.codecs.openai_chat import with_interaction_id

    assert with_interaction_id(b'{"id": "x"}\n', "chatcmpl-r") == b'{"id": "x","interaction_id":"chatcmpl-r"}\n'
    assert with_interaction_id(b"{}", "chatcmpl-r") == b'{"interaction_id":"chatcmpl-r"}'
    # Parallel answers with its own interaction_id: in emulate mode recall's is the one to chain with.
    assert json.loads(with_interaction_id(b'{"interaction_id": "trun_1", "id": "x"}', "chatcmpl-r")) == {
        "interaction_id": "chatcmpl-r", "id": "x"}
