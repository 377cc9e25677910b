"""End to end against a real stateless model: does the history recall rebuilds really reach it?

recall runs in emulate mode in front of llama.cpp's OpenAI-compatible server
(SmolLM2-135M-Instruct, started by scripts/real-model-up), and each front API's
official SDK chains a conversation through it. The model can only name the
user if the earlier turn arrived. Then the same conversations run again with
recall in replay mode and the model unreachable: the answers must be identical.

Skipped unless RECALL_E2E_LLM_URL names the server.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from google import genai
from parallel import Parallel

from proxy.config import Config, Upstream
from proxy.http.app import start

from ..support.loop_thread import LoopThread

LLM_URL = os.environ.get("RECALL_E2E_LLM_URL", "")
pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(not LLM_URL, reason="set RECALL_E2E_LLM_URL (scripts/real-model-up prints it) to run"),
]

MODEL = "smollm2"
INTRODUCTION = "Hi, my name is Karthik. I like to play cricket."
QUESTION = "What is my name?"
NAME = "Karthik"
KEY = "sk-local-model-needs-no-key"


def interactions(base: str, stream: bool) -> tuple[str, str]:
    client = genai.Client(api_key=KEY, http_options={"base_url": base, "retry_options": {"attempts": 1}})
    config = {"temperature": 0, "seed": 42, "max_output_tokens": 64}
    first = client.interactions.create(model=MODEL, input=INTRODUCTION, generation_config=config)

    def ask(previous: str | None) -> str:
        if not stream:
            return client.interactions.create(model=MODEL, input=QUESTION, previous_interaction_id=previous,
                                              generation_config=config).output_text
        events = client.interactions.create(model=MODEL, input=QUESTION, previous_interaction_id=previous,
                                            generation_config=config, stream=True)
        return "".join(e.delta.text for e in events if e.event_type == "step.delta" and e.delta.type == "text")

    return ask(first.id), ask(None)


def responses(base: str, stream: bool) -> tuple[str, str]:
    client = openai.OpenAI(api_key=KEY, base_url=f"{base}/v1", max_retries=0)
    first = client.responses.create(model=MODEL, input=INTRODUCTION, temperature=0, max_output_tokens=64)

    def ask(previous: str | None) -> str:
        if not stream:
            return client.responses.create(model=MODEL, input=QUESTION, previous_response_id=previous,
                                           temperature=0, max_output_tokens=64).output_text
        with client.responses.stream(model=MODEL, input=QUESTION, previous_response_id=previous,
                                     temperature=0, max_output_tokens=64) as events:
            return events.get_final_response().output_text

    return ask(first.id), ask(None)


def chat(base: str, stream: bool) -> tuple[str, str]:
    client = openai.OpenAI(api_key=KEY, base_url=f"{base}/v1", max_retries=0)
    settings = {"temperature": 0, "seed": 42, "max_tokens": 64}
    first = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": INTRODUCTION}], **settings)
    chain = {"previous_interaction_id": first.interaction_id}  # type: ignore[attr-defined]

    def ask(extra: dict | None) -> str:
        messages = [{"role": "user", "content": QUESTION}]
        if not stream:
            reply = client.chat.completions.create(model=MODEL, messages=messages, extra_body=extra, **settings)
            return reply.choices[0].message.content or ""
        chunks = client.chat.completions.create(model=MODEL, messages=messages, extra_body=extra, stream=True,
                                                **settings)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    return ask(chain), ask(None)


def messages(base: str, stream: bool) -> tuple[str, str]:
    client = anthropic.Anthropic(api_key=KEY, base_url=base, max_retries=0)
    first = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": INTRODUCTION}],
                                   extra_body={"temperature": 0})

    def ask(extra: dict) -> str:
        body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": QUESTION}],
                "extra_body": {"temperature": 0, **extra}}
        if not stream:
            return client.messages.create(**body).content[0].text
        with client.messages.stream(**body) as events:
            return events.get_final_message().content[0].text

    return ask({"previous_interaction_id": first.id}), ask({})


def task_runs(base: str, stream: bool) -> tuple[str, str]:
    client = Parallel(api_key=KEY, base_url=base, max_retries=0)
    first = client.task_run.create(input=INTRODUCTION, processor="lite")
    client.task_run.result(first.run_id, api_timeout=60)

    def ask(previous: str | None) -> str:
        run = client.task_run.create(input=QUESTION, processor="lite", previous_interaction_id=previous)
        return str(client.task_run.result(run.run_id, api_timeout=60).output.content)

    return ask(first.interaction_id), ask(None)


SCENARIOS: dict[str, Callable[[str, bool], tuple[str, str]]] = {
    "gemini-interactions": interactions,
    "openai-responses": responses,
    "openai-chat": chat,
    "anthropic-messages": messages,
    "parallel-tasks": task_runs,
}
CASES = [(name, stream) for name in SCENARIOS for stream in (False, True) if not (name == "parallel-tasks" and stream)]
IDS = [f"{name}-{'stream' if stream else 'plain'}" for name, stream in CASES]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """recall live in front of the model, or replaying its recordings with the model out of reach."""
    loop = LoopThread()
    db = tmp_path_factory.mktemp("e2e") / "recall.db"
    running: dict[str, tuple[object, str]] = {}

    def base(mode: str) -> str:
        if mode not in running:
            url = LLM_URL if mode == "live" else "http://127.0.0.1:9"  # discard port: nothing answers
            config = Config(host="127.0.0.1", port=0, mode=mode,
                            upstreams={"local": Upstream("local", url, "openai-chat", state="emulate", timeout_s=120)})
            runner, port = loop.run(start(config, db), timeout=60)
            running[mode] = (runner, f"http://127.0.0.1:{port}/local")
        return running[mode][1]

    yield base
    for runner, _ in running.values():
        loop.run(runner.cleanup())  # type: ignore[attr-defined]
    loop.close()


LIVE_ANSWERS: dict[str, tuple[str, str]] = {}


@pytest.mark.parametrize(("front", "stream"), CASES, ids=IDS)
def test_the_model_remembers_only_with_the_chain(servers: Callable[[str], str], front: str, stream: bool) -> None:
    with_chain, without_chain = SCENARIOS[front](servers("live"), stream)
    LIVE_ANSWERS[f"{front}-{stream}"] = (with_chain, without_chain)
    assert NAME in with_chain, with_chain
    assert NAME not in without_chain, without_chain


@pytest.mark.parametrize(("front", "stream"), CASES, ids=IDS)
def test_replay_gives_identical_answers_offline(servers: Callable[[str], str], front: str, stream: bool) -> None:
    recorded = LIVE_ANSWERS.get(f"{front}-{stream}")
    if recorded is None:
        pytest.skip("the live run of this case did not complete")
    assert SCENARIOS[front](servers("replay"), stream) == recorded



# -- a chain longer than the model's window ------------------------------------------------------

# SmolLM2 runs with a window of 2048 tokens (scripts/real-model-up: --n_ctx 2048); each note is
# some 250 tokens, so a dozen turns outgrow it several times over.
NOTE = "the river runs past the old mill, and the birds sing in the tall trees by the water. " * 12


@pytest.fixture(scope="module")
def long_chain_recall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """recall live in front of the model with no window configured: it learns the server's from
    the server's own context-length error, then cuts before it is refused again."""
    loop = LoopThread()
    db = tmp_path_factory.mktemp("e2e-long") / "recall.db"
    config = Config(host="127.0.0.1", port=0,
                    upstreams={"local": Upstream("local", LLM_URL, "openai-chat", state="emulate", timeout_s=120)})
    runner, port = loop.run(start(config, db), timeout=60)
    yield f"http://127.0.0.1:{port}/local", db
    loop.run(runner.cleanup())
    loop.close()


def long_chain(base: str, turns: int, truncation: str) -> list[str]:
    client = openai.OpenAI(api_key=KEY, base_url=f"{base}/v1", max_retries=0)
    previous = client.responses.create(model=MODEL, input=INTRODUCTION, temperature=0, max_output_tokens=32,
                                       truncation=truncation).id
    ids = [previous]
    for n in range(1, turns + 1):
        previous = client.responses.create(model=MODEL, input=f"Note {n}: {NOTE}", previous_response_id=previous,
                                           temperature=0, max_output_tokens=32, truncation=truncation).id
        ids.append(previous)
    return ids


def test_a_chain_longer_than_the_window_keeps_answering_with_truncation(
        long_chain_recall: tuple[str, Path]) -> None:
    base, db = long_chain_recall
    ids = long_chain(base, 12, "auto")
    with sqlite3.connect(db) as connection:
        requests = [json.loads(r) for (r,) in connection.execute(
            f"SELECT request FROM interactions WHERE id IN ({','.join('?' * len(ids))}) ORDER BY depth", ids)]
    cuts = [r["recall_truncation"] for r in requests if "recall_truncation" in r]
    assert cuts, "a chain of this length must have been cut"
    assert cuts[-1]["turns_dropped"] > 0 and cuts[-1]["window"] <= 2048
    # The window was learnt once from the server's refusal; later cuts came before a refusal.
    assert sum(1 for cut in cuts if cut.get("decided_by") == "provider_error") == 1


def test_without_truncation_the_servers_overflow_is_a_clean_400(long_chain_recall: tuple[str, Path]) -> None:
    base, _ = long_chain_recall
    with pytest.raises(openai.BadRequestError) as caught:
        long_chain(base, 12, "disabled")
    assert caught.value.status_code == 400 and caught.value.code == "context_length_exceeded"


def test_a_chain_longer_than_the_window_keeps_answering_across_compactions(
        long_chain_recall: tuple[str, Path]) -> None:
    """Without truncation, compacting every few turns keeps the chain inside the window: recall
    asks the model itself for the summary (a Chat server has no compaction of its own), and the
    turns after a compaction are rebuilt from it. A compacted window keeps the user's messages
    (OpenAI's shape) and replaces what the model said, so here the model's long replies fill
    the window: some 200 tokens a turn, fifteen turns, three times past 2048 in all."""
    base, db = long_chain_recall
    client = openai.OpenAI(api_key=KEY, base_url=f"{base}/v1", max_retries=0)
    previous = client.responses.create(model=MODEL, input=INTRODUCTION, temperature=0, max_output_tokens=32).id
    compactions = []
    for n in range(1, 16):
        previous = client.responses.create(model=MODEL, input=f"Tell me a long story about river number {n}.",
                                           previous_response_id=previous, temperature=0, max_output_tokens=200).id
        if n % 4 == 0:
            compacted = client.responses.compact(model=MODEL, previous_response_id=previous)
            assert compacted.output[-1].type == "compaction"
            compactions.append(compacted.id)
            previous = compacted.id
    with sqlite3.connect(db) as connection:
        said = connection.execute(
            "SELECT sum(output_tokens) FROM interactions WHERE id IN"
            " (WITH RECURSIVE up(id) AS (SELECT ? UNION ALL SELECT parent_id FROM interactions JOIN up USING (id)"
            "  WHERE parent_id IS NOT NULL) SELECT id FROM up)", (previous,)).fetchone()[0]
    assert len(compactions) == 3
    assert said > 2048, f"the chain's replies ({said} tokens) must outgrow the window for this test to mean anything"
