"""Chains that stay correct and cheap: re-sent items sent once, item references, a reasoning
item with the item after it, byte-identical rebuilds and the thread's prompt cache key.

Through the real openai SDK (and plain HTTP for the other upstreams), against the fakes,
which answer from the whole history they receive (tests/support/brain.py): an item sent
twice shows as a user message counted twice.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_anthropic import FakeAnthropic
from .support.fake_openai import FakeOpenAI
from .support.matrix import UPSTREAM_APIS, model_for
from .support.openai_sdk import MODEL, client, user_texts_sent


def _items(response: Any) -> list[dict[str, Any]]:
    """A Response's output items as an app re-sends them (the agent frameworks' way)."""
    return [item.model_dump(exclude_none=True) for item in response.output]


def test_resent_output_items_are_sent_once(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first = c.responses.create(model=MODEL, input="Hi, my name is Karthik.", reasoning={"effort": "low"})
    assert [item.type for item in first.output] == ["reasoning", "message"]
    # previous_response_id and, again, the output it names (with ids): OpenAI would answer
    # "Duplicate item found"; recall sends each item once.
    second = c.responses.create(model=MODEL, previous_response_id=first.id,
                                input=[*_items(first), {"role": "user", "content": "What is my name?"}])
    assert user_texts_sent(fake_openai) == ["Hi, my name is Karthik.", "What is my name?"]
    sent = fake_openai.last_body()["input"]
    assert [item.get("type", "message") for item in sent] == ["message", "reasoning", "message", "message"]
    assert fake_openai.reasoning_received == ["enc::resp_fake1"]  # the reasoning went back once
    assert second.output_text == "[2 user messages] Your name is Karthik."
    # The node keeps only what was new.
    assert [item.role for item in c.responses.input_items.list(second.id)] == ["user"]


def test_an_item_reference_to_the_chain_is_sent_once(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first = c.responses.create(model=MODEL, input="Hi, my name is Ada.")
    references = [{"type": "item_reference", "id": item.id} for item in first.output]
    inputs = c.responses.input_items.list(first.id)
    references += [{"type": "item_reference", "id": item.id} for item in inputs]
    second = c.responses.create(model=MODEL, previous_response_id=first.id,
                                input=[*references, {"role": "user", "content": "What is my name?"}])
    assert user_texts_sent(fake_openai) == ["Hi, my name is Ada.", "What is my name?"]
    assert all(item.get("type") != "item_reference" for item in fake_openai.last_body()["input"])
    assert second.output_text == "[2 user messages] Your name is Ada."


def test_an_unknown_item_reference_is_refused_before_anything_is_written(
        openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first = c.responses.create(model=MODEL, input="one")
    asked = len(fake_openai.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model=MODEL, previous_response_id=first.id,
                           input=[{"type": "item_reference", "id": "msg_nowhere"}, {"role": "user", "content": "two"}])
    assert "msg_nowhere" in caught.value.message and caught.value.param == "input"
    with pytest.raises(openai.BadRequestError):  # no chain at all: nothing to resolve it against
        c.responses.create(model=MODEL, input=[{"type": "item_reference", "id": first.output[0].id}])
    assert len(fake_openai.requests) == asked
    assert openai_recall.query("SELECT count(*) FROM interactions") == [(1,)]


def test_a_resent_reasoning_item_goes_with_the_item_after_it(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first = c.responses.create(model=MODEL, input="Hi, my name is Karthik.", reasoning={"effort": "low"})
    reasoning, message = _items(first)
    # The reasoning is known; the message after it is sent without its id: the pair is the chain's.
    resent = {k: v for k, v in message.items() if k != "id"}
    c.responses.create(model=MODEL, previous_response_id=first.id,
                       input=[reasoning, resent, {"role": "user", "content": "and?"}])
    sent = fake_openai.last_body()["input"]
    assert [item.get("type", "message") for item in sent] == ["message", "reasoning", "message", "message"]
    # A known reasoning item before the app's own new message does not take the message with it.
    c.responses.create(model=MODEL, previous_response_id=first.id,
                       input=[reasoning, {"role": "user", "content": "What is my name?"}])
    assert user_texts_sent(fake_openai) == ["Hi, my name is Karthik.", "What is my name?"]


# -- the thread's prompt cache key -----------------------------------------------------------


def test_a_thread_keeps_one_prompt_cache_key(openai_recall: Recall, fake_openai: FakeOpenAI,
                                             chat_only_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first = c.responses.create(model=MODEL, input="one")
    assert "prompt_cache_key" not in fake_openai.last_body()  # a first turn goes as the app sent it
    second = c.responses.create(model=MODEL, input="two", previous_response_id=first.id)
    assert fake_openai.last_body()["prompt_cache_key"] == first.id
    c.responses.create(model=MODEL, input="three", previous_response_id=second.id)
    assert fake_openai.last_body()["prompt_cache_key"] == first.id  # the root's, for every turn
    c.responses.create(model=MODEL, input="four", previous_response_id=second.id, prompt_cache_key="mine")
    assert fake_openai.last_body()["prompt_cache_key"] == "mine"  # the app's own wins
    # A chat-only server (vLLM, Ollama…) is sent none.
    local = client(openai_recall, "local")
    start = local.responses.create(model=MODEL, input="one")
    local.responses.create(model=MODEL, input="two", previous_response_id=start.id)
    assert "prompt_cache_key" not in chat_only_openai.last_body()


def test_chat_completions_on_openai_get_the_threads_key(recall_factory: RecallFactory, fake_openai: FakeOpenAI) -> None:
    recall = recall_factory({"openai": Upstream("openai", fake_openai.url, "openai", state="emulate")})
    base = f"{recall.base('openai')}/v1/chat/completions"
    headers = {"authorization": "Bearer sk-A"}
    first = httpx.post(base, json={"model": MODEL, "messages": [{"role": "user", "content": "one"}]}, headers=headers)
    root = first.json()["interaction_id"]
    httpx.post(base, json={"model": MODEL, "messages": [{"role": "user", "content": "two"}],
                           "previous_interaction_id": root}, headers=headers).raise_for_status()
    assert fake_openai.last_body()["prompt_cache_key"] == root


def test_anthropic_is_sent_no_prompt_cache_key(recall_factory: RecallFactory, fake_anthropic: FakeAnthropic) -> None:
    recall = recall_factory({"claude": Upstream("claude", fake_anthropic.url, "anthropic")})
    c = client(recall, "claude")
    first = c.responses.create(model="claude-sonnet-4-5", input="one")
    c.responses.create(model="claude-sonnet-4-5", input="two", previous_response_id=first.id)
    assert "prompt_cache_key" not in fake_anthropic.last_body()


# -- byte-identical rebuilds ----------------------------------------------------------------


@pytest.mark.parametrize("api", UPSTREAM_APIS)
def test_rebuilding_a_chain_twice_sends_the_same_bytes(matrix_recall: Recall, matrix_fakes: dict[str, Any],
                                                       api: str) -> None:
    """A provider's prompt cache matches exact prefixes: the same chain, rebuilt twice, must reach
    the provider byte for byte the same, for every upstream api."""
    fake = matrix_fakes[api]
    url = f"{matrix_recall.base(api)}/v1/responses"
    headers = {"authorization": "Bearer sk-bytes"}
    previous = None
    for text in ("Hi, my name is Karthik.", "I like cricket.", "What do I like?"):
        answer = httpx.post(url, json={"model": model_for(api), "input": text, "previous_response_id": previous,
                                       "instructions": "Be brief."}, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        previous = answer.json()["id"]
    bodies = []
    for _ in range(2):
        answer = httpx.post(url, json={"model": model_for(api), "input": "What is my name?",
                                       "previous_response_id": previous, "instructions": "Be brief."},
                            headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        assert "Karthik" in answer.json()["output"][-1]["content"][0]["text"]
        bodies.append([seen.raw for seen in fake.requests if seen.method == "POST"][-1])
    assert bodies[0] == bodies[1]
