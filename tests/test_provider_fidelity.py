"""recall answers as the providers document, through their official SDKs (issue 15).

Each test here failed on the first release: recall had taken our own fakes'
habits for the providers' contracts (docs/FIDELITY.md lists each fact and its source).
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import openai
import parallel
import pytest
from google import genai
from google.genai import _interactions as gi

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_gemini import FakeGemini
from .support.fake_openai import FakeOpenAI
from .support.fake_parallel import FakeParallel
from .support.front_routes import GEMINI_INTERACTIONS, OPENAI_RESPONSES, PARALLEL_TASKS
from .support.front_routes import Upstream as RigUpstream
from .support.openai_sdk import MODEL as OPENAI_MODEL
from .support.openai_sdk import WEATHER_TOOL
from .support.rigs import Rig, RigFactory
from .test_gemini_interactions import MODEL as GEMINI_MODEL
from .test_parallel_tasks import TEXT as TEXT_SPEC

# -- 1. any 2xx is a success (Parallel accepts a task run with 202) -----------------


def test_parallel_create_is_202_and_the_run_completes_in_emulate_mode(recall_factory: RecallFactory,
                                                                     fake_parallel: FakeParallel) -> None:
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    statuses: list[int] = []
    client = parallel.Parallel(api_key="pk-A", base_url=recall.base("parallel"), max_retries=0,
                               http_client=httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]}))
    run = client.task_run.create(input="Hi, my name is Karthik.", processor="lite", task_spec=TEXT_SPEC)
    result = client.task_run.result(run.run_id)
    assert result.output.content == "[1 user messages] You said: Hi, my name is Karthik."
    # The fake answered recall's create with 202, as Parallel does; recall answers the app the same way.
    assert fake_parallel.requests[0].path == "/v1/tasks/runs"
    assert statuses[0] == 202


def test_parallel_202_is_recorded_in_native_mode(recall_factory: RecallFactory,
                                                 stateful_parallel: FakeParallel) -> None:
    recall = recall_factory({"parallel": Upstream("parallel", stateful_parallel.url, "parallel", state="native")})
    client = parallel.Parallel(api_key="pk-A", base_url=recall.base("parallel"), max_retries=0)
    run = client.task_run.create(input="q", processor="lite")
    assert recall.query("SELECT id, run_id, mode FROM interactions") == [(run.interaction_id, run.run_id, "native")]
    assert client.task_run.result(run.run_id).run.status == "completed"


def test_other_front_apis_over_a_parallel_upstream(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    responses = openai.OpenAI(api_key="pk-A", base_url=f"{recall.base('parallel')}/v1", max_retries=0)
    first = responses.responses.create(model="lite", input="Hi, my name is Karthik.")
    second = responses.responses.create(model="lite", input="What is my name?", previous_response_id=first.id)
    assert "Karthik" in second.output_text  # the fake answered from the whole history it was sent
    interactions = genai.Client(api_key="pk-A", http_options={"base_url": recall.base("parallel"),
                                                              "retry_options": {"attempts": 1}})
    third = interactions.interactions.create(model="lite", input="And again?", previous_interaction_id=second.id)
    assert third.output_text == "[3 user messages] You said: And again?"  # the whole chain reached Parallel


# -- 2. an error never leaves recall with a 2xx status ------------------------------


@pytest.mark.parametrize("status", [204, 307])
def test_a_provider_answer_recall_cannot_use_is_a_502_error(rig_factory: RigFactory, status: int) -> None:
    rig = rig_factory(OPENAI_RESPONSES, RigUpstream("openai", FakeOpenAI))
    rig.faulty.fault, rig.faulty.status = "other_status", status
    statuses: list[int] = []
    client = openai.OpenAI(api_key="sk-A", base_url=f"{rig.recall.url}/up/v1", max_retries=0,
                           http_client=httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]}))
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model=OPENAI_MODEL, input="hi", previous_response_id=None)
    assert statuses == [502]
    assert caught.value.status_code == 502
    assert f"answered {status}" in str(caught.value.body) or "cannot read" in str(caught.value.body)


# -- 3. a background create returns at once ----------------------------------------


def _wait_for(read: Any, wanted: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if got.status == wanted or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def _hanging_rig(rig_factory: RigFactory, route: Any, upstream: RigUpstream) -> Rig:
    """A rig whose provider says nothing for 3 s, then refuses with 503."""
    rig = rig_factory(route, upstream)
    rig.faulty.fault, rig.faulty.hang_s = "hang", 3.0
    return rig


def test_gemini_background_create_answers_before_the_provider_does(rig_factory: RigFactory) -> None:
    rig = _hanging_rig(rig_factory, GEMINI_INTERACTIONS, RigUpstream("gemini", FakeGemini))
    # The SDK gives up after 1.5 s: the create must not wait for the provider's 3 s.
    c = genai.Client(api_key="key-A", http_options={"base_url": f"{rig.recall.url}/up", "timeout": 1500,
                                                    "retry_options": {"attempts": 1}})
    started = c.interactions.create(model=GEMINI_MODEL, input="Hi", background=True)
    assert started.status == "in_progress"
    # The provider's refusal comes later and fails the interaction, visible on GET.
    slow = genai.Client(api_key="key-A", http_options={"base_url": f"{rig.recall.url}/up",
                                                       "retry_options": {"attempts": 1}})
    failed = _wait_for(lambda: slow.interactions.get(started.id), "failed")
    assert failed.status == "failed"
    stored = rig.recall.query("SELECT status, error FROM interactions WHERE id = ?", started.id)
    assert stored[0][0] == "failed" and "503" in stored[0][1] and "overloaded" in stored[0][1]


def test_openai_background_create_answers_before_the_provider_does(rig_factory: RigFactory) -> None:
    rig = _hanging_rig(rig_factory, OPENAI_RESPONSES, RigUpstream("openai", FakeOpenAI))
    quick = openai.OpenAI(api_key="sk-A", base_url=f"{rig.recall.url}/up/v1", max_retries=0, timeout=1.5)
    started = quick.responses.create(model=OPENAI_MODEL, input="Hi", background=True)
    assert started.status in ("queued", "in_progress")
    slow = openai.OpenAI(api_key="sk-A", base_url=f"{rig.recall.url}/up/v1", max_retries=0)
    failed = _wait_for(lambda: slow.responses.retrieve(started.id), "failed")
    assert failed.status == "failed"
    assert failed.error is not None and "overloaded" in failed.error.message


def test_parallel_create_answers_before_the_provider_does(rig_factory: RigFactory) -> None:
    rig = _hanging_rig(rig_factory, PARALLEL_TASKS, RigUpstream("parallel", FakeParallel))
    quick = parallel.Parallel(api_key="pk-A", base_url=f"{rig.recall.url}/up", max_retries=0, timeout=1.5)
    run = quick.task_run.create(input="q", processor="lite")
    assert run.status == "queued"
    slow = parallel.Parallel(api_key="pk-A", base_url=f"{rig.recall.url}/up", max_retries=0)
    assert _wait_for(lambda: slow.task_run.retrieve(run.run_id), "failed").status == "failed"


def test_a_background_turn_refused_by_the_provider_streams_its_error_on_follow(rig_factory: RigFactory,
                                                                               loop_thread: Any) -> None:
    rig = rig_factory(GEMINI_INTERACTIONS, RigUpstream("gemini", FakeGemini))
    rig.faulty.fault = "status_503"
    c = genai.Client(api_key="key-A", http_options={"base_url": f"{rig.recall.url}/up",
                                                    "retry_options": {"attempts": 1}})
    started = c.interactions.create(model=GEMINI_MODEL, input="Hi", background=True)
    assert _wait_for(lambda: c.interactions.get(started.id), "failed").status == "failed"
    events = list(c.interactions.get(started.id, stream=True))
    assert events[0].event_type == "interaction.created"
    assert events[-1].event_type == "error" and "overloaded" in events[-1].error.message


# -- 5. strict function tools keep their strictness in translation ----------------------


def test_strict_tools_reach_a_chat_completions_upstream(openai_recall: Recall, chat_only_openai: FakeOpenAI) -> None:
    """The OpenAI Agents SDK marks every function tool strict; a Chat-only server must see it."""
    c = openai.OpenAI(api_key="sk-A", base_url=f"{openai_recall.base('local')}/v1", max_retries=0)
    loose = {**WEATHER_TOOL, "name": "loose", "strict": False}
    unmarked = {k: v for k, v in WEATHER_TOOL.items() if k != "strict"} | {"name": "unmarked"}
    c.responses.create(model=OPENAI_MODEL, input="Weather in Paris?", tools=[WEATHER_TOOL, loose, unmarked])  # type: ignore[list-item]
    sent = {t["function"]["name"]: t["function"] for t in chat_only_openai.last_body()["tools"]}
    assert sent["get_weather"]["strict"] is True
    assert "strict" not in sent["loose"]
    # Responses takes an unmarked tool as strict (docs/FIDELITY.md); Chat Completions would not.
    assert sent["unmarked"]["strict"] is True


def test_messages_tools_say_their_strictness_to_a_responses_upstream(recall_factory: RecallFactory,
                                                                    fake_openai: FakeOpenAI) -> None:
    recall = recall_factory({"openai": Upstream("openai", fake_openai.url, "openai", state="emulate")})
    c = anthropic.Anthropic(api_key="sk-A", base_url=recall.base("openai"), max_retries=0)
    schema = WEATHER_TOOL["parameters"]
    c.messages.create(model=OPENAI_MODEL, max_tokens=50, messages=[{"role": "user", "content": "Weather?"}],
                      tools=[{"name": "strict_one", "input_schema": schema, "strict": True},
                             {"name": "loose_one", "input_schema": schema}])
    tools = {t["name"]: t for t in fake_openai.last_body()["tools"]}
    # A Messages tool without strict is not strict; said explicitly, or Responses would make it so.
    assert tools["strict_one"]["strict"] is True and tools["loose_one"]["strict"] is False


# -- 6. a required field given as null is refused as the provider refuses it ------------


def test_gemini_null_input_is_refused_in_emulate_mode(recall: Recall, fake_gemini: FakeGemini) -> None:
    answer = httpx.post(f"{recall.base('gemini')}/v1beta/interactions",
                        json={"model": GEMINI_MODEL, "input": None}, headers={"x-goog-api-key": "key-A"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_request" and "input" in error["message"] and "null" in error["message"]
    assert fake_gemini.requests == []  # refused by recall, as the provider would, before any call
    c = genai.Client(api_key="key-A", http_options={"base_url": recall.base("gemini"), "retry_options": {"attempts": 1}})
    with pytest.raises(gi.BadRequestError):
        c.interactions.create(model=GEMINI_MODEL, input=None)  # type: ignore[arg-type]
