"""Compaction on emulated chains: `POST /v1/responses/compact` asked of OpenAI with the rebuilt
chain, or made by recall on any other upstream with a summary sealed in the item; histories
that start at the newest compaction; recall's sealed items read back, forged ones refused.

Through the real openai SDK against the fakes (tests/support/brain.py answers from the whole
history it receives, and writes a summary of the user's messages when recall asks for one).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from proxy.config import Upstream
from proxy.model import SUMMARY_HEADING
from proxy.pipeline.compaction import SUMMARY_REQUEST
from proxy.seal import SEALED_PREFIX

from .conftest import Recall, RecallFactory
from .support.conversations import cli
from .support.fake_anthropic import FakeAnthropic
from .support.fake_openai import FakeOpenAI
from .support.openai_sdk import MODEL, client, user_texts_sent

CLAUDE = "claude-sonnet-4-5"


def _chain(c: openai.OpenAI, model: str, texts: list[str]) -> list[Any]:
    turns: list[Any] = []
    for text in texts:
        turns.append(c.responses.create(model=model, input=text, previous_response_id=turns[-1].id if turns else None))
    return turns


def _items(compacted: Any) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]


def test_openai_compacts_the_rebuilt_chain_and_its_item_is_kept_as_it_came(
        openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first, _, last = _chain(c, MODEL, ["Hi, my name is Karthik.", "I like cricket.", "And tea."])
    compacted = c.responses.compact(model=MODEL, previous_response_id=last.id)
    sent = fake_openai.last_body()
    assert fake_openai.requests[-1].path == "/v1/responses/compact"
    assert "previous_response_id" not in sent and "store" not in sent  # recall keeps the chain: all of it as input
    assert user_texts_sent(fake_openai) == ["Hi, my name is Karthik.", "I like cricket.", "And tea."]
    assert [item.get("role") for item in sent["input"]] == ["user", "assistant"] * 3
    assert sent["prompt_cache_key"] == first.id
    provider = fake_openai.answers[-1]
    assert compacted.object == "response.compaction" and compacted.id.startswith("resp_")
    assert not compacted.id.startswith("resp_cmpfake")  # recall's id: a node on the chain
    item = compacted.output[-1]
    assert (item.type, item.id, item.encrypted_content) == ("compaction", "cmp_fake4", "cmp::4")
    assert b'"encrypted_content": "cmp::4"' in provider
    # The app continues from the compacted window (the OpenAI way): the item goes back unchanged.
    answer = c.responses.create(model=MODEL, input=[*_items(compacted), {"role": "user", "content": "What is my name?"}])
    assert [i for i in fake_openai.last_body()["input"] if i.get("type") == "compaction"] == [
        {"id": "cmp_fake4", "type": "compaction", "encrypted_content": "cmp::4"}]
    assert "Karthik" in answer.output_text
    # Or chains on the compaction: the history starts at it, the turns before it are not sent again.
    follow = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=compacted.id)
    sent = fake_openai.last_body()["input"]
    assert [i.get("type", "message") for i in sent] == ["message"] * 3 + ["compaction", "message"]
    assert all(i.get("role") != "assistant" for i in sent)
    assert "Karthik" in follow.output_text


def test_recall_compacts_on_an_upstream_that_cannot(recall_factory: RecallFactory,
                                                     fake_anthropic: FakeAnthropic) -> None:
    recall = recall_factory({"claude": Upstream("claude", fake_anthropic.url, "anthropic")})
    c = client(recall, "claude")
    *_, last = _chain(c, CLAUDE, ["Hi, my name is Karthik.", "I like cricket.", "And tea."])
    # The Agents SDK's session names an OpenAI model; the thread's own model writes the summary.
    compacted = c.responses.compact(model="gpt-4.1", previous_response_id=last.id)
    asked = fake_anthropic.last_body()
    assert asked["model"] == CLAUDE and asked["messages"][-1]["content"][0]["text"] == SUMMARY_REQUEST
    assert [m["role"] for m in asked["messages"]] == ["user", "assistant"] * 3 + ["user"]
    *users, item = compacted.output
    assert [u.content[0].text for u in users] == ["Hi, my name is Karthik.", "I like cricket.", "And tea."]
    assert item.type == "compaction" and item.encrypted_content.startswith(SEALED_PREFIX)
    # An app that stores nothing carries the window and sends it back: recall reads the summary.
    answer = c.responses.create(model=CLAUDE, store=False,
                                input=[*_items(compacted), {"role": "user", "content": "What is my name?"}])
    told = fake_anthropic.last_body()["messages"]
    summary = told[-2]["content"][0]["text"]
    assert summary.startswith(SUMMARY_HEADING)
    assert "Hi, my name is Karthik. | I like cricket. | And tea." in summary
    assert "Karthik" in answer.output_text
    # Chained on the compaction, the history starts there too.
    c.responses.create(model=CLAUDE, input="What is my name?", previous_response_id=compacted.id)
    told = fake_anthropic.last_body()["messages"]
    # Anthropic's alternation: the three user messages in one, then the summary, then the question.
    assert [m["role"] for m in told] == ["user", "assistant", "user"]
    assert [b["text"] for b in told[0]["content"]] == ["Hi, my name is Karthik.", "I like cricket.", "And tea."]
    assert told[1]["content"][0]["text"].startswith(SUMMARY_HEADING)


def test_a_forged_compaction_item_is_refused(recall_factory: RecallFactory, fake_anthropic: FakeAnthropic) -> None:
    recall = recall_factory({"claude": Upstream("claude", fake_anthropic.url, "anthropic")})
    c = client(recall, "claude")
    compacted = c.responses.compact(model=CLAUDE, input=[{"role": "user", "content": "Hi, my name is Ada."}])
    token = compacted.output[-1].encrypted_content
    payload, _, mac = token[len(SEALED_PREFIX):].partition(".")
    forged = f"{SEALED_PREFIX}{payload[:-2]}xx.{mac}"
    asked = len(fake_anthropic.requests)
    for bad in (forged, SEALED_PREFIX + "not-a-token"):
        with pytest.raises(openai.BadRequestError) as caught:
            c.responses.create(model=CLAUDE, input=[{"type": "compaction", "encrypted_content": bad},
                                                    {"role": "user", "content": "What is my name?"}])
        assert "could not be verified" in caught.value.message and caught.value.param == "input"
    assert len(fake_anthropic.requests) == asked  # refused before the provider was asked
    assert recall.query("SELECT count(*) FROM interactions") == [(1,)]  # the compaction alone


def test_the_key_survives_a_restart(recall_factory: RecallFactory, fake_anthropic: FakeAnthropic) -> None:
    upstreams = {"claude": Upstream("claude", fake_anthropic.url, "anthropic")}
    compacted = client(recall_factory(upstreams), "claude").responses.compact(
        model=CLAUDE, input=[{"role": "user", "content": "Hi, my name is Ada."}])
    again = recall_factory(upstreams)  # a second server on the same database: the same key file
    answer = client(again, "claude").responses.create(
        model=CLAUDE, input=[*_items(compacted), {"role": "user", "content": "What is my name?"}])
    assert "Ada" in answer.output_text
    key = again.db_path.with_name(again.db_path.name + ".seal-key")
    assert key.stat().st_mode & 0o777 == 0o600


def test_compact_errors_are_the_providers_shape(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.compact(model=MODEL, previous_response_id="resp_nowhere")
    assert caught.value.code == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        c.post("/responses/compact", body={"input": "hi"}, cast_to=object)
    assert caught.value.param == "model"
    assert [r.path for r in fake_openai.requests] == []


# -- a real client: the OpenAI Agents SDK's compaction session ---------------------------------


@pytest.mark.parametrize("upstream", ["openai", "claude"])
def test_the_agents_sdk_compaction_session_keeps_the_first_turn(
        recall_factory: RecallFactory, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, upstream: str) -> None:
    """An agent whose session compacts itself through recall (OpenAI's compaction on an OpenAI
    upstream, recall's own on Anthropic) still knows, many turns later, what the first turn said."""
    from agents import Agent, OpenAIResponsesModel, Runner, SQLiteSession, set_tracing_disabled
    from agents.memory import OpenAIResponsesCompactionSession

    set_tracing_disabled(True)  # the SDK would send its traces to OpenAI
    recall = recall_factory({"openai": Upstream("openai", fake_openai.url, "openai", state="emulate"),
                             "claude": Upstream("claude", fake_anthropic.url, "anthropic")})
    model = MODEL if upstream == "openai" else CLAUDE
    said = ["Hi, my name is Karthik.", *(f"Note {n}: the sky is blue." for n in range(1, 12)), "What is my name?"]

    async def conversation() -> tuple[list[str], list[Any]]:
        sdk = openai.AsyncOpenAI(api_key="sk-A", base_url=f"{recall.base(upstream)}/v1", max_retries=0)
        agent = Agent(name="helper", instructions="Be brief.", model=OpenAIResponsesModel(model=model, openai_client=sdk))
        session = OpenAIResponsesCompactionSession("thread-1", SQLiteSession("thread-1"), client=sdk, model="gpt-4.1")
        answers = [str((await Runner.run(agent, text, session=session)).final_output) for text in said]
        return answers, await session.get_items()

    answers, items = asyncio.run(conversation())
    assert "Your name is Karthik." in answers[-1]
    assert [item["type"] for item in items if item.get("type") == "compaction"] == ["compaction"]
    compactions = recall.query("SELECT count(*) FROM exchanges WHERE path LIKE '%/responses/compact'")
    assert compactions == [(1,)]
    if upstream == "openai":
        assert fake_openai.bodies("/v1/responses/compact")[0]["model"] == "gpt-4.1"
    else:
        asked = [seen.body["messages"][-1]["content"] for seen in fake_anthropic.requests]
        assert sum(isinstance(c, list) and c[-1].get("text") == SUMMARY_REQUEST for c in asked) == 1


# -- seen in `recall show`, `tree` and the viewer -----------------------------------------------


def test_a_compaction_shows_in_show_tree_and_the_viewer(recall_factory: RecallFactory,
                                                       fake_anthropic: FakeAnthropic) -> None:
    recall = recall_factory({"claude": Upstream("claude", fake_anthropic.url, "anthropic")})
    c = client(recall, "claude")
    *_, last = _chain(c, CLAUDE, ["Hi, my name is Karthik.", "I like cricket."])
    compacted = c.responses.compact(model=CLAUDE, previous_response_id=last.id)
    after = c.responses.create(model=CLAUDE, input="What is my name?", previous_response_id=compacted.id)
    shown = cli(recall.db_path, "show", after.id).output
    assert "[compaction: the conversation before it, summarised] Summary: Hi, my name is Karthik. | I like cricket." \
        in shown
    tree = cli(recall.db_path, "tree", after.id).output.splitlines()
    assert [line for line in tree if "[compaction: history starts here]" in line] == [
        line for line in tree if compacted.id in line]
    record = json.loads(cli(recall.db_path, "tree", after.id, "--json").output)
    node = record["tree"][0]
    while node["id"] != compacted.id:
        node = node["children"][0]
    assert node["compaction"] is True and node["children"][0]["compaction"] is False
    nodes = httpx.get(f"{recall.url}/_recall/api/conversations/{after.id}").json()["nodes"]
    parts = [p for n in nodes if n["id"] == compacted.id for t in n["output"] for p in t["parts"]]
    assert parts[-1]["kind"] == "compaction" and parts[-1]["text"].startswith("Summary: Hi, my name is Karthik.")


@pytest.mark.parametrize("stream", [False, True])
def test_openais_server_side_compaction_starts_the_next_rebuild(openai_recall: Recall, fake_openai: FakeOpenAI,
                                                                 stream: bool) -> None:
    """`context_management` goes to OpenAI as the app sent it; the compaction item OpenAI puts in
    the response's output is kept, and the next turn is rebuilt from it."""
    c = client(openai_recall)
    managed = [{"type": "compaction", "compact_threshold": 30}]
    turns: list[Any] = []
    for text in ["Hi, my name is Karthik.", "I like cricket.", "And tea."]:
        asked = dict(model=MODEL, input=text, previous_response_id=turns[-1].id if turns else None,
                     context_management=managed)
        if stream:
            with c.responses.stream(**asked) as events:  # type: ignore[arg-type]
                turns.append(events.get_final_response())
        else:
            turns.append(c.responses.create(**asked))  # type: ignore[arg-type]
        assert fake_openai.last_body()["context_management"] == managed
    assert [item.type for item in turns[-1].output] == ["compaction", "message"]
    c.responses.create(model=MODEL, input="What is my name?", previous_response_id=turns[-1].id)
    sent = fake_openai.last_body()["input"]
    assert [i.get("type", "message") for i in sent] == ["compaction", "message", "message"]
    assert sent[0]["encrypted_content"] == turns[-1].output[0].encrypted_content


def test_server_side_compaction_is_refused_by_name_where_recall_does_not_emulate_it(
        recall_factory: RecallFactory, fake_anthropic: FakeAnthropic) -> None:
    recall = recall_factory({"claude": Upstream("claude", fake_anthropic.url, "anthropic")})
    with pytest.raises(openai.BadRequestError) as caught:
        client(recall, "claude").responses.create(model=CLAUDE, input="hi",
                                                  context_management=[{"type": "compaction", "compact_threshold": 1000}])
    assert "context_management" in caught.value.message and caught.value.code == "untranslatable"
    assert fake_anthropic.requests == []
