"""Streamed and background Responses through recall, with the openai SDK's own helpers."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest
from google import genai

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_openai import FakeOpenAI
from .support.loop_thread import LoopThread
from .support.openai_sdk import MODEL, WEATHER_TOOL, client, user_texts_sent

# The order the SDK's accumulator needs (spec 4.6) for one text message.
TEXT_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
               "response.content_part.added", "response.output_text.delta", "response.output_text.done",
               "response.content_part.done", "response.output_item.done", "response.completed"]


def squeeze(types: list[str]) -> list[str]:
    """Event types with runs of one type folded into one."""
    return [t for i, t in enumerate(types) if i == 0 or types[i - 1] != t]


def wait_for_status(c: openai.OpenAI, response_id: str, wanted: str, timeout: float = 10) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = c.responses.retrieve(response_id)
        if got.status == wanted or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.mark.parametrize("upstream", ["openai", "local"])
def test_stream_helper_then_chain(openai_recall: Recall, upstream: str) -> None:
    c = client(openai_recall, upstream)
    with c.responses.stream(model=MODEL, input="Hi, my name is Karthik.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert squeeze([e.type for e in events]) == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.id == events[0].response.id and final.id.startswith("resp_") and "fake" not in final.id
    assert final.output_text == "[1 user messages] You said: Hi, my name is Karthik."
    assert final.status == "completed"
    # The stored response is complete once the stream has ended: a follow-up sees all of it.
    assert c.responses.retrieve(final.id).output_text == final.output_text
    follow = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=final.id)
    assert follow.output_text == "[2 user messages] Your name is Karthik."


@pytest.mark.parametrize("upstream", ["openai", "local"])
def test_streamed_function_call(openai_recall: Recall, upstream: str) -> None:
    c = client(openai_recall, upstream)
    with c.responses.stream(model=MODEL, input="What is the weather in Oslo?", tools=[WEATHER_TOOL]) as stream:
        types = squeeze([e.type for e in stream])
        final = stream.get_final_response()
    assert types == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.function_call_arguments.delta", "response.function_call_arguments.done",
                     "response.output_item.done", "response.completed"]
    call = final.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}
    assert call.parsed_arguments == {"city": "Oslo"}  # strict tool: the helper parsed it
    with c.responses.stream(model=MODEL, previous_response_id=final.id, tools=[WEATHER_TOOL], input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": "-3 C"}]) as stream:
        assert stream.get_final_response().output_text == "The tool said: -3 C"


def test_streamed_reasoning_is_kept_for_the_next_turn(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    with c.responses.stream(model=MODEL, input="Hi, my name is Ada.", reasoning={"effort": "low"}) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in types
    assert final.output[0].type == "reasoning"
    follow = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=final.id)
    assert fake_openai.reasoning_received == ["enc::resp_fake1"]
    assert "Ada" in follow.output_text


@pytest.mark.parametrize("upstream", ["openai", "local"])
def test_stream_bytes_follow_the_sdk_rules(openai_recall: Recall, upstream: str) -> None:
    body = {"model": MODEL, "input": "hello there", "stream": True}
    with httpx.stream("POST", f"{openai_recall.base(upstream)}/v1/responses", json=body,
                      headers={"authorization": "Bearer sk-A"}) as answer:
        raw = b"".join(answer.iter_bytes())
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["x-recall-stored"] == "true"
    assert b"\nid:" not in raw and not raw.startswith(b"id:")  # an id: line trips the Stainless decoder
    events = [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: {")]
    assert all(e["type"] == "response.completed" or "error" not in e for e in events)
    response_id = events[0]["response"]["id"]
    stored = openai_recall.query("SELECT frame FROM stream_events WHERE interaction_id = ? ORDER BY seq", response_id)
    assert b"".join(row[0] for row in stored) == raw


def test_retrieve_stream_replays_and_resumes(openai_recall: Recall) -> None:
    c = client(openai_recall)
    with c.responses.stream(model=MODEL, input="resume me please") as stream:
        events = list(stream)
        response_id = stream.get_final_response().id
    again = list(c.responses.retrieve(response_id, stream=True))
    assert [e.sequence_number for e in again] == [e.sequence_number for e in events]
    after = list(c.responses.retrieve(response_id, stream=True, starting_after=4))
    assert [e.sequence_number for e in after] == list(range(5, len(events)))
    # The helper's resume: it filters by sequence_number itself.
    with c.responses.stream(response_id=response_id) as resumed:
        assert resumed.get_final_response().output_text == "[1 user messages] You said: resume me please"
    with pytest.raises(openai.BadRequestError):
        list(c.responses.retrieve(response_id, stream=True, starting_after=999))


def test_retrieve_stream_of_an_unstreamed_response(openai_recall: Recall) -> None:
    c = client(openai_recall)
    turn = c.responses.create(model=MODEL, input="not streamed", reasoning={"effort": "low"})
    with c.responses.stream(response_id=turn.id) as stream:
        final = stream.get_final_response()
    assert final.id == turn.id and final.output_text == turn.output_text
    assert [item.id for item in final.output] == [item.id for item in turn.output]


def test_background_poll_and_follow(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    fake_openai.stream_delay = 0.01
    c = client(openai_recall)
    started = c.responses.create(model=MODEL, input="Hi, my name is Karthik.", background=True)
    assert started.status == "in_progress" and started.output == [] and started.background is True
    with c.responses.stream(response_id=started.id) as stream:
        final = stream.get_final_response()
    assert final.output_text == "[1 user messages] You said: Hi, my name is Karthik."
    done = wait_for_status(c, started.id, "completed")
    assert done.output_text == final.output_text
    follow = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=started.id)
    assert "Karthik" in follow.output_text
    assert "background" not in fake_openai.last_body()


def test_cancel_a_background_response(openai_recall: Recall, fake_openai: FakeOpenAI, loop_thread: LoopThread) -> None:
    fake_openai.hold = asyncio.Event()
    c = client(openai_recall)
    started = c.responses.create(model=MODEL, input="a long task with many words to say", background=True)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model=MODEL, input="next", previous_response_id=started.id)
    assert "in progress" in str(caught.value) and caught.value.param == "previous_response_id"
    cancelled = c.responses.cancel(started.id)
    assert cancelled.status == "cancelled" and cancelled.id == started.id
    assert c.responses.retrieve(started.id).status == "cancelled"
    assert fake_openai.streams_finished == 0
    with pytest.raises(openai.BadRequestError):
        c.responses.cancel(started.id)
    loop_thread.loop.call_soon_threadsafe(fake_openai.hold.set)


def test_native_stream_is_relayed_unmodified_and_recorded(recall_factory: RecallFactory,
                                                          stateful_openai: FakeOpenAI) -> None:
    openai_recall = recall_factory({"openai": Upstream("openai", stateful_openai.url, "openai", state="native")})
    c = client(openai_recall)
    with httpx.stream("POST", f"{openai_recall.base('openai')}/v1/responses", headers={"authorization": "Bearer sk-A"},
                      json={"model": MODEL, "input": "Hi, my name is Karthik.", "stream": True}) as answer:
        raw = b"".join(answer.iter_bytes())
    assert raw == stateful_openai.answers[-1]
    rows = openai_recall.query("SELECT id, mode, status FROM interactions")
    assert rows == [("resp_fake1", "native", "completed")]
    frames = openai_recall.query("SELECT frame FROM stream_events WHERE interaction_id = 'resp_fake1' ORDER BY seq")
    assert b"".join(f[0] for f in frames) == raw
    with c.responses.stream(model=MODEL, input="What is my name?", previous_response_id="resp_fake1") as stream:
        assert "Karthik" in stream.get_final_response().output_text


@pytest.mark.parametrize("upstream", ["openai", "local"])
def test_provider_stream_breaking_off(openai_recall: Recall, fake_openai: FakeOpenAI, chat_only_openai: FakeOpenAI,
                                      upstream: str) -> None:
    fake_openai.truncate = chat_only_openai.truncate = True
    c = client(openai_recall, upstream)
    with c.responses.stream(model=MODEL, input="alpha beta gamma delta epsilon") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match="response.completed"):
            stream.get_final_response()
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1].response.status == "failed" and events[-1].response.error.message
    stored = c.responses.retrieve(events[0].response.id)
    assert stored.status == "failed" and stored.error.message in events[-1].response.error.message
    # What did arrive is kept.
    assert stored.output_text == "".join(e.delta for e in events if e.type == "response.output_text.delta")


def test_an_interactions_app_over_an_openai_upstream(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    g = genai.Client(api_key="sk-A", http_options={"base_url": openai_recall.base("openai"),
                                                  "retry_options": {"attempts": 1}})
    first = g.interactions.create(model=MODEL, input="Hi, my name is Karthik.", system_instruction="Be kind.")
    assert first.id.startswith("v1_") and first.output_text == "[1 user messages] You said: Hi, my name is Karthik."
    assert fake_openai.last_body()["instructions"] == "Be kind."
    events = list(g.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=first.id,
                                        stream=True))
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta" and e.delta.type == "text")
    assert text == "[2 user messages] Your name is Karthik."
    assert events[-1].event_type == "interaction.completed"
    assert user_texts_sent(fake_openai) == ["Hi, my name is Karthik.", "What is my name?"]


def test_background_and_stream_together_stream_at_once(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    with c.responses.stream(model=MODEL, input="Hi, my name is Karthik.", background=True) as stream:
        final = stream.get_final_response()
    assert final.background is True and final.output_text == "[1 user messages] You said: Hi, my name is Karthik."
    assert c.responses.retrieve(final.id).status == "completed"


def test_reasoning_text_from_a_chat_only_server(openai_recall: Recall, chat_only_openai: FakeOpenAI) -> None:
    c = client(openai_recall, "local")
    with c.responses.stream(model="qwen3", input="Hi, my name is Ada.", reasoning={"effort": "low"}) as stream:
        types = squeeze([e.type for e in stream])
        final = stream.get_final_response()
    assert types[2:7] == ["response.output_item.added", "response.reasoning_summary_part.added",
                          "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
                          "response.reasoning_summary_part.done"]
    assert chat_only_openai.last_body()["reasoning_effort"] == "low"
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == "Thinking it over."
    assert c.responses.retrieve(final.id).output[0].id == final.output[0].id
    c.responses.create(model="qwen3", input="What is my name?", previous_response_id=final.id)
    # Reasoning text has no Chat Completions form: only the answer goes back.
    assert [m["role"] for m in chat_only_openai.last_body()["messages"]] == ["user", "assistant", "user"]
