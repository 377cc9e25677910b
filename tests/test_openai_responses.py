"""The OpenAI Responses API through recall, with the real openai SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_openai import ENCRYPTED, FakeOpenAI
from .support.openai_sdk import MODEL, WEATHER_TOOL, client, user_texts_sent


def test_three_turn_chain_in_emulate_mode(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    questions = ["Hi, my name is Karthik.", "I like cricket.", "What is my name?"]
    previous = None
    for n, question in enumerate(questions, start=1):
        turn = c.responses.create(model=MODEL, input=question, previous_response_id=previous)
        assert user_texts_sent(fake_openai) == questions[:n]
        assert turn.output_text.startswith(f"[{n} user messages]")
        assert turn.id.startswith("resp_") and not turn.id.startswith("resp_fake")
        assert turn.previous_response_id == previous
        sent = fake_openai.last_body()
        assert sent["store"] is False and "previous_response_id" not in sent
        previous = turn.id
    assert "Karthik" in turn.output_text
    rows = openai_recall.query("SELECT depth, mode, front FROM interactions ORDER BY depth")
    assert rows == [(0, "emulate", "openai-responses"), (1, "emulate", "openai-responses"),
                    (2, "emulate", "openai-responses")]


def test_three_turn_chain_in_native_mode(recall_factory: RecallFactory, stateful_openai: FakeOpenAI) -> None:
    openai_recall = recall_factory({"openai": Upstream("openai", stateful_openai.url, "openai", state="native")})
    c = client(openai_recall)
    first = c.responses.create(model=MODEL, input="Hi, my name is Karthik.")
    assert first.id.startswith("resp_fake")  # the provider's own id
    second = c.responses.create(model=MODEL, input="I like cricket.", previous_response_id=first.id)
    third = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=second.id)
    assert "Karthik" in third.output_text and third.output_text.startswith("[3 user messages]")
    assert stateful_openai.last_body()["previous_response_id"] == second.id
    assert stateful_openai.last_body()["input"] == "What is my name?"  # relayed as the app sent it
    rows = openai_recall.query("SELECT id, parent_id, mode FROM interactions ORDER BY depth")
    assert rows == [(first.id, None, "native"), (second.id, first.id, "native"), (third.id, second.id, "native")]
    assert c.responses.retrieve(third.id).output_text == third.output_text  # relayed to the provider
    with pytest.raises(openai.BadRequestError) as caught:
        client(openai_recall, key="sk-B").responses.create(model=MODEL, input="x", previous_response_id=first.id)
    assert caught.value.code == "previous_response_not_found"


def test_encrypted_reasoning_travels_between_turns(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first = c.responses.create(model=MODEL, input="Hi, my name is Karthik.", reasoning={"effort": "low"})
    assert fake_openai.last_body()["include"] == [ENCRYPTED]
    assert [item.type for item in first.output] == ["reasoning", "message"]
    # The next turn does not ask for reasoning, but its history holds some: it goes back, encrypted.
    second = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id)
    assert fake_openai.reasoning_received == ["enc::resp_fake1"]
    sent = fake_openai.last_body()
    assert sent["include"] == [ENCRYPTED]
    assert [item.get("type", "message") for item in sent["input"]] == ["message", "reasoning", "message", "message"]
    assert "Karthik" in second.output_text


def test_no_encrypted_reasoning_asked_of_a_model_that_does_not_reason(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first = c.responses.create(model="gpt-4o", input="Hi, my name is Ada.")
    second = c.responses.create(model="gpt-4o", input="What is my name?", previous_response_id=first.id)
    assert "Ada" in second.output_text
    assert all("include" not in body for body in fake_openai.bodies("/v1/responses"))


def test_the_apps_own_include_is_kept(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first = c.responses.create(model=MODEL, input="Hi, my name is Ada.", reasoning={"effort": "low"},
                               include=["message.output_text.logprobs"])
    assert fake_openai.last_body()["include"] == ["message.output_text.logprobs", ENCRYPTED]
    assert first.output[0].encrypted_content
    second = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id)
    assert "Ada" in second.output_text


def test_retrieve_echoes_the_request(openai_recall: Recall) -> None:
    c = client(openai_recall)
    turn = c.responses.create(model=MODEL, input="Remember zephyr.", instructions="Be terse.",
                              metadata={"topic": "t"}, temperature=0.3, max_output_tokens=50)
    got = c.responses.retrieve(turn.id)
    assert got.id == turn.id and got.status == "completed" and got.object == "response"
    assert got.output_text == turn.output_text
    assert got.output[0].id == turn.output[0].id
    assert (got.instructions, got.metadata, got.temperature, got.max_output_tokens) == ("Be terse.", {"topic": "t"}, 0.3, 50)
    assert got.usage.input_tokens == 10 and got.usage.total_tokens == 17


def test_instructions_do_not_carry_over(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    first = c.responses.create(model=MODEL, input="one", instructions="Be terse.")
    assert fake_openai.last_body()["instructions"] == "Be terse."
    c.responses.create(model=MODEL, input="two", previous_response_id=first.id)
    assert "instructions" not in fake_openai.last_body()


def test_delete_erases_the_response(openai_recall: Recall) -> None:
    c = client(openai_recall)
    marker = "Marmalade-Quokka-7731"
    turn = c.responses.create(model=MODEL, input=f"The secret is {marker}.")
    assert marker.encode() in openai_recall.db_bytes()
    c.responses.delete(turn.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(turn.id)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model=MODEL, input="and?", previous_response_id=turn.id)
    assert caught.value.code == "previous_response_not_found"
    assert marker.encode() not in openai_recall.db_bytes()
    with pytest.raises(openai.NotFoundError):
        c.responses.delete(turn.id)


def test_input_items_are_paginated(openai_recall: Recall) -> None:
    c = client(openai_recall)
    turn = c.responses.create(model=MODEL, input=[
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "first"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
    ])
    ascending = c.responses.input_items.list(turn.id, order="asc")
    assert [i.role for i in ascending.data] == ["developer", "user", "user"]
    assert ascending.data[1].content[0].text == "first" and ascending.has_more is False
    assert ascending.first_id == ascending.data[0].id and ascending.last_id == ascending.data[-1].id
    descending = c.responses.input_items.list(turn.id)  # OpenAI's default order is desc
    assert [i.id for i in descending.data] == [i.id for i in reversed(ascending.data)]
    first_page = c.responses.input_items.list(turn.id, order="asc", limit=1)
    assert len(first_page.data) == 1 and first_page.has_more is True
    # Auto-paging follows `after` to the end.
    assert [i.id for i in c.responses.input_items.list(turn.id, order="asc", limit=1)] == [i.id for i in ascending.data]
    with pytest.raises(openai.BadRequestError):
        c.responses.input_items.list(turn.id, limit=0)
    with pytest.raises(openai.NotFoundError):
        c.responses.input_items.list("resp_unknown")


@pytest.mark.parametrize("upstream", ["openai", "local"])
def test_function_call_round_trip(openai_recall: Recall, fake_openai: FakeOpenAI, chat_only_openai: FakeOpenAI,
                                  upstream: str) -> None:
    c = client(openai_recall, upstream)
    first = c.responses.create(model=MODEL, input="What is the weather in Paris?", tools=[WEATHER_TOOL])
    call = first.output[-1]
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.arguments == '{"city": "Paris"}' or call.arguments == '{"city":"Paris"}'
    second = c.responses.create(model=MODEL, previous_response_id=first.id, tools=[WEATHER_TOOL],
                                input=[{"type": "function_call_output", "call_id": call.call_id, "output": "22 C"}])
    assert second.output_text == "The tool said: 22 C"
    if upstream == "openai":
        kinds = [item.get("type") for item in fake_openai.last_body()["input"]]
        assert kinds == ["message", "function_call", "function_call_output"]
    else:
        roles = [m["role"] for m in chat_only_openai.last_body()["messages"]]
        assert roles == ["user", "assistant", "tool"]


def test_responses_over_a_chat_only_server(openai_recall: Recall, chat_only_openai: FakeOpenAI) -> None:
    c = client(openai_recall, "local")
    first = c.responses.create(model="llama3", input="Hi, my name is Ada.", instructions="Be kind.",
                               max_output_tokens=40, temperature=0.1)
    assert first.id.startswith("resp_") and first.output_text.startswith("[1 user messages]")
    second = c.responses.create(model="llama3", input="What is my name?", previous_response_id=first.id)
    assert "Ada" in second.output_text
    assert {seen.path for seen in chat_only_openai.requests} == {"/v1/chat/completions"}
    first_body, second_body = (seen.body for seen in chat_only_openai.requests)
    assert first_body["messages"][0] == {"role": "system", "content": "Be kind."}
    assert (first_body["max_tokens"], first_body["temperature"]) == (40, 0.1)
    assert [m["role"] for m in second_body["messages"]] == ["user", "assistant", "user"]
    assert second.usage.input_tokens == 15


def test_unknown_ids_get_openai_errors(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model=MODEL, input="hi", previous_response_id="resp_unknown")
    error = caught.value
    assert str(error) == "Error code: 400 - Previous response with id 'resp_unknown' not found."
    assert (error.code, error.param, error.type) == ("previous_response_not_found", "previous_response_id",
                                                     "invalid_request_error")
    with pytest.raises(openai.NotFoundError) as missing:
        c.responses.retrieve("resp_unknown")
    assert missing.value.body["message"] == "Response with id 'resp_unknown' not found."
    assert set(missing.value.body) == {"message", "type", "param", "code"}
    with pytest.raises(openai.NotFoundError):
        c.responses.delete("resp_unknown")
    with pytest.raises(openai.NotFoundError):
        c.responses.cancel("resp_unknown")
    assert fake_openai.requests == []


def test_store_false_writes_no_content(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    marker = "Unstored-Pangolin-4410"
    raw = c.responses.with_raw_response.create(model=MODEL, input=f"Keep {marker} to yourself.", store=False)
    assert raw.headers["x-recall-stored"] == "false"
    turn = raw.parse()
    assert marker in turn.output_text
    assert marker.encode() not in openai_recall.db_bytes()
    assert openai_recall.query("SELECT count(*) FROM interactions") == [(0,)]
    assert openai_recall.query("SELECT stored, request_body, response_body FROM exchanges") == [(0, None, None)]
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model=MODEL, input="and?", previous_response_id=turn.id)
    assert caught.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(turn.id)
    stored = c.responses.with_raw_response.create(model=MODEL, input="kept")
    assert stored.headers["x-recall-stored"] == "true"


def test_another_key_cannot_see_or_chain(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    mine, theirs = client(openai_recall, key="sk-A"), client(openai_recall, key="sk-B")
    turn = mine.responses.create(model=MODEL, input="private")
    calls = len(fake_openai.requests)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.retrieve(turn.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.input_items.list(turn.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(turn.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.cancel(turn.id)
    with pytest.raises(openai.BadRequestError) as caught:
        theirs.responses.create(model=MODEL, input="x", previous_response_id=turn.id)
    assert caught.value.code == "previous_response_not_found"
    assert len(fake_openai.requests) == calls
    assert mine.responses.retrieve(turn.id).id == turn.id


@pytest.mark.parametrize(
    ("body", "fragment", "param"),
    [
        (b"{not json", "not valid JSON", None),
        (b"[1]", "JSON object", None),
        # No model or no input is the provider's to judge (a stored prompt carries them): test_relay_first.py.
        (b'{"model": "m", "input": 5}', "input", "input"),
        (b'{"model": "m", "input": [{"role": "robot", "content": "hi"}]}', "input[0].role", "input"),
        (b'{"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}', "call_id", "input"),
        (b'{"model": "m", "input": "hi", "tools": {"type": "function"}}', "tools", "tools"),
        (b'{"model": "m", "input": "hi", "tools": [{"type": "function"}]}', "tools[0].name", "tools"),
        (b'{"model": "m", "input": "hi", "previous_response_id": 7}', "previous_response_id", "previous_response_id"),
        (b'{"model": "m", "input": "hi", "store": "no"}', "store", "store"),
        (b'{"model": "m", "input": "hi", "background": true, "store": false}', "background", "background"),
        (b'{"model": "m", "input": "hi", "previous_response_id": "resp_x", "conversation": "conv_y"}',
         "cannot be used together", "conversation"),
        (b'{"model": "m", "input": "hi", "max_output_tokens": -1}', "max_output_tokens", "max_output_tokens"),
        (b'{"model": "m", "input": "hi", "text": {"format": {"type": "json_schema"}}}', "schema", "text"),
    ],
)
def test_bad_bodies_are_400_in_openai_shape(openai_recall: Recall, fake_openai: FakeOpenAI, body: bytes, fragment: str,
                                            param: str | None) -> None:
    answer = httpx.post(f"{openai_recall.base('openai')}/v1/responses", content=body,
                        headers={"authorization": "Bearer sk-A", "content-type": "application/json"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert fragment in error["message"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert fake_openai.requests == []
    assert openai_recall.query("SELECT count(*) FROM interactions") == [(0,)]
    assert openai_recall.query("SELECT count(*) FROM exchanges WHERE stored OR request_body IS NOT NULL") == [(0,)]


def test_provider_errors_keep_their_code_and_param(openai_recall: Recall) -> None:
    c = client(openai_recall)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="gpt-4o", input="hi", include=[ENCRYPTED])
    assert caught.value.param == "include"
    assert "Encrypted content is not supported" in str(caught.value)


def test_the_key_never_reaches_the_database(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    key = "sk-proj-Secret-Key-0123456789"
    c = client(openai_recall, key=key)
    turn = c.responses.create(model=MODEL, input="hello")
    c.responses.create(model=MODEL, input="again", previous_response_id=turn.id)
    c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    c.conversations.create(items=[{"role": "user", "content": "hi"}])
    assert fake_openai.requests[-1].headers["Authorization"] == f"Bearer {key}"
    assert key.encode() not in openai_recall.db_bytes()
