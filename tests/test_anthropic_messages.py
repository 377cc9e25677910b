"""Anthropic Messages through recall with the real anthropic SDK: passthrough and chaining."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_anthropic import FakeAnthropic

MODEL = "claude-fake-1"


@pytest.fixture
def recall(recall_factory: RecallFactory, fake_anthropic: FakeAnthropic) -> Recall:
    return recall_factory({"anthropic": Upstream("anthropic", fake_anthropic.url, "anthropic")})


def client(recall: Recall, key: str = "sk-ant-test-key") -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=recall.base("anthropic"), max_retries=0)


def user_texts(fake: FakeAnthropic) -> list[str]:
    out = []
    for message in fake.requests[-1].body["messages"]:
        if message["role"] == "user":
            content = message["content"]
            out.append(content if isinstance(content, str) else "".join(b.get("text", "") for b in content))
    return out


def test_plain_call_is_relayed_byte_for_byte_and_recorded(recall: Recall, fake_anthropic: FakeAnthropic) -> None:
    answer = httpx.post(f"{recall.base('anthropic')}/v1/messages", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                        json={"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi there"}]})
    assert answer.status_code == 200
    assert answer.json()["id"] == "msg_fake1"
    assert "interaction_id" not in answer.json()  # untouched: the provider's bytes
    assert answer.headers["request-id"] == "req_msg_fake1"
    rows = recall.query("SELECT id, mode, status FROM interactions")
    assert rows == [("msg_fake1", "native", "completed")]
    assert fake_anthropic.requests[-1].headers["x-api-key"] == "k"


def test_chain_with_previous_interaction_id(recall: Recall, fake_anthropic: FakeAnthropic) -> None:
    c = client(recall)
    first = c.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hi, my name is Karthik."}])
    assert first.id == "msg_fake1"
    second = c.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "I like cricket."}],
                               extra_body={"previous_interaction_id": first.id})
    assert second.interaction_id == second.id and second.id.startswith("msg_") and second.id != "msg_fake2"
    third = c.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "What is my name?"}],
                              extra_body={"previous_interaction_id": second.interaction_id})
    assert "Karthik" in third.content[0].text
    assert user_texts(fake_anthropic) == ["Hi, my name is Karthik.", "I like cricket.", "What is my name?"]
    assert "previous_interaction_id" not in fake_anthropic.requests[-1].body
    roles = [m["role"] for m in fake_anthropic.requests[-1].body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]


def test_stream_helper_and_chaining_after_a_stream(recall: Recall, fake_anthropic: FakeAnthropic) -> None:
    c = client(recall)
    with c.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hi, my name is Ada."}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "[1 user messages] You said: Hi, my name is Ada."
    assert final.id == "msg_fake1" and final.stop_reason == "end_turn"
    with c.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "What is my name?"}],
                           extra_body={"previous_interaction_id": final.id}) as stream:
        final2 = stream.get_final_message()
    assert "Your name is Ada." in final2.content[0].text
    assert final2.id.startswith("msg_") and final2.id != "msg_fake2"
    # The streamed reply is stored whole: a third turn sees it.
    third = c.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Again?"}],
                              extra_body={"previous_interaction_id": final2.id})
    assert third.content[0].text.startswith("[3 user messages]")


def test_raw_stream_is_relayed_and_recorded_byte_for_byte(recall: Recall) -> None:
    with httpx.stream("POST", f"{recall.base('anthropic')}/v1/messages",
                      headers={"authorization": "Bearer k", "anthropic-version": "2023-06-01"},
                      json={"model": MODEL, "max_tokens": 64, "stream": True,
                            "messages": [{"role": "user", "content": "stream me"}]}) as answer:
        raw = answer.read()
    assert raw.startswith(b"event: message_start\n")
    frames = recall.query("SELECT frame FROM stream_events WHERE interaction_id = 'msg_fake1' ORDER BY seq")
    assert b"".join(f[0] for f in frames) == raw


def test_tool_round_trip_across_a_chain(recall: Recall, fake_anthropic: FakeAnthropic) -> None:
    c = client(recall)
    tools = [{"name": "get_weather", "description": "Weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    asked = c.messages.create(model=MODEL, max_tokens=64, tools=tools,
                              messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    call = asked.content[0]
    assert asked.stop_reason == "tool_use" and call.name == "get_weather"
    answered = c.messages.create(
        model=MODEL, max_tokens=64, tools=tools,
        messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]}],
        extra_body={"previous_interaction_id": asked.id})
    assert "18C and sunny" in answered.content[0].text
    sent = fake_anthropic.requests[-1].body["messages"]
    assert sent[1]["content"][0]["type"] == "tool_use" and sent[2]["content"][0]["tool_use_id"] == call.id


def test_unknown_and_foreign_previous_ids_are_404(recall: Recall, fake_anthropic: FakeAnthropic) -> None:
    mine = client(recall, key="key-A")
    first = mine.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "private"}])
    theirs = client(recall, key="key-B")
    for previous in ("msg_unknown", first.id):
        with pytest.raises(anthropic.NotFoundError) as caught:
            theirs.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "x"}],
                                   extra_body={"previous_interaction_id": previous})
        assert caught.value.body["error"]["type"] == "not_found_error"
    assert len(fake_anthropic.requests) == 1


@pytest.mark.parametrize(("body", "fragment"), [
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": MODEL, "max_tokens": 5, "messages": "hello"}, "messages: expected a list"),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ({"max_tokens": 5, "messages": []}, "model"),
])
def test_bad_bodies_are_400_in_anthropics_shape(recall: Recall, fake_anthropic: FakeAnthropic, body: dict,
                                                fragment: str) -> None:
    answer = httpx.post(f"{recall.base('anthropic')}/v1/messages", json=body,
                        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert answer.status_code == 400
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert fragment in error["error"]["message"]
    assert fake_anthropic.requests == [] and recall.query("SELECT count(*) FROM interactions") == [(0,)]


def test_interactions_api_over_anthropic(recall_factory: RecallFactory, fake_anthropic: FakeAnthropic) -> None:
    from google import genai

    recall = recall_factory({"claude": Upstream("claude", fake_anthropic.url, "anthropic")})
    c = genai.Client(api_key="sk-ant-key", http_options={"base_url": recall.base("claude"),
                                                          "retry_options": {"attempts": 1}})
    first = c.interactions.create(model=MODEL, input="Hi, my name is Karthik.", system_instruction="Be brief.")
    second = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=first.id)
    assert "Karthik" in second.output_text
    sent = fake_anthropic.requests[-1].body
    assert sent["max_tokens"] == 4096 and "system" not in sent
    assert fake_anthropic.requests[-1].headers["x-api-key"] == "sk-ant-key"  # the key moved to Anthropic's header
    assert fake_anthropic.requests[-1].headers["anthropic-version"] == "2023-06-01"
    events = list(c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=second.id,
                                        stream=True))
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta")
    assert "Karthik" in text and events[-1].event_type == "interaction.completed"
