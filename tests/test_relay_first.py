"""Native mode is a relay first; emulate mode judges as the provider would (DESIGN.md).

Each case here was found by running the openai SDK's own generated tests through recall
against a mock of the published contract (scripts/sdk-suites, docs/SDK_SUITES.md): recall
refused or broke calls the provider accepts. They run through the real openai SDK.
"""

from __future__ import annotations

import time

import openai
import orjson
import pytest

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_openai import FakeOpenAI
from .support.openai_sdk import MODEL, client

PROMPT = "pmpt_fake_weather"
PROMPT_MODEL = "gpt-5.5-from-the-prompt"


@pytest.fixture
def native_recall(recall_factory: RecallFactory, stateful_openai: FakeOpenAI) -> Recall:
    stateful_openai.prompts[PROMPT] = PROMPT_MODEL
    return recall_factory({"openai": Upstream("openai", stateful_openai.url, "openai", state="native")})


def test_native_stored_prompt_without_model_is_relayed(native_recall: Recall, stateful_openai: FakeOpenAI) -> None:
    turn = client(native_recall).responses.create(prompt={"id": PROMPT}, input="hi")
    assert turn.model == PROMPT_MODEL  # the stored prompt named it
    sent = stateful_openai.last_body()
    assert "model" not in sent and sent["prompt"] == {"id": PROMPT}
    assert native_recall.query("SELECT id, model, mode FROM interactions") == [(turn.id, PROMPT_MODEL, "native")]


def test_emulate_stored_prompt_without_model_is_relayed_with_the_prompt(openai_recall: Recall,
                                                                       fake_openai: FakeOpenAI) -> None:
    fake_openai.prompts[PROMPT] = PROMPT_MODEL
    c = client(openai_recall)
    first = c.responses.create(prompt={"id": PROMPT}, input="Hi, my name is Karthik.")
    sent = fake_openai.last_body()
    assert "model" not in sent and sent["prompt"] == {"id": PROMPT} and sent["store"] is False
    assert first.model == PROMPT_MODEL and not first.id.startswith("resp_fake")  # recall's own id
    second = c.responses.create(prompt={"id": PROMPT}, input="What is my name?", previous_response_id=first.id)
    assert "Karthik" in second.output_text  # recall rebuilt the history
    assert [item["content"] for item in fake_openai.last_body()["input"] if item.get("role") == "user"] == [
        [{"type": "input_text", "text": "Hi, my name is Karthik."}], "What is my name?"]


def test_emulate_without_model_or_prompt_gets_the_providers_verdict(openai_recall: Recall,
                                                                   fake_openai: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(openai_recall).responses.create(input="hi")
    assert caught.value.param == "model" and caught.value.code == "missing_required_parameter"
    assert len(fake_openai.requests) == 1  # OpenAI judged it, in its own words


def test_a_translated_call_still_needs_a_model(openai_recall: Recall, chat_only_openai: FakeOpenAI) -> None:
    """Over a Chat-only server recall writes the call itself: it needs the model, and cannot carry a prompt."""
    c = client(openai_recall, upstream="local")
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(input="hi")
    assert caught.value.param == "model"
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(prompt={"id": PROMPT}, input="hi")
    assert caught.value.code == "untranslatable" and "prompt" in caught.value.message
    assert chat_only_openai.requests == []


@pytest.mark.parametrize("state", ["native", "emulate"])
def test_chat_max_completion_tokens_zero_is_the_providers_to_judge(recall_factory: RecallFactory,
                                                                   fake_openai: FakeOpenAI, state: str) -> None:
    """The contract says an integer with no minimum; OpenAI, not recall, decides what 0 means."""
    recall = recall_factory({"openai": Upstream("openai", fake_openai.url, "openai", state=state)})
    completion = client(recall).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_completion_tokens=0)
    assert fake_openai.last_body()["max_completion_tokens"] == 0
    assert completion.id.startswith("chatcmpl-fake")


def test_native_leaves_mutually_exclusive_fields_to_the_provider(native_recall: Recall,
                                                                 stateful_openai: FakeOpenAI) -> None:
    """previous_response_id with conversation: OpenAI refuses it, in native mode in its own words."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(native_recall).responses.create(model=MODEL, input="hi", previous_response_id="resp_unknown",
                                               conversation="conv_unknown")
    assert len(stateful_openai.requests) == 1
    assert caught.value.code == "previous_response_not_found"  # the fake's verdict, relayed


@pytest.mark.parametrize("state", ["native", "emulate"])
def test_a_whole_json_answer_to_a_chat_stream_request_is_streamed(recall_factory: RecallFactory,
                                                                  fake_openai: FakeOpenAI, state: str) -> None:
    """A whole completion in answer to `stream: true` (what a contract that declares no event
    stream for a path allows) is no reason for a 502: the app gets its stream, made from that
    one answer, and the provider is asked (and bills) once."""
    fake_openai.whole_for_streams = True
    recall = recall_factory({"openai": Upstream("openai", fake_openai.url, "openai", state=state)})
    chunks = list(client(recall).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi, my name is Karthik."}], stream=True))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text and text == orjson.loads(fake_openai.answers[-1])["choices"][0]["message"]["content"]
    assert len(fake_openai.requests) == 1
    assert recall.query("SELECT status FROM interactions") == [("completed",)]


def test_a_whole_json_answer_to_a_responses_stream_request_is_relayed(native_recall: Recall,
                                                                      stateful_openai: FakeOpenAI) -> None:
    """In native mode the provider's answer passes on as it came, and is recorded."""
    stateful_openai.whole_for_streams = True
    raw = client(native_recall).responses.with_raw_response.create(model=MODEL, input="hi", stream=True)
    assert raw.http_response.status_code == 200
    assert raw.http_response.read() == stateful_openai.answers[-1]  # byte for byte
    turn_id = orjson.loads(stateful_openai.answers[-1])["id"]
    assert native_recall.query("SELECT id, mode FROM interactions") == [(turn_id, "native")]


def test_a_background_run_answered_whole_completes(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    """Emulate mode: a background run's stream request answered with a whole JSON reply still
    completes with that reply (asked once), rather than ending as a broken stream."""
    fake_openai.whole_for_streams = True
    c = client(openai_recall)
    started = c.responses.create(model=MODEL, input="Hi, my name is Karthik.", background=True)
    deadline = time.monotonic() + 10
    turn = c.responses.retrieve(started.id)
    while turn.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        turn = c.responses.retrieve(started.id)
    assert turn.status == "completed"
    answered = orjson.loads(fake_openai.answers[-1])["output"][0]["content"][0]["text"]
    assert turn.output_text == answered
    assert len(fake_openai.requests) == 1
