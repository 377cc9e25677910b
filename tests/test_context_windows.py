"""Long conversations on emulated chains: context windows, `truncation: "auto"`, overflows.

Through the real SDKs, against fakes whose model has a small window (tests/support/tokens.py
counts its tokens): a long chain keeps answering with truncation, fails cleanly without it, and
a cut never separates a function call from its output.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from proxy.codecs import read_overflow
from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.conversations import cli
from .support.fake_anthropic import FakeAnthropic, prompt_tokens
from .support.fake_gemini import FakeGemini, contents_tokens
from .support.fake_openai import FakeOpenAI, message_text
from .support.loop_thread import LoopThread
from .support.openai_sdk import MODEL, WEATHER_TOOL, client
from .support.serving import running
from .support.tokens import count_tokens

WINDOW = 600
FIRST = "Hi, my name is Karthik."
RETRIED_BY_SDKS = {408, 409, 429} | set(range(500, 600))


@pytest.fixture
def small_openai(loop_thread: LoopThread) -> Iterator[FakeOpenAI]:
    yield from running(loop_thread, FakeOpenAI(context_window=WINDOW))


@pytest.fixture
def small_anthropic(loop_thread: LoopThread) -> Iterator[FakeAnthropic]:
    yield from running(loop_thread, FakeAnthropic(context_window=WINDOW))


@pytest.fixture
def small_chat(loop_thread: LoopThread) -> Iterator[FakeOpenAI]:
    yield from running(loop_thread, FakeOpenAI(chat_only=True, context_window=WINDOW))


@pytest.fixture
def small_gemini(loop_thread: LoopThread) -> Iterator[FakeGemini]:
    yield from running(loop_thread, FakeGemini(context_window=WINDOW))


def emulated(recall_factory: RecallFactory, fake: Any, api: str = "openai", **settings: Any) -> Recall:
    return recall_factory({"up": Upstream("up", fake.url, api, state="emulate", **settings)})


def nodes(recall: Recall) -> list[dict[str, Any]]:
    """Each node's stored request, oldest first."""
    return [orjson.loads(row[0]) for row in recall.query("SELECT request FROM interactions ORDER BY depth")]


def user_texts(items: list[dict[str, Any]]) -> list[str]:
    return [message_text(i) for i in items if (i.get("type") or "message") == "message" and i.get("role") == "user"]


def assert_calls_keep_their_outputs(items: list[dict[str, Any]]) -> None:
    calls = [i["call_id"] for i in items if i.get("type") == "function_call"]
    outputs = [i["call_id"] for i in items if i.get("type") == "function_call_output"]
    assert calls == outputs, f"a cut separated a call from its output: calls {calls}, outputs {outputs}"


def test_a_200_turn_chain_keeps_answering_with_truncation_auto(recall_factory: RecallFactory,
                                                                small_openai: FakeOpenAI) -> None:
    recall = emulated(recall_factory, small_openai, context_window=WINDOW)
    c = client(recall, "up")
    turn = c.responses.create(model=MODEL, input=FIRST, truncation="auto")
    creates = 1
    for n in range(2, 201):
        if n % 10 == 0:  # a function call and its output, in two turns a cut must keep together
            asked = c.responses.create(model=MODEL, input="What is the weather in Paris?", tools=[WEATHER_TOOL],
                                       previous_response_id=turn.id, truncation="auto")
            call = next(item for item in asked.output if item.type == "function_call")
            turn = c.responses.create(model=MODEL, tools=[WEATHER_TOOL], previous_response_id=asked.id,
                                      truncation="auto",
                                      input=[{"type": "function_call_output", "call_id": call.call_id,
                                              "output": "sunny"}])
            creates += 2
        else:
            turn = c.responses.create(model=MODEL, input=f"Turn {n}: tell me more about cricket.",
                                      previous_response_id=turn.id, truncation="auto")
            creates += 1
        sent = small_openai.last_body()
        assert small_openai.input_tokens(sent) <= WINDOW
        assert user_texts(sent["input"])[0] == FIRST  # the first user turn is never cut
        assert_calls_keep_their_outputs(sent["input"])
        assert turn.truncation == "auto" and turn.status == "completed"
    last = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=turn.id, truncation="auto")
    assert "Karthik" in last.output_text
    # Every call was decided from the recorded usage: the provider never had to refuse one.
    assert len(small_openai.requests) == creates + 1
    cuts = [n.get("recall_truncation") for n in nodes(recall)]
    assert cuts[0] is None and cuts[-1] is not None
    # A cut goes well below the window, so the following turns send the same prefix (prompt caches).
    fresh = [cut for cut in cuts if cut and cut["newly_dropped"]]
    assert 3 <= len(fresh) < len(cuts) // 4
    assert all(cut["decided_by"] == "usage" and cut["estimated_tokens"] <= 0.7 * WINDOW for cut in fresh)


def test_without_truncation_the_overflow_is_the_providers_400(recall_factory: RecallFactory,
                                                              small_openai: FakeOpenAI) -> None:
    recall = emulated(recall_factory, small_openai, context_window=WINDOW)
    c = client(recall, "up")
    previous = None
    with pytest.raises(openai.BadRequestError) as caught:
        for n in range(1, 200):
            previous = c.responses.create(model=MODEL, input=f"Turn {n}: tell me more about cricket.",
                                          previous_response_id=previous, truncation="disabled").id
    error = caught.value
    assert error.status_code == 400 and error.status_code not in RETRIED_BY_SDKS
    assert error.code == "context_length_exceeded" and error.param == "input"
    assert "exceeds the context window" in error.message and 'truncation: "auto"' in error.message
    # Nothing half-written: the refused turn left no node, and its parent is still there to continue.
    assert recall.query("SELECT COUNT(*) FROM interactions")[0][0] == n - 1
    assert all("recall_truncation" not in node for node in nodes(recall))
    again = c.responses.create(model=MODEL, input="Still there?", previous_response_id=previous, truncation="auto")
    assert again.status == "completed" and nodes(recall)[-1]["recall_truncation"]["blocks_dropped"] > 0


@pytest.mark.parametrize("upstream", ["anthropic", "openai-chat", "gemini-generate"])
def test_truncation_is_emulated_on_other_upstreams(recall_factory: RecallFactory, small_anthropic: FakeAnthropic,
                                                   small_chat: FakeOpenAI, small_gemini: FakeGemini,
                                                   upstream: str) -> None:
    fake: Any = {"anthropic": small_anthropic, "openai-chat": small_chat, "gemini-generate": small_gemini}[upstream]
    recall = emulated(recall_factory, fake, upstream, context_window=WINDOW)
    c = client(recall, "up")
    turn = c.responses.create(model=MODEL, input=FIRST, truncation="auto")
    for n in range(2, 60):
        turn = c.responses.create(model=MODEL, input=f"Turn {n}: tell me more about cricket.",
                                  previous_response_id=turn.id, truncation="auto")
    body = fake.last_body()
    counted = {"anthropic": prompt_tokens, "openai-chat": small_chat_tokens,
               "gemini-generate": contents_tokens}[upstream](body)
    assert counted <= WINDOW
    last = c.responses.create(model=MODEL, input="What is my name?", previous_response_id=turn.id, truncation="auto")
    assert "Karthik" in last.output_text
    assert nodes(recall)[-1]["recall_truncation"]["turns_dropped"] > 0


def small_chat_tokens(body: dict[str, Any]) -> int:
    return count_tokens(message_text(m) for m in body["messages"])


def test_geminis_refusal_teaches_the_window_too(recall_factory: RecallFactory, small_gemini: FakeGemini) -> None:
    recall = emulated(recall_factory, small_gemini, "gemini-generate")
    c = client(recall, "up")
    turn = c.responses.create(model="gemini-fake-001", input=FIRST, truncation="auto")
    for n in range(2, 40):
        turn = c.responses.create(model="gemini-fake-001", input=f"Turn {n}: tell me more about cricket.",
                                  previous_response_id=turn.id, truncation="auto")
    refused = [r for r in small_gemini.requests if contents_tokens(r.body) > WINDOW]
    assert len(refused) == 1
    assert nodes(recall)[-1]["recall_truncation"]["window"] == WINDOW


@pytest.mark.parametrize("configured", [None, 100_000], ids=["unknown", "configured-too-large"])
def test_the_window_is_learnt_from_the_providers_error(recall_factory: RecallFactory, small_anthropic: FakeAnthropic,
                                                       configured: int | None) -> None:
    """No window known for the model, or one larger than the server's: the provider's own error
    ("prompt is too long: N tokens > M maximum") tells recall how far to cut, and the call is sent
    once more."""
    recall = emulated(recall_factory, small_anthropic, "anthropic", context_window=configured)
    c = client(recall, "up")
    turn = c.responses.create(model="claude-fake-1", input=FIRST, truncation="auto")
    for n in range(2, 60):
        turn = c.responses.create(model="claude-fake-1", input=f"Turn {n}: tell me more about cricket.",
                                  previous_response_id=turn.id, truncation="auto")
        assert turn.status == "completed"
    refused = [r for r in small_anthropic.requests if prompt_tokens(r.body) > WINDOW]
    learnt = [n["recall_truncation"] for n in nodes(recall) if n.get("recall_truncation", {}).get("decided_by")]
    assert learnt[0]["decided_by"] == "provider_error" and learnt[0]["window"] == WINDOW
    # Once learnt, the window serves the chain's later turns: they are cut before they are refused.
    assert len(refused) == 1


def test_anthropic_chain_overflow_is_anthropics_own_error(recall_factory: RecallFactory,
                                                          small_anthropic: FakeAnthropic) -> None:
    recall = recall_factory({"anthropic": Upstream("anthropic", small_anthropic.url, "anthropic")})
    c = anthropic.Anthropic(api_key="sk-ant-test", base_url=recall.base("anthropic"), max_retries=0)
    previous = None
    with pytest.raises(anthropic.BadRequestError) as caught:
        for n in range(1, 200):
            extra = {"previous_interaction_id": previous} if previous else {}
            previous = c.messages.create(model="claude-fake-1", max_tokens=64, extra_body=extra,
                                         messages=[{"role": "user", "content": f"Turn {n}: more on cricket."}]).id
    error = caught.value
    assert error.status_code == 400
    assert isinstance(error.body, dict) and error.body["error"]["type"] == "invalid_request_error"
    assert f"> {WINDOW} maximum" in error.body["error"]["message"]
    assert "prompt is too long" in error.body["error"]["message"]


# -- token counts on emulated chains -------------------------------------------------------


def test_input_tokens_of_an_emulated_chain_are_the_providers_count(recall_factory: RecallFactory,
                                                                   small_openai: FakeOpenAI) -> None:
    recall = emulated(recall_factory, small_openai, context_window=WINDOW)
    c = client(recall, "up")
    turn = c.responses.create(model=MODEL, input=FIRST, instructions="Be brief.")
    turn = c.responses.create(model=MODEL, input="I like cricket.", previous_response_id=turn.id)
    counted = c.responses.input_tokens.count(model=MODEL, input="What is my name?", instructions="Be brief.",
                                             previous_response_id=turn.id)
    asked = small_openai.requests[-1]
    assert asked.path == "/v1/responses/input_tokens" and "previous_response_id" not in asked.body
    assert user_texts(asked.body["input"]) == [FIRST, "I like cricket.", "What is my name?"]
    # The count is what the provider then counts of the create itself.
    created = c.responses.create(model=MODEL, input="What is my name?", instructions="Be brief.",
                                 previous_response_id=turn.id)
    assert created.usage is not None and counted.input_tokens == created.usage.input_tokens
    assert counted.object == "response.input_tokens"
    # A count that continues nothing goes to the provider as it came.
    alone = c.responses.input_tokens.count(model=MODEL, input=FIRST)
    assert alone.input_tokens == small_openai.input_tokens({"input": FIRST})
    assert small_openai.requests[-1].body == {"model": MODEL, "input": FIRST}


def test_count_tokens_of_an_anthropic_chain(recall_factory: RecallFactory, small_anthropic: FakeAnthropic) -> None:
    recall = recall_factory({"anthropic": Upstream("anthropic", small_anthropic.url, "anthropic")})
    c = anthropic.Anthropic(api_key="sk-ant-test", base_url=recall.base("anthropic"), max_retries=0)
    first = c.messages.create(model="claude-fake-1", max_tokens=64, system="Be brief.",
                              messages=[{"role": "user", "content": FIRST}])
    question = [{"role": "user", "content": "What is my name?"}]
    counted = c.messages.count_tokens(model="claude-fake-1", system="Be brief.", messages=question,  # type: ignore[arg-type]
                                      extra_body={"previous_interaction_id": first.id})
    asked = small_anthropic.requests[-1]
    assert asked.path == "/v1/messages/count_tokens" and set(asked.body) == {"model", "system", "messages"}
    created = c.messages.create(model="claude-fake-1", max_tokens=64, system="Be brief.", messages=question,  # type: ignore[arg-type]
                                extra_body={"previous_interaction_id": first.id})
    assert counted.input_tokens == created.usage.input_tokens == prompt_tokens(small_anthropic.last_body())
    with pytest.raises(anthropic.NotFoundError):
        c.messages.count_tokens(model="claude-fake-1", messages=question,  # type: ignore[arg-type]
                                extra_body={"previous_interaction_id": "msg_nobody"})


def test_a_count_on_a_responses_chain_over_anthropic_asks_anthropics_counter(
        recall_factory: RecallFactory, small_anthropic: FakeAnthropic) -> None:
    recall = emulated(recall_factory, small_anthropic, "anthropic")
    c = client(recall, "up")
    turn = c.responses.create(model="claude-fake-1", input=FIRST)
    counted = c.responses.input_tokens.count(model="claude-fake-1", input="What is my name?",
                                             previous_response_id=turn.id)
    assert small_anthropic.requests[-1].path == "/v1/messages/count_tokens"
    created = c.responses.create(model="claude-fake-1", input="What is my name?", previous_response_id=turn.id)
    assert created.usage is not None and counted.input_tokens == created.usage.input_tokens


def test_a_count_on_an_upstream_without_a_counter_says_so(recall_factory: RecallFactory,
                                                         small_chat: FakeOpenAI) -> None:
    recall = emulated(recall_factory, small_chat, "openai-chat")
    c = client(recall, "up")
    turn = c.responses.create(model=MODEL, input=FIRST)
    sent = len(small_chat.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.input_tokens.count(model=MODEL, input="What is my name?", previous_response_id=turn.id)
    assert caught.value.code == "unsupported_upstream" and "token counter" in caught.value.message
    assert len(small_chat.requests) == sent  # nothing was asked of the provider
    with pytest.raises(openai.BadRequestError) as missing:
        c.responses.input_tokens.count(model=MODEL, input="x", previous_response_id="resp_nobody")
    assert missing.value.code == "previous_response_not_found"


def test_the_cut_shows_in_show_tree_and_the_viewer(recall_factory: RecallFactory, small_openai: FakeOpenAI) -> None:
    recall = emulated(recall_factory, small_openai, context_window=200)
    c = client(recall, "up")
    turn = c.responses.create(model=MODEL, input=FIRST, truncation="auto")
    for n in range(2, 12):
        turn = c.responses.create(model=MODEL, input=f"Turn {n}: tell me more about cricket.",
                                  previous_response_id=turn.id, truncation="auto")
    cut = nodes(recall)[-1]["recall_truncation"]
    shown = cli(recall.db_path, "show", turn.id).output
    assert f"cut    {cut['turns_dropped']} earlier turns left out to fit a window of 200 tokens" in shown
    assert f"up to {cut['resume_at']}" in shown
    assert f"[cut: {cut['turns_dropped']} turns left out]" in cli(recall.db_path, "tree", turn.id).output
    exported = [orjson.loads(line) for line in cli(recall.db_path, "export").output.splitlines()]
    assert next(r for r in exported if r["id"] == turn.id)["truncation"] == cut
    thread = httpx.get(f"{recall.url}/_recall/api/conversations/{turn.id}").json()
    assert next(n for n in thread["nodes"] if n["id"] == turn.id)["truncation"] == cut
    assert "truncation" not in thread["nodes"][0]  # the first turn was never cut


@pytest.mark.parametrize(("status", "error", "figures"), [
    (400, {"message": "Your input exceeds the context window of this model. Please adjust your input and try again.",
           "type": "invalid_request_error", "param": "input", "code": "context_length_exceeded"}, (None, None)),
    (400, {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 8227"
           " tokens. Please reduce the length of the messages.", "type": "invalid_request_error",
           "param": "messages", "code": "context_length_exceeded"}, (8227, 8192)),
    (400, {"type": "invalid_request_error", "message": "prompt is too long: 209353 tokens > 199999 maximum"},
     (209353, 199999)),
    (400, {"type": "invalid_request_error", "message": "input length and `max_tokens` exceed context limit: "
           "189136 + 20000 > 204648, decrease input length or `max_tokens` and try again"}, (189136, 184648)),
    (400, {"code": 400, "message": "The input token count (3475108) exceeds the maximum number of tokens allowed "
           "(1048576).", "status": "INVALID_ARGUMENT"}, (3475108, 1048576)),
    (400, {"code": 400, "message": "request (65561 tokens) exceeds the available context size (65536 tokens), try "
           "increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 65561, "n_ctx": 65536},
     (65561, 65536)),
])
def test_each_providers_context_length_error_is_read(status: int, error: dict[str, Any],
                                                     figures: tuple[int | None, int | None]) -> None:
    """The providers' own words (docs/CONTEXT.md gives where each was seen), read into figures."""
    found = read_overflow(status, orjson.dumps({"error": error}))
    assert found is not None and (found.tokens, found.limit) == figures
    assert read_overflow(status, orjson.dumps({"error": {"message": "max_tokens: 10000 > 4096, which is the maximum"
                                                         " allowed number of output tokens"}})) is None
    assert read_overflow(429, orjson.dumps({"error": error})) is None  # a rate limit is not an overflow


def test_vllm_and_llama_cpp_python_overflows_are_read() -> None:
    """vLLM's error is its own envelope, and both servers say how much of the limit the completion took."""
    message = ("This model's maximum context length is 2048 tokens. However, you requested 2100 tokens (2036 in the"
               " messages, 64 in the completion). Please reduce the length of the messages or completion.")
    vllm = {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}
    found = read_overflow(400, orjson.dumps(vllm))
    assert found is not None and (found.tokens, found.limit) == (2036, 1984)
    llama_cpp_python = {"error": {"message": message, "type": "invalid_request_error", "param": "messages",
                                  "code": "context_length_exceeded"}}
    assert read_overflow(400, orjson.dumps(llama_cpp_python)) == found
