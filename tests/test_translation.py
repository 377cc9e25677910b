"""What crosses the matrix besides text: function calls, media, reasoning, and what cannot cross.

The same module-scoped recall and matrix_fakes as tests/test_matrix.py: one stateless
fake per upstream `api`, mounted under its own name, recall keeping the state.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Recall
from .support.matrix import (
    FRONTS,
    Media,
    Result,
    Text,
    last_body,
    model_for,
    refusal,
    sent_conversation,
    sent_media,
    sent_tool_traffic,
)

TOOL_FRONTS = [name for name, front in FRONTS.items() if front.has_tools]
TOOL_APIS = ["gemini", "gemini-generate", "openai", "openai-chat", "anthropic"]
# How each front API says "the model called a function".
CALLED = {"interactions": "requires_action", "responses": "completed", "chat": "tool_calls", "messages": "tool_use"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("api", TOOL_APIS)
@pytest.mark.parametrize("front_name", TOOL_FRONTS)
def test_function_call_round_trip(matrix_recall: Recall, matrix_fakes: dict[str, Any], front_name: str,
                                  api: str, stream: bool) -> None:
    """A tool declared, called, answered, and the chain going on: the call's id the app saw is the one
    its result names, and both reach the provider in its own shape on every later turn."""
    front, base, model = FRONTS[front_name], matrix_recall.base(api), model_for(api)
    asked = front.ask(base, model, [Text("Hi, my name is Karthik. What is the weather in Paris?")], None,
                      stream=stream, tools=True)
    assert asked.finish == CALLED[front_name]
    assert [(c["name"], c["arguments"]) for c in asked.calls] == [("get_weather", {"city": "Paris"})]
    call_id = asked.calls[0]["id"]
    assert call_id
    answered = front.ask(base, model, [Result(call_id, "get_weather", {"temp_c": 18})], asked.id,
                         stream=stream, tools=True)
    assert "The tool said" in answered.text and "18" in answered.text
    assert not answered.calls
    going_on = front.ask(base, model, [Text("What is my name?")], answered.id, stream=stream, tools=True)
    assert "Karthik" in going_on.text
    body = last_body(matrix_fakes[api])
    assert sent_tool_traffic(api, body) == [("call", call_id, {"city": "Paris"}), ("result", call_id, {"temp_c": 18})]
    assert [role for role, _ in sent_conversation(api, body)] == ["user", "model", "user"]


@pytest.mark.parametrize("front_name", ["interactions", "responses", "messages"])
def test_function_tools_cannot_reach_a_task_run(matrix_recall: Recall, matrix_fakes: dict[str, Any],
                                                front_name: str) -> None:
    """Parallel's Task API has no function tools: a 400 in the front API's shape, nothing sent.
    (Chat apps reach Parallel's own Chat API, which takes the request as it is.)"""
    sent_before = len(matrix_fakes["parallel"].requests)
    message = refusal(front_name, lambda: FRONTS[front_name].ask(
        matrix_recall.base("parallel"), "lite", [Text("Weather in Paris?")], None, stream=False, tools=True))
    assert "tools cannot be carried to an upstream that speaks parallel" in message
    assert len(matrix_fakes["parallel"].requests) == sent_before


PNG, PDF = "iVBORw0KGgoAAAANSUhEUg==", "JVBERi0xLjQK"
MEDIA = {
    "image-inline": Media("image", "image/png", data=PNG),
    "image-url": Media("image", "image/png", url="https://example.org/cat.png"),
    "document-inline": Media("document", "application/pdf", data=PDF),
    "document-url": Media("document", "application/pdf", url="https://example.org/paper.pdf"),
}
# What each upstream API takes; Chat Completions has no file-by-URL form.
TAKES = {api: set(MEDIA) for api in TOOL_APIS} | {"openai-chat": {"image-inline", "image-url", "document-inline"}}
MEDIA_CASES = [(front, api, media) for front in TOOL_FRONTS for api in TOOL_APIS for media in MEDIA
               if not (front == "chat" and media == "document-url")]  # a Chat app cannot send a file by URL


@pytest.mark.parametrize(("front_name", "api", "media"), MEDIA_CASES)
def test_media_carriage(matrix_recall: Recall, matrix_fakes: dict[str, Any], front_name: str, api: str,
                        media: str) -> None:
    """An image or document, inline or by URL, reaches the provider in its own shape on this turn and the
    next; what the upstream API cannot take is a 400 naming it and where it is, and nothing is sent."""
    front, base, model, item = FRONTS[front_name], matrix_recall.base(api), model_for(api), MEDIA[media]
    first = [Text("Hi, my name is Karthik. Look at this."), item]
    if media not in TAKES[api]:
        sent_before = len(matrix_fakes[api].requests)
        message = refusal(front_name, lambda: front.ask(base, model, first, None, stream=False))
        assert f"a {item.kind} given by URL (turn 1, part 2 of this request's input)" in message
        assert f"an upstream that speaks {api}" in message and "inline (base64) only" in message
        assert len(matrix_fakes[api].requests) == sent_before
        return
    looked = front.ask(base, model, first, None, stream=False)
    follow = front.ask(base, model, [Text("What is my name?")], looked.id, stream=False)
    assert "Karthik" in follow.text
    [(kind, how, mime_type)] = sent_media(api, last_body(matrix_fakes[api]))
    assert (kind, how) == (item.kind, "inline" if item.data else item.url)
    assert mime_type in (item.mime_type, None)  # a URL part in Chat and Responses names no type


@pytest.mark.parametrize("front_name", ["interactions", "responses", "messages"])
def test_media_cannot_reach_a_task_run(matrix_recall: Recall, matrix_fakes: dict[str, Any], front_name: str) -> None:
    message = refusal(front_name, lambda: FRONTS[front_name].ask(
        matrix_recall.base("parallel"), "lite", [Text("Look."), MEDIA["image-inline"]], None, stream=False))
    assert "an image given inline (turn 1, part 2 of this request's input)" in message
    assert "an upstream that speaks parallel (it takes no images)" in message


def test_media_earlier_in_a_chain_is_refused_where_it_cannot_go(matrix_recall: Recall,
                                                                 matrix_fakes: dict[str, Any]) -> None:
    """A chain may move to another upstream at any turn; media it holds must fit there too."""
    front = FRONTS["interactions"]
    looked = front.ask(matrix_recall.base("gemini"), model_for("gemini"),
                       [Text("Hi, my name is Karthik."), MEDIA["document-url"]], None, stream=False)
    sent_before = len(matrix_fakes["openai-chat"].requests)
    message = refusal("interactions", lambda: front.ask(
        matrix_recall.base("openai-chat"), model_for("openai-chat"), [Text("What is my name?")], looked.id,
        stream=False))
    assert ("a document given by URL (turn 1, part 2 of the conversation this request continues) cannot be carried"
            " from the gemini-interactions API to an upstream that speaks openai-chat") in message
    assert len(matrix_fakes["openai-chat"].requests) == sent_before
    # The same chain goes on where the document can go.
    onward = front.ask(matrix_recall.base("anthropic"), model_for("anthropic"), [Text("What is my name?")],
                       looked.id, stream=False)
    assert "Karthik" in onward.text
    assert sent_media("anthropic", last_body(matrix_fakes["anthropic"])) == [("document", MEDIA["document-url"].url, None)]


THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048}
REASONING = {"reasoning": {"effort": "low"}}
# (front API, upstream api, what makes the model think): the thoughts come from, and go back to, one provider
# family (a Responses app's reasoning effort is an Anthropic thinking budget).
SAME_FAMILY = [("interactions", "gemini", {}), ("interactions", "gemini-generate", {}),
               ("responses", "openai", REASONING), ("messages", "anthropic", THINKING),
               ("responses", "anthropic", REASONING)]


def _signatures(fake: Any) -> tuple[set[str], list[str]]:
    """The opaque reasoning tokens a fake handed out, and those that came back to it."""
    if hasattr(fake, "minted_reasoning"):
        return fake.minted_reasoning, fake.reasoning_received
    return fake.minted_signatures, fake.signatures_received


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(("front_name", "api", "extra"), SAME_FAMILY, ids=[f"{f}-{a}" for f, a, _ in SAME_FAMILY])
def test_reasoning_is_kept_within_a_family(matrix_recall: Recall, matrix_fakes: dict[str, Any], front_name: str,
                                          api: str, extra: dict[str, Any], stream: bool) -> None:
    """The provider's thoughts and their signatures go back to it on the next turn (it checks them)."""
    front, base, model = FRONTS[front_name], matrix_recall.base(api), model_for(api, thinking=True)
    minted, received = _signatures(matrix_fakes[api])
    before = len(minted)
    first = front.ask(base, model, [Text("Hi, my name is Karthik.")], None, stream=stream, extra=extra)
    assert first.thoughts >= 1
    mine = minted.copy()
    assert len(mine) == before + 1
    came_back = len(received)
    second = front.ask(base, model, [Text("What is my name?")], first.id, stream=stream, extra=extra)
    assert "Karthik" in second.text
    assert set(received[came_back:]) & mine  # the first turn's signature, sent back and verified


# (front API, the family's upstream, what makes it think, an upstream of another family)
ACROSS = [("messages", "anthropic", THINKING, "gemini-generate"), ("interactions", "gemini", {}, "openai"),
          ("responses", "openai", REASONING, "anthropic"), ("interactions", "gemini-generate", {}, "openai-chat")]


@pytest.mark.parametrize(("front_name", "home", "extra", "away"), ACROSS, ids=[f"{f}-{h}-{a}" for f, h, _, a in ACROSS])
def test_reasoning_is_dropped_cleanly_across_families(matrix_recall: Recall, matrix_fakes: dict[str, Any],
                                                      front_name: str, home: str, extra: dict[str, Any],
                                                      away: str) -> None:
    """A chain that moves to another provider family leaves its thoughts behind (the other provider
    could not verify them), and picks them up again when it comes home."""
    front = FRONTS[front_name]
    minted, received = _signatures(matrix_fakes[home])
    first = front.ask(matrix_recall.base(home), model_for(home, thinking=True), [Text("Hi, my name is Karthik.")],
                      None, stream=False, extra=extra)
    assert first.thoughts >= 1
    away_turn = front.ask(matrix_recall.base(away), model_for(away), [Text("I like cricket.")], first.id, stream=False)
    sent_away = json.dumps(last_body(matrix_fakes[away]))
    assert not any(signature in sent_away for signature in minted)
    assert [role for role, _ in sent_conversation(away, last_body(matrix_fakes[away]))] == ["user", "model", "user"]
    came_back = len(received)
    home_again = front.ask(matrix_recall.base(home), model_for(home, thinking=True), [Text("What is my name?")],
                           away_turn.id, stream=False, extra=extra)
    assert "Karthik" in home_again.text
    assert set(received[came_back:]) & minted  # the first turn's reasoning is the family's again


SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
# Where each upstream API takes a JSON schema for the answer.
SCHEMA_AT = {"gemini": lambda b: b["response_format"],
             "gemini-generate": lambda b: b["generationConfig"]["responseJsonSchema"],
             "openai": lambda b: b["text"]["format"]["schema"],
             "openai-chat": lambda b: b["response_format"]["json_schema"]["schema"],
             "anthropic": lambda b: b["output_config"]["format"]["schema"],
             "parallel": lambda b: b["task_spec"]["output_schema"]["json_schema"]}


@pytest.mark.parametrize("api", list(SCHEMA_AT))
def test_structured_output_is_carried(matrix_recall: Recall, matrix_fakes: dict[str, Any], api: str) -> None:
    """A Responses app's JSON schema binds every upstream, each in its own field (Parallel: the task's output schema)."""
    text_format = {"format": {"type": "json_schema", "name": "reply", "schema": SCHEMA}}
    reply = FRONTS["responses"].ask(matrix_recall.base(api), model_for(api), [Text("Answer in JSON.")], None,
                                    stream=False, extra={"text": text_format})
    assert SCHEMA_AT[api](last_body(matrix_fakes[api])) == SCHEMA
    if api == "parallel":  # a json run's output is the object, as JSON text
        assert json.loads(reply.text) == {"answer": "answer: [1 user messages] You said: Answer in JSON."}


# Where each upstream API takes a forced choice of the function get_weather.
FORCED_AT = {"gemini": lambda b: b["generation_config"]["tool_choice"] == {"allowed_tools": {
                 "mode": "any", "tools": ["get_weather"]}},
             "gemini-generate": lambda b: b["toolConfig"] == {"functionCallingConfig": {
                 "mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
             "openai": lambda b: b["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}},
             "openai-chat": lambda b: b["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}},
             "anthropic": lambda b: b["tool_choice"] == {"type": "tool", "name": "get_weather"}}


@pytest.mark.parametrize("api", list(FORCED_AT))
def test_forced_tool_choice_is_carried(matrix_recall: Recall, matrix_fakes: dict[str, Any], api: str) -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    FRONTS["chat"].ask(matrix_recall.base(api), model_for(api), [Text("What is the weather in Oslo?")], None,
                       stream=False, tools=True, extra={"tool_choice": choice})
    assert FORCED_AT[api](last_body(matrix_fakes[api]))


# (front API, upstream api, what the app sends, what the 400 must say: what and where)
REFUSED = [
    ("interactions", "openai", {"tools": [{"type": "google_search"}]},
     "tools[0] (type 'google_search') cannot be carried from the gemini-interactions API to an upstream that speaks openai"),
    ("interactions", "anthropic", {"response_modalities": ["image"]},
     "response_modalities ['image'] cannot be carried from the gemini-interactions API to an upstream that speaks"
     " anthropic"),
    ("interactions", "parallel", {"generation_config": {"stop_sequences": ["END"]}},
     "generation_config.stop_sequences cannot be carried from the gemini-interactions API to an upstream that speaks"
     " parallel (it has no stop sequences)"),
    ("responses", "gemini-generate", {"tools": [{"type": "web_search"}]},
     "tools[0] (type 'web_search') cannot be carried from the openai-responses API to an upstream that speaks"
     " gemini-generate"),
    ("chat", "anthropic", {"n": 2},
     "n > 1 cannot be carried from the openai-chat API to an upstream that speaks anthropic"),
    ("messages", "openai", {"stop_sequences": ["END"]},
     "stop_sequences cannot be carried from the anthropic-messages API to an upstream that speaks openai"
     " (it has no stop sequences)"),
    ("messages", "openai-chat", {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     "tools.0 (type 'web_search_20250305') cannot be carried from the anthropic-messages API to an upstream that"
     " speaks openai-chat"),
    ("tasks", "anthropic", {"source_policy": {"include_domains": ["example.org"]}},
     "source_policy cannot be carried from the parallel-tasks API to an upstream that speaks anthropic"),
    ("interactions", "openai-chat", {"cached_content": "cachedContents/abc"},
     "cached_content cannot be carried from the gemini-interactions API to an upstream that speaks openai-chat"),
    ("responses", "anthropic", {"prompt": {"id": "pmpt_123"}},
     "prompt cannot be carried from the openai-responses API to an upstream that speaks anthropic"),
    ("messages", "gemini", {"container": "container_1"},
     "container cannot be carried from the anthropic-messages API to an upstream that speaks gemini"),
]


@pytest.mark.parametrize(("front_name", "api", "extra", "said"), REFUSED, ids=[f"{f}-{a}" for f, a, _, _ in REFUSED])
def test_what_cannot_be_carried_is_a_400_naming_it(matrix_recall: Recall, matrix_fakes: dict[str, Any],
                                                   front_name: str, api: str, extra: dict[str, Any], said: str) -> None:
    sent_before = len(matrix_fakes[api].requests)
    message = refusal(front_name, lambda: FRONTS[front_name].ask(
        matrix_recall.base(api), model_for(api), [Text("Hello.")], None, stream=False, extra=extra))
    assert said in message
    assert len(matrix_fakes[api].requests) == sent_before


# (front API, upstream api, settings in the front API's own words, with tools?, how the upstream must have them)
SETTINGS_CASES = [
    ("interactions", "anthropic", {"response_format": SCHEMA}, False,
     lambda b: b["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}),
    ("interactions", "openai-chat", {"generation_config": {"thinking_level": "low", "tool_choice": "any"}}, True,
     lambda b: b["reasoning_effort"] == "low" and b["tool_choice"] == "required"),
    ("messages", "gemini-generate", {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
                                     "tool_choice": {"type": "any"}}, True,
     lambda b: b["generationConfig"]["responseJsonSchema"] == SCHEMA
     and b["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}),
    ("messages", "openai", THINKING, False, lambda b: b["reasoning"] == {"effort": "low"}),
    ("chat", "anthropic", {"reasoning_effort": "medium", "max_tokens": 100, "temperature": 0.5}, False,
     lambda b: b["thinking"] == {"type": "enabled", "budget_tokens": 8192} and b["max_tokens"] == 8292
     and "temperature" not in b),
    ("responses", "gemini", {"reasoning": {"effort": "high"}, "tool_choice": "required"}, True,
     lambda b: b["generation_config"] == {"thinking_level": "high", "tool_choice": "any"}),
]


@pytest.mark.parametrize(("front_name", "api", "extra", "tools", "check"), SETTINGS_CASES,
                         ids=[f"{f}-{a}" for f, a, *_ in SETTINGS_CASES])
def test_settings_reach_each_upstream_in_its_own_words(matrix_recall: Recall, matrix_fakes: dict[str, Any],
                                                       front_name: str, api: str, extra: dict[str, Any], tools: bool,
                                                       check: Any) -> None:
    FRONTS[front_name].ask(matrix_recall.base(api), model_for(api), [Text("Hello.")], None, stream=False,
                           tools=tools, extra=extra)
    assert check(last_body(matrix_fakes[api])), last_body(matrix_fakes[api])


SYSTEM_AT = {"gemini": lambda b: b["system_instruction"],
             "gemini-generate": lambda b: b["systemInstruction"]["parts"][0]["text"],
             "anthropic": lambda b: b["system"]}


@pytest.mark.parametrize("api", list(SYSTEM_AT))
def test_developer_messages_become_the_system_instruction(matrix_recall: Recall, matrix_fakes: dict[str, Any],
                                                          api: str) -> None:
    """An API with no system messages inside the conversation gets them in its system instruction,
    after the request's own instructions; the conversation keeps the rest."""
    items = [{"role": "developer", "content": "Answer in French."}, {"role": "user", "content": "Hi, my name is Ada."}]
    FRONTS["responses"].ask(matrix_recall.base(api), model_for(api), [], None, stream=False,
                            extra={"input": items, "instructions": "Be brief."})
    body = last_body(matrix_fakes[api])
    assert SYSTEM_AT[api](body) == "Be brief.\n\nAnswer in French."
    assert sent_conversation(api, body) == [("user", "Hi, my name is Ada.")]


# Each front API's words for an answer cut off at its output limit, and how it sets that limit.
CUT_OFF = {"interactions": ("incomplete", {"generation_config": {"max_output_tokens": 3}}),
           "responses": ("incomplete", {"max_output_tokens": 3}),
           "chat": ("length", {"max_tokens": 3}),
           "messages": ("max_tokens", {"max_tokens": 3})}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("front_name", list(CUT_OFF))
def test_an_answer_cut_off_at_its_limit_says_so_in_each_front_api(matrix_recall: Recall, matrix_fakes: dict[str, Any],
                                                                  front_name: str, stream: bool) -> None:
    finish, limit = CUT_OFF[front_name]
    reply = FRONTS[front_name].ask(matrix_recall.base("anthropic"), model_for("anthropic"),
                                   [Text("Tell me a long story.")], None, stream=stream, extra=limit)
    assert last_body(matrix_fakes["anthropic"])["max_tokens"] == 3
    assert reply.finish == finish and reply.text == "[1 user messages]"
