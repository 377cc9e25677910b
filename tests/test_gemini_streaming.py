"""Streamed and background interactions through recall, with the real google-genai SDK."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from google.genai import _interactions as gi

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_gemini import FakeGemini
from .support.loop_thread import LoopThread
from .test_gemini_interactions import MODEL, client


def collect(stream) -> tuple[list[str], str, list]:  # type: ignore[no-untyped-def]
    events = list(stream)
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta" and e.delta.type == "text")
    return [e.event_type for e in events], text, events


def wait_for_status(c, interaction_id: str, wanted: str, timeout: float = 10) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = c.interactions.get(interaction_id)
        if got.status == wanted or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.mark.parametrize("upstream", ["gemini", "gemgen"])
def test_emulated_stream_then_chain(recall: Recall, fake_gemini: FakeGemini, upstream: str) -> None:
    c = client(recall, upstream=upstream)
    types, text, events = collect(c.interactions.create(model=MODEL, input="Hi, my name is Karthik.", stream=True))
    assert types[0] == "interaction.created"
    assert types[-1] == "interaction.completed"
    assert {"step.start", "step.delta", "step.stop"} <= set(types)
    assert text == "[1 user messages] You said: Hi, my name is Karthik."
    created, completed = events[0].interaction, events[-1].interaction
    assert created.id == completed.id and created.id.startswith("v1_") and not created.id.startswith("v1_fake")
    assert completed.status == "completed"
    assert all(e.event_id for e in events)
    # The stored node holds the whole streamed output: a follow-up sees it.
    assert c.interactions.get(created.id).output_text == text
    follow = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=created.id)
    assert "Karthik" in follow.output_text


def test_stream_reaches_the_app_before_the_provider_finishes(
    recall: Recall, fake_gemini: FakeGemini, loop_thread: LoopThread
) -> None:
    fake_gemini.hold = asyncio.Event()
    c = client(recall)
    stream = iter(c.interactions.create(model=MODEL, input="hello", stream=True))
    first = next(stream)
    assert first.event_type == "interaction.created"
    assert not fake_gemini.hold.is_set()  # the provider is still holding its second event
    loop_thread.loop.call_soon_threadsafe(fake_gemini.hold.set)
    rest = [e.event_type for e in stream]
    assert rest[-1] == "interaction.completed"


def test_native_stream_is_relayed_unmodified_and_recorded(
    recall_factory: RecallFactory, stateful_gemini: FakeGemini
) -> None:
    recall = recall_factory({"gemini": Upstream("gemini", stateful_gemini.url, "gemini", state="native")})
    body = {"model": MODEL, "input": "Hi, my name is Karthik.", "stream": True}
    with httpx.stream("POST", f"{recall.base('gemini')}/v1/interactions", json=body,
                      headers={"x-goog-api-key": "k"}) as answer:
        raw = b"".join(answer.iter_bytes())
    assert raw.startswith(b"event: interaction.created\ndata: {")
    assert b'"id": "v1_fake1"' in raw and raw.endswith(b"data: [DONE]\n\n")
    c = client(recall, key="k")
    got = c.interactions.get("v1_fake1")  # relayed to the provider in native mode
    assert got.id == "v1_fake1"
    rows = recall.query("SELECT id, mode, status, output FROM interactions")
    assert rows[0][:3] == ("v1_fake1", "native", "completed") and "Karthik" in rows[0][3]
    frames = recall.query("SELECT frame FROM stream_events WHERE interaction_id = 'v1_fake1' ORDER BY seq")
    assert b"".join(f[0] for f in frames) == raw
    follow = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id="v1_fake1")
    assert "Karthik" in follow.output_text


def test_earlier_revision_apps_get_content_events(recall: Recall, fake_gemini: FakeGemini) -> None:
    body = {"model": MODEL, "input": "Hi, my name is Karthik.", "stream": True}
    headers = {"x-goog-api-key": "k", "x-goog-api-client": "google-genai-sdk/1.56.0 gl-python/3.11.7"}
    with httpx.stream("POST", f"{recall.base('gemini')}/v1beta/interactions", json=body, headers=headers) as answer:
        lines = [line for line in answer.iter_lines() if line.startswith("data: {")]
    events = [json.loads(line[6:]) for line in lines]
    types = [e["event_type"] for e in events]
    assert types[0] == "interaction.start" and types[-1] == "interaction.complete"
    assert "content.delta" in types and "step.delta" not in types
    text = "".join(e["delta"]["text"] for e in events if e["event_type"] == "content.delta")
    assert text == "[1 user messages] You said: Hi, my name is Karthik."
    assert events[-1]["interaction"]["outputs"][-1]["text"] == text


def test_app_disconnect_loses_nothing(recall: Recall, fake_gemini: FakeGemini) -> None:
    fake_gemini.stream_delay = 0.05
    body = {"model": MODEL, "input": "one two three four five six", "stream": True}
    with httpx.stream("POST", f"{recall.base('gemini')}/v1/interactions", json=body,
                      headers={"x-goog-api-key": "k"}) as answer:
        lines = answer.iter_lines()
        assert next(lines) == "event: interaction.created"
        interaction_id = json.loads(next(lines).removeprefix("data: "))["interaction"]["id"]
    c = client(recall, key="k")
    done = wait_for_status(c, interaction_id, "completed")
    assert done.output_text == "[1 user messages] You said: one two three four five six"
    assert fake_gemini.streams_finished == 1


@pytest.mark.parametrize("fault", ["reset", "error_event", "bad_chunk", "truncate"])
@pytest.mark.parametrize("upstream", ["gemini", "gemgen"])
def test_provider_failing_mid_stream(recall: Recall, fake_gemini: FakeGemini, fault: str, upstream: str) -> None:
    fake_gemini.fault = fault
    c = client(recall, upstream=upstream)
    types, text, events = collect(c.interactions.create(model=MODEL, input="alpha beta gamma delta", stream=True))
    assert "error" in types, types
    error = next(e for e in events if e.event_type == "error")
    assert error.error.message
    interaction_id = events[0].interaction.id
    stored = c.interactions.get(interaction_id)
    assert stored.status == "failed"
    assert stored.errors and stored.errors[0].message
    # The partial output that did arrive is kept.
    assert stored.output_text == text and text.startswith("[1")


def test_resume_with_last_event_id(recall: Recall) -> None:
    c = client(recall)
    _, text, events = collect(c.interactions.create(model=MODEL, input="resume me please", stream=True))
    ids = [e.event_id for e in events]
    again = list(c.interactions.get(events[0].interaction.id, stream=True))
    assert [e.event_id for e in again] == ids
    after = list(c.interactions.get(events[0].interaction.id, stream=True, last_event_id=ids[2]))
    assert [e.event_id for e in after] == ids[3:]
    with pytest.raises(gi.BadRequestError):
        list(c.interactions.get(events[0].interaction.id, stream=True, last_event_id="nope"))


def test_get_stream_of_an_unstreamed_turn(recall: Recall) -> None:
    c = client(recall)
    turn = c.interactions.create(model=MODEL, input="not streamed")
    types, text, _ = collect(c.interactions.get(turn.id, stream=True))
    assert types[0] == "interaction.created" and types[-1] == "interaction.completed"
    assert text == turn.output_text


def test_background_poll_and_follow(recall: Recall, fake_gemini: FakeGemini) -> None:
    fake_gemini.stream_delay = 0.02
    c = client(recall)
    started = c.interactions.create(model=MODEL, input="Hi, my name is Karthik.", background=True)
    assert started.status == "in_progress"
    # Following the running interaction streams its events live to the end.
    types, text, _ = collect(c.interactions.get(started.id, stream=True))
    assert types[-1] == "interaction.completed"
    done = wait_for_status(c, started.id, "completed")
    assert done.output_text == text == "[1 user messages] You said: Hi, my name is Karthik."
    follow = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=started.id)
    assert "Karthik" in follow.output_text


def test_chaining_onto_a_running_interaction_is_400(recall: Recall, fake_gemini: FakeGemini, loop_thread: LoopThread) -> None:
    fake_gemini.hold = asyncio.Event()
    c = client(recall)
    started = c.interactions.create(model=MODEL, input="slow", background=True)
    with pytest.raises(gi.BadRequestError) as caught:
        c.interactions.create(model=MODEL, input="next", previous_interaction_id=started.id)
    assert "in progress" in caught.value.body["error"]["message"]
    loop_thread.loop.call_soon_threadsafe(fake_gemini.hold.set)
    wait_for_status(c, started.id, "completed")


def test_cancel_a_background_interaction(recall: Recall, fake_gemini: FakeGemini) -> None:
    fake_gemini.stream_delay = 0.2
    c = client(recall)
    started = c.interactions.create(model=MODEL, input="a long task with many words to say", background=True)
    cancelled = c.interactions.cancel(started.id)
    assert cancelled.status == "cancelled"
    assert c.interactions.get(started.id).status == "cancelled"
    assert fake_gemini.streams_finished == 0
    with pytest.raises(gi.BadRequestError):
        c.interactions.cancel(started.id)


def test_background_with_store_false_is_400(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    with pytest.raises(gi.BadRequestError) as caught:
        c.interactions.create(model=MODEL, input="x", background=True, store=False)
    assert "background" in caught.value.body["error"]["message"]
    assert fake_gemini.requests == []


def test_restart_marks_running_interactions_failed(
    recall_factory: RecallFactory, fake_gemini: FakeGemini, loop_thread: LoopThread
) -> None:
    fake_gemini.hold = asyncio.Event()
    upstreams = {"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")}
    first = recall_factory(upstreams)
    first_client = client(first)
    started = first_client.interactions.create(model=MODEL, input="interrupted", background=True)
    # A crash leaves the node in progress, under a lease nobody renews; once it has run
    # out, the next start marks the node failed.
    import sqlite3

    with sqlite3.connect(first.db_path) as db:  # the node is committed before the id was returned
        assert db.execute("SELECT status FROM interactions WHERE id = ?", (started.id,)).fetchone() == ("in_progress",)
        db.execute("UPDATE interactions SET run_owner = 'crashed', lease_until = 0 WHERE id = ?", (started.id,))
    second = recall_factory(upstreams)  # same database file
    second_client = client(second)
    got = second_client.interactions.get(started.id)
    assert got.status == "failed"
    assert "recall stopped" in got.errors[0].message
    loop_thread.loop.call_soon_threadsafe(fake_gemini.hold.set)


def test_a_stream_the_provider_refuses_leaves_no_node(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    # The fake refuses a chain's second turn that arrives without its first (brain.history_problem).
    with pytest.raises(gi.BadRequestError) as caught:
        list(c.interactions.create(model=MODEL, input="chain lonely turn 2", stream=True))
    assert "history" in caught.value.body["error"]["message"]
    assert recall.query("SELECT count(*) FROM interactions") == [(0,)]
    assert recall.search_entries() == 0
