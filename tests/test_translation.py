"""What crosses the matrix besides text: function calls, media, reasoning, and what cannot cross.

The same module-scoped recall and matrix_fakes as tests/test_matrix.py: one stateless
fake per upstream `api`, mounted under its own name, recall keeping the state.
"""

from __future__ import annotations

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
