"""Parallel's Task API over other upstreams and other front APIs over Parallel, and the folding rule."""

from __future__ import annotations

import json
import time

import openai
import parallel
import pytest
from google import genai
from google.genai import _interactions as gi

from proxy.codecs.parallel_tasks import CONTEXT_HEADER, REQUEST_HEADER, fold_context
from proxy.config import Upstream
from proxy.model import MODEL, TEXT, USER, Part, Turn

from .conftest import Recall, RecallFactory
from .support.fake_gemini import FakeGemini
from .support.fake_parallel import FakeParallel
from .test_parallel_tasks import TEXT as TEXT_SPEC
from .test_parallel_tasks import client, http


def test_task_runs_over_a_generate_content_upstream(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    """The processor names the upstream's model; the task spec becomes an instruction."""
    recall = recall_factory({"gemgen": Upstream("gemgen", fake_gemini.url, "gemini-generate")})
    c = client(recall, upstream="gemgen")
    first = c.task_run.create(input="Hi, my name is Karthik.", processor="gemini-3-flash-preview",
                              task_spec={"output_schema": "One line."}, metadata={"topic": "names"})
    assert c.task_run.result(first.run_id).output.content == "[1 user messages] You said: Hi, my name is Karthik."
    second = c.task_run.create(input="What is my name?", processor="gemini-3-flash-preview", task_spec=TEXT_SPEC,
                               previous_interaction_id=first.interaction_id)
    result = c.task_run.result(second.run_id)
    assert result.output.type == "text" and result.output.content == "[2 user messages] Your name is Karthik."
    assert result.output.basis == []  # no web research behind it
    body = fake_gemini.last_body()
    assert fake_gemini.requests[-1].path == "/v1beta/models/gemini-3-flash-preview:generateContent"
    assert [content["role"] for content in body["contents"]] == ["user", "model", "user"]
    assert body["systemInstruction"] == {"parts": [{"text": "Answer in plain text."}]}
    assert fake_gemini.requests[0].body["systemInstruction"] == {"parts": [{"text": "Answer in plain text. One line."}]}
    assert c.task_run.retrieve(first.run_id).metadata == {"topic": "names"}


def test_other_front_apis_chain_onto_task_runs_and_back(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    """Task runs are ordinary nodes of neutral turns: any front API continues them."""
    model = "gemini-3-flash-preview"
    recall = recall_factory({"gemgen": Upstream("gemgen", fake_gemini.url, "gemini-generate")})
    tasks = client(recall, upstream="gemgen")
    run = tasks.task_run.create(input="Hi, my name is Karthik.", processor=model, task_spec=TEXT_SPEC)
    tasks.task_run.result(run.run_id)
    interactions = genai.Client(api_key="pk-A", http_options={"base_url": recall.base("gemgen"),
                                                               "retry_options": {"attempts": 1}})
    turn = interactions.interactions.create(model=model, input="What is my name?",
                                            previous_interaction_id=run.interaction_id)
    assert turn.output_text == "[2 user messages] Your name is Karthik."
    back = tasks.task_run.create(input="Thanks.", processor=model, task_spec=TEXT_SPEC, previous_interaction_id=turn.id)
    assert tasks.task_run.result(back.run_id).output.content == "[3 user messages] You said: Thanks."
    assert fake_gemini.requests[-1].headers["x-goog-api-key"] == "pk-A"  # the Parallel app's key, in Google's header
    rows = recall.query("SELECT front, parent_id FROM interactions ORDER BY depth")
    assert rows == [("parallel-tasks", None), ("gemini-interactions", run.interaction_id), ("parallel-tasks", turn.id)]


def test_a_query_key_reaches_an_emulated_upstream_in_its_header(recall_factory: RecallFactory,
                                                                 fake_gemini: FakeGemini) -> None:
    recall = recall_factory({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")})
    answer = http.post(f"{recall.base('gemini')}/v1beta/interactions?key=AIza-query-key",
                       json={"model": "gemini-3-flash-preview", "input": "hi"})
    assert answer.status_code == 200
    assert fake_gemini.requests[-1].headers["x-goog-api-key"] == "AIza-query-key"
    assert b"AIza-query-key" not in recall.db_bytes()


def test_json_schema_over_another_upstream_needs_a_json_answer(
    recall_factory: RecallFactory, fake_gemini: FakeGemini
) -> None:
    recall = recall_factory({"gemgen": Upstream("gemgen", fake_gemini.url, "gemini-generate")})
    c = client(recall, upstream="gemgen")
    run = c.task_run.create(input="q", processor="gemini-3-flash-preview", task_spec={"output_schema": {
        "type": "json", "json_schema": {"type": "object", "properties": {"a": {"type": "string"}}}}})
    with pytest.raises(parallel.UnprocessableEntityError) as caught:
        c.task_run.result(run.run_id)  # the fake model answers prose, not JSON
    assert "not the JSON object the task's output schema asks for" in caught.value.body["error"]["message"]
    assert "JSON Schema" in fake_gemini.last_body()["systemInstruction"]["parts"][0]["text"]


def test_provider_only_fields_are_refused_for_another_upstream(
    recall_factory: RecallFactory, fake_gemini: FakeGemini
) -> None:
    recall = recall_factory({"gemgen": Upstream("gemgen", fake_gemini.url, "gemini-generate")})
    with pytest.raises(parallel.BadRequestError) as caught:
        client(recall, upstream="gemgen").task_run.create(
            input="q", processor="m", source_policy={"include_domains": ["example.org"]})
    message = caught.value.body["error"]["message"]
    assert "source_policy" in message and 'api = "parallel"' in message
    assert fake_gemini.requests == [] and recall.query("SELECT count(*) FROM interactions") == [(0,)]


def genai_client(recall: Recall) -> genai.Client:
    return genai.Client(api_key="pk-A", http_options={"base_url": recall.base("parallel"),
                                                       "retry_options": {"attempts": 1}})


def test_interactions_app_over_a_parallel_upstream(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    """Another front API on Parallel: a create, then the result awaited (pending_result), context folded."""
    fake_parallel.delay = 0.3
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    c = genai_client(recall)
    first = c.interactions.create(model="lite", input="Which country won the most Winter Olympics gold medals in 2026?")
    assert first.output_text == "Norway won the most gold medals: 18." and first.id.startswith("v1_")
    second = c.interactions.create(model="core", input="How many medals did they win?",
                                   previous_interaction_id=first.id, system_instruction="Be brief.")
    assert second.output_text == "Norway won 41 medals in total."
    sent = fake_parallel.creates()[-1]
    assert sent.headers["x-api-key"] == "pk-A" and "x-goog-api-key" not in {h.lower() for h in sent.headers}
    assert sent.body["processor"] == "core" and sent.body["task_spec"] == {"output_schema": {"type": "text"}}
    assert sent.body["input"] == (f"Instructions:\nBe brief.\n\n{CONTEXT_HEADER}\n\n"
                                  "User: Which country won the most Winter Olympics gold medals in 2026?\n\n"
                                  "Assistant: Norway won the most gold medals: 18.\n\n"
                                  f"{REQUEST_HEADER}\nHow many medals did they win?")
    results = [r for r in fake_parallel.requests if r.path.endswith("/result")]
    assert results and all(r.query["timeout"] == "595" for r in results)
    # Parallel's runs do not stream: recall awaits the run and streams the finished turn.
    events = list(c.interactions.create(model="lite", input="How does that compare to the second place country?",
                                        previous_interaction_id=second.id, stream=True))
    assert [e.event_type for e in events][:2] == ["interaction.created", "interaction.status_update"]
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta")
    assert text == "Norway's 41 medals are 11 more than second-placed Italy's 30."
    assert events[-1].event_type == "interaction.completed" and events[-1].interaction.status == "completed"
    assert "stream" not in fake_parallel.creates()[-1].body
    assert c.interactions.get(events[0].interaction.id).output_text == text


def test_a_failed_provider_run_fails_the_interaction(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    fake_parallel.fail = True
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    c = genai_client(recall)
    with pytest.raises(gi.UnprocessableEntityError) as caught:  # the provider's status, the front API's shape
        c.interactions.create(model="lite", input="q")
    assert "gave up" in caught.value.body["error"]["message"]
    assert recall.query("SELECT count(*) FROM interactions") == [(0,)]


def turn(role: str, text: str) -> Turn:
    return Turn(role, [Part(TEXT, text=text)])


def test_fold_context_rule() -> None:
    turns = [turn(USER, "q1"), turn(MODEL, "a1"), turn(USER, "q2"), turn(MODEL, "a2")]
    assert fold_context([], 100) is None
    assert fold_context(turns, 100) == f"{CONTEXT_HEADER}\n\nUser: q1\n\nAssistant: a1\n\nUser: q2\n\nAssistant: a2"
    # Whole turns, newest first, while their sum fits; older ones are counted, not cut.
    assert fold_context(turns, len("User: q2") + len("Assistant: a2")) == (
        f"{CONTEXT_HEADER}\n\n(2 earlier turns left out to stay within 21 characters.)\n\nUser: q2\n\nAssistant: a2")
    # A newest turn longer than the whole budget is cut to fit, marked.
    cut = fold_context([turn(MODEL, "x" * 50)], 20)
    assert cut == f"{CONTEXT_HEADER}\n\nAssistant: xxxxx […]"
    assert len(cut.split("\n\n")[-1]) == 20
    # Thoughts are left out; calls and results are summarised.
    mixed = Turn(MODEL, [Part("thought", text="secret"), Part("function_call", name="f", arguments={"x": 1}), Part(TEXT, text="ok")])
    assert fold_context([mixed], 100) == f'{CONTEXT_HEADER}\n\nAssistant: [called f with {{"x":1}}]\nok'


def test_a_stream_over_a_run_keeps_the_connection_alive(recall_factory: RecallFactory, fake_parallel: FakeParallel,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """While a run asked whole goes on, the app's stream gets SSE comments, which every SDK skips."""
    monkeypatch.setattr("proxy.pipeline.run.KEEPALIVE_SECONDS", 0.05)
    fake_parallel.delay = 0.4
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    with http.stream("POST", f"{recall.base('parallel')}/v1beta/interactions", headers={"x-goog-api-key": "pk-A"},
                     json={"model": "lite", "input": "Hi, my name is Karthik.", "stream": True}) as answer:
        raw = answer.read()
    assert raw.startswith(b"event: interaction.created\n") and raw.count(b": keep-alive\n\n") >= 3
    c = genai_client(recall)  # kept alive: a collected genai.Client closes its connection pool
    events = list(c.interactions.create(model="lite", input="What is my name?", stream=True,
                                        previous_interaction_id=_first_id(raw)))
    assert "".join(e.delta.text for e in events if e.event_type == "step.delta") == "Your name is Karthik."


def _first_id(raw: bytes) -> str:
    first = raw.split(b"\n\n", 1)[0].split(b"data: ", 1)[1]
    return json.loads(first)["interaction"]["id"]


def test_a_background_response_over_a_run(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    fake_parallel.delay = 0.2
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    c = openai.OpenAI(api_key="pk-A", base_url=f"{recall.base('parallel')}/v1", max_retries=0)
    started = c.responses.create(model="lite", input="Which country won the most Winter Olympics gold medals in 2026?",
                                 background=True)
    assert started.status == "in_progress" and started.background
    deadline = time.monotonic() + 10
    while (got := c.responses.retrieve(started.id)).status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got.status == "completed" and got.output_text == "Norway won the most gold medals: 18."


def test_a_failed_run_ends_a_stream_with_the_providers_error(recall_factory: RecallFactory,
                                                             fake_parallel: FakeParallel) -> None:
    fake_parallel.fail = True
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    c = genai_client(recall)
    events = list(c.interactions.create(model="lite", input="q", stream=True))
    assert events[0].event_type == "interaction.created" and events[-1].event_type == "error"
    assert "gave up" in events[-1].error.message
    assert c.interactions.get(events[0].interaction.id).status == "failed"
