"""Parallel task runs through recall in emulate mode, with the real parallel-web SDK.

The fake provider is stateless (zero data retention): it refuses
previous_interaction_id and answers from the context its input carries, so
these tests can tell whether recall folded the earlier turns in.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import parallel
import pytest
from parallel import Parallel
from parallel.types import TaskSpecParam, TextSchemaParam
from pydantic import BaseModel

from proxy.codecs.parallel_tasks import CONTEXT_FIELD, CONTEXT_HEADER, REQUEST_HEADER
from proxy.config import Config, Upstream
from proxy.http.app import start

from .conftest import Recall, RecallFactory
from .support.contract.tap import check_recall
from .support.fake_parallel import BASIS_URL, FakeParallel
from .support.loop_thread import LoopThread

TEXT = TaskSpecParam(output_schema=TextSchemaParam())
LAUNCH_CHAIN = [
    ("Which country won the most Winter Olympics gold medals in 2026?", "Norway won the most gold medals: 18."),
    ("How many medals did they win?", "Norway won 41 medals in total."),
    ("How does that compare to the second place country?",
     "Norway's 41 medals are 11 more than second-placed Italy's 30."),
]


# One plain HTTP client for the raw-wire checks (a new one per call costs an SSL context).
http = httpx.Client(timeout=30)


def client(recall: Recall, key: str = "pk-A", upstream: str = "parallel", **options: object) -> Parallel:
    return Parallel(api_key=key, base_url=recall.base(upstream), **options)  # type: ignore[arg-type]


@pytest.fixture
def recall(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> Recall:
    return recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})


def test_launch_example_chain_folds_earlier_turns_into_each_input(recall: Recall, fake_parallel: FakeParallel) -> None:
    c = client(recall)
    previous = None
    runs = []
    for n, (question, answer) in enumerate(LAUNCH_CHAIN):
        run = c.task_run.create(input=question, processor="lite", task_spec=TEXT,
                                **({"previous_interaction_id": previous} if previous else {}))
        assert run.status == "queued" and run.is_active
        assert run.run_id.startswith("trun_") and run.interaction_id.startswith("itr_")
        assert "fake" not in run.run_id + run.interaction_id  # recall's ids, not the provider's
        result = c.task_run.result(run.run_id, api_timeout=3600)
        assert result.output.content == answer
        assert result.run.interaction_id == run.interaction_id and result.run.status == "completed"
        sent = fake_parallel.last_input()
        assert "previous_interaction_id" not in fake_parallel.creates()[-1].body
        if n == 0:
            assert sent == question  # a first turn goes as it is
        else:
            assert sent.startswith(CONTEXT_HEADER) and sent.endswith(f"{REQUEST_HEADER}\n{question}")
            for earlier_question, earlier_answer in LAUNCH_CHAIN[:n]:
                assert f"User: {earlier_question}" in sent and f"Assistant: {earlier_answer}" in sent
        previous = run.interaction_id
        runs.append(run)
    # Each node stores its own turn only, with a parent pointer; the chain is rebuilt.
    rows = recall.query("SELECT id, run_id, parent_id, depth, status, length(input) FROM interactions ORDER BY depth")
    assert [(r[0], r[1]) for r in rows] == [(r.interaction_id, r.run_id) for r in runs]
    assert [r[2] for r in rows] == [None, runs[0].interaction_id, runs[1].interaction_id]
    assert [r[4] for r in rows] == ["completed"] * 3
    assert max(r[5] for r in rows) < 250


def test_research_loop_across_processors(recall: Recall, fake_parallel: FakeParallel) -> None:
    """The launch material's chat loop, switching processor every turn (lite -> core -> ultra)."""
    c = client(recall)
    interaction_id = None
    answers = []
    for processor, user_input in [("lite", "Hi, my name is Karthik."), ("core", "I study glaciers."),
                                  ("ultra", "What is my name?")]:
        task_run = c.task_run.create(input=user_input, processor=processor, task_spec=TEXT,
                                     **({"previous_interaction_id": interaction_id} if interaction_id else {}))
        result = c.task_run.result(task_run.run_id, api_timeout=3600)
        interaction_id = task_run.interaction_id
        answers.append(result.output.content)
        assert fake_parallel.creates()[-1].body["processor"] == processor
        assert result.run.processor == processor
    assert answers[-1] == "Your name is Karthik."
    assert "User: Hi, my name is Karthik." in fake_parallel.last_input()


@pytest.mark.parametrize(
    ("task_spec", "kind"),
    [
        (TaskSpecParam(output_schema=TextSchemaParam()), "text"),
        (TaskSpecParam(output_schema=TextSchemaParam(description="one sentence")), "text"),
        ({"output_schema": {"type": "text", "description": "one sentence"}}, "text"),
        ({"output_schema": "A short answer"}, "text"),
        ({"output_schema": {"type": "json", "json_schema": {"type": "object", "properties": {
            "country": {"type": "string"}, "golds": {"type": "integer"}}}}}, "json"),
        ({"output_schema": {"json_schema": {"type": "object", "properties": {"country": {"type": "string"}}}}}, "json"),
        ({"output_schema": {"type": "auto"}}, "json"),
        (None, "json"),
    ],
    ids=["text-empty", "text-description", "text-typed", "bare-string", "json", "json-untyped", "auto", "none"],
)
def test_output_schemas(recall: Recall, fake_parallel: FakeParallel, task_spec: dict | None, kind: str) -> None:
    c = client(recall)
    run = c.task_run.create(input="Which country won the most Winter Olympics gold medals in 2026?",
                            processor="base", **({"task_spec": task_spec} if task_spec is not None else {}))
    result = c.task_run.result(run.run_id)
    assert result.output.type == kind
    assert isinstance(result.output.content, str if kind == "text" else dict)
    assert result.output.basis and result.output.basis[0].citations[0].url == BASIS_URL
    # The task spec reaches the provider exactly as the app sent it.
    assert fake_parallel.creates()[-1].body.get("task_spec") == (dict(task_spec) if task_spec is not None else None)
    if kind == "json":
        assert {b.field for b in result.output.basis} == set(result.output.content)


def test_object_input_keeps_its_schema_when_folded(recall: Recall, fake_parallel: FakeParallel) -> None:
    c = client(recall)
    input_schema = {"type": "json", "json_schema": {"type": "object", "properties": {"country": {"type": "string"}},
                                                     "required": ["country"], "additionalProperties": False}}
    output_schema = {"type": "json", "json_schema": {"type": "object", "properties": {
        "summary": {"type": "string"}, "context_chars": {"type": "integer"}}}}
    spec = {"output_schema": output_schema, "input_schema": input_schema}
    first = c.task_run.create(input="Which country won the most Winter Olympics gold medals in 2026?",
                              processor="core", task_spec=TEXT)
    c.task_run.result(first.run_id)
    second = c.task_run.create(input={"country": "Norway"}, processor="core", task_spec=spec,
                               previous_interaction_id=first.interaction_id)
    result = c.task_run.result(second.run_id)
    sent = fake_parallel.creates()[-1].body
    assert sent["input"]["country"] == "Norway"
    context = sent["input"][CONTEXT_FIELD]
    assert context.startswith(CONTEXT_HEADER) and "Assistant: Norway won the most gold medals: 18." in context
    sent_schema = sent["task_spec"]["input_schema"]["json_schema"]
    assert sent_schema["properties"][CONTEXT_FIELD]["type"] == "string"
    assert sent_schema["required"] == ["country"] and sent_schema["additionalProperties"] is False
    assert sent["task_spec"]["output_schema"] == output_schema
    assert result.output.type == "json" and result.output.content["context_chars"] > 0
    # The app's own input is what recall keeps and echoes, not the folded one.
    assert c.task_run.retrieve_input(second.run_id).input == {"country": "Norway"}
    # A third turn sees the json answer of the second as text.
    third = c.task_run.create(input="How many medals did they win?", processor="lite", task_spec=TEXT,
                              previous_interaction_id=second.interaction_id)
    assert c.task_run.result(third.run_id).output.content == "Norway won 41 medals in total."
    assert 'User: {"country":"Norway"}' in fake_parallel.last_input()


def test_an_object_input_with_the_context_field_cannot_be_folded(recall: Recall, fake_parallel: FakeParallel) -> None:
    c = client(recall)
    first = c.task_run.create(input="q", processor="lite")
    c.task_run.result(first.run_id)
    calls = len(fake_parallel.requests)
    with pytest.raises(parallel.BadRequestError) as caught:
        c.task_run.create(input={CONTEXT_FIELD: "mine"}, processor="lite", previous_interaction_id=first.interaction_id)
    assert CONTEXT_FIELD in caught.value.body["error"]["message"]
    assert len(fake_parallel.requests) == calls
    assert recall.query("SELECT count(*) FROM interactions") == [(1,)]


def test_webhooks_are_refused_when_emulated(recall: Recall, fake_parallel: FakeParallel) -> None:
    with pytest.raises(parallel.BadRequestError) as caught:
        client(recall).task_run.create(input="q", processor="lite", webhook={"url": "https://example.org/hook"})
    assert "webhook" in caught.value.body["error"]["message"] and "poll the result" in caught.value.body["error"]["message"]
    assert fake_parallel.requests == [] and recall.query("SELECT count(*) FROM interactions") == [(0,)]


class Medals(BaseModel):
    country: str
    golds: int


def test_execute_helper(recall: Recall, fake_parallel: FakeParallel) -> None:
    c = client(recall)
    parsed = c.task_run.execute(input="Which country won the most Winter Olympics gold medals in 2026?",
                                processor="lite", output=Medals)
    assert parsed.output.parsed == Medals(country="country: Norway won the most gold medals: 18.", golds=0)
    assert parsed.run.interaction_id.startswith("itr_")
    text = c.task_run.execute(input="Which country won the most Winter Olympics gold medals in 2026?",
                              processor="lite", output="A short answer")
    assert text.output.content == "Norway won the most gold medals: 18."
    assert fake_parallel.creates()[-1].body["task_spec"] == {"output_schema": "A short answer"}


def test_slow_run_long_polls_with_at_most_two_408s(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    fake_parallel.delay = 2.0
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    statuses: list[int] = []
    hooks = {"response": [lambda r: statuses.append(r.status_code) if r.request.url.path.endswith("/result") else None]}
    c = client(recall, http_client=httpx.Client(event_hooks=hooks))
    run = c.task_run.create(input="Which country won the most Winter Olympics gold medals in 2026?", processor="pro")
    assert c.task_run.retrieve(run.run_id).status in ("queued", "running")
    # timeout=0: recall answers 408 at once; the SDK retries twice; the third is held until the run ends.
    result = c.task_run.result(run.run_id, api_timeout=0)
    assert statuses == [408, 408, 200]
    assert result.output.type == "json" and result.run.status == "completed"
    recorded = recall.query("SELECT status FROM exchanges WHERE path LIKE '%/result%' ORDER BY id")
    assert recorded == [(408,), (408,), (200,)]
    # A fresh long-poll of a finished run answers at once, and the streak starts over.
    assert c.task_run.result(run.run_id, api_timeout=0).run.run_id == run.run_id


def test_result_holds_until_the_run_ends(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    fake_parallel.delay = 0.6
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    c = client(recall)
    parsed = c.task_run.execute(input="How many medals did they win?", processor="lite", output="text")
    assert parsed.output.content == "Who are 'they'? Nothing earlier says."


def test_failed_run(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    fake_parallel.fail = True
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    statuses: list[int] = []
    hooks = {"response": [lambda r: statuses.append(r.status_code)]}
    c = client(recall, http_client=httpx.Client(event_hooks=hooks))
    run = c.task_run.create(input="q", processor="lite")
    with pytest.raises(parallel.UnprocessableEntityError) as caught:
        c.task_run.result(run.run_id)
    assert statuses == [202, 422]  # the create is accepted (202, as Parallel answers); the failure never retried
    error = caught.value.body["error"]
    assert "failed" in error["message"] and "the fake research agent gave up" in error["message"]
    assert error["ref_id"]
    assert caught.value.response.headers["x-should-retry"] == "false"
    failed = c.task_run.retrieve(run.run_id)
    assert failed.status == "failed" and not failed.is_active and "gave up" in failed.error.message
    with pytest.raises(parallel.UnprocessableEntityError):  # not the SDK's RuntimeError
        c.task_run.execute(input="q", processor="lite")
    events = list(c.task_run.events(run.run_id))
    assert events[-1].run.status == "failed" and events[-1].output is None


def test_unknown_ids_are_404(recall: Recall, fake_parallel: FakeParallel) -> None:
    c = client(recall)
    for read in (c.task_run.retrieve, c.task_run.result, c.task_run.retrieve_input, c.task_run.events):
        with pytest.raises(parallel.NotFoundError) as caught:
            read("trun_doesnotexist")
        assert caught.value.body["type"] == "error" and "trun_doesnotexist" in caught.value.body["error"]["message"]
    with pytest.raises(parallel.NotFoundError) as caught:
        c.task_run.create(input="q", processor="lite", previous_interaction_id="itr_doesnotexist")
    assert "itr_doesnotexist" in caught.value.body["error"]["message"]
    assert fake_parallel.requests == []
    assert recall.query("SELECT count(*) FROM interactions") == [(0,)]


def test_another_key_cannot_read_or_chain(recall: Recall, fake_parallel: FakeParallel) -> None:
    mine, theirs = client(recall, key="pk-A"), client(recall, key="pk-B")
    run = mine.task_run.create(input="private", processor="lite")
    mine.task_run.result(run.run_id)
    calls = len(fake_parallel.requests)
    for read in (theirs.task_run.retrieve, theirs.task_run.result, theirs.task_run.retrieve_input,
                 theirs.task_run.events):
        with pytest.raises(parallel.NotFoundError):
            read(run.run_id)
    with pytest.raises(parallel.NotFoundError):
        theirs.task_run.create(input="x", processor="lite", previous_interaction_id=run.interaction_id)
    assert len(fake_parallel.requests) == calls
    assert mine.task_run.retrieve(run.run_id).status == "completed"


def test_keys_by_either_header_reach_the_provider_and_never_the_database(
    recall: Recall, fake_parallel: FakeParallel
) -> None:
    key = "pk-Secret-Key-0123456789"
    c = client(recall, key=key)
    run = c.task_run.create(input="hello", processor="lite")
    c.task_run.result(run.run_id)
    bearer = http.post(f"{recall.base('parallel')}/v1/tasks/runs", json={"input": "again", "processor": "lite",
                        "task_spec": {"output_schema": "text"}, "previous_interaction_id": run.interaction_id},
                        headers={"Authorization": f"Bearer {key}"})
    assert bearer.status_code == 202  # same key, same owner: the chain is visible (the run accepted)
    result = http.get(f"{recall.base('parallel')}/v1/tasks/runs/{bearer.json()['run_id']}/result",
                       headers={"Authorization": f"Bearer {key}"})
    assert result.json()["output"]["content"] == "[2 user messages] You said: again"
    # The provider reads x-api-key: a Bearer key is moved there.
    assert [r.headers.get("x-api-key") for r in fake_parallel.creates()] == [key, key]
    assert all("Authorization" not in r.headers for r in fake_parallel.creates())
    assert key.encode() not in recall.db_bytes()


def test_recall_store_false_keeps_nothing_but_still_answers(recall: Recall, fake_parallel: FakeParallel) -> None:
    c = client(recall)
    marker = "Unstored-Walrus-7781"
    run = c.task_run.create(input=f"Remember {marker}.", processor="lite", task_spec=TEXT,
                            extra_headers={"X-Recall-Store": "false"})
    result = c.task_run.result(run.run_id)
    assert result.output.content == f"[1 user messages] You said: Remember {marker}."
    assert c.task_run.retrieve_input(run.run_id).input == f"Remember {marker}."
    assert [e.run.status for e in c.task_run.events(run.run_id)][-1] == "completed"
    assert marker.encode() not in recall.db_bytes()
    assert recall.query("SELECT count(*) FROM interactions") == [(0,)]
    assert recall.query("SELECT count(*) FROM exchanges WHERE stored AND request_body IS NOT NULL") == [(0,)]
    with pytest.raises(parallel.NotFoundError):
        c.task_run.create(input="and?", processor="lite", previous_interaction_id=run.interaction_id)
    with pytest.raises(parallel.NotFoundError):
        client(recall, key="pk-B").task_run.result(run.run_id)


def test_events_stream(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    fake_parallel.delay = 0.5
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    c = client(recall)
    run = c.task_run.create(input="Which country won the most Winter Olympics gold medals in 2026?", processor="core",
                            task_spec=TEXT, enable_events=True)
    live = list(c.task_run.events(run.run_id))  # followed while the run goes on
    assert [e.type for e in live] == ["task_run.state"] * 3
    assert [e.run.status for e in live] == ["queued", "running", "completed"]
    assert live[-1].output.content == "Norway won the most gold medals: 18."
    assert {e.run.interaction_id for e in live} == {run.interaction_id}
    with http.stream("GET", f"{recall.base('parallel')}/v1/tasks/runs/{run.run_id}/events",
                      headers={"x-api-key": "pk-A"}) as answer:
        raw = b"".join(answer.iter_bytes())
    assert answer.headers["content-type"].startswith("text/event-stream")
    data = [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]
    assert [d["run"]["status"] for d in data] == ["queued", "running", "completed"]  # replayed from the store
    assert b"\nid:" not in raw and not raw.startswith(b"id:") and b"[DONE]" not in raw


BAD_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"[1]", "JSON object"),
    (b'{"processor": "lite"}', "input: is required"),
    (b'{"input": ["a"], "processor": "lite"}', "input: expected a string or a JSON object"),
    (b'{"input": "", "processor": "lite"}', "input: must not be empty"),
    (b'{"input": "q"}', "processor: is required"),
    (b'{"input": "q", "processor": 5}', "processor: is required"),
    (b'{"input": "q", "processor": "lite", "task_spec": "text"}', "task_spec: expected an object"),
    (b'{"input": "q", "processor": "lite", "task_spec": {}}', "task_spec.output_schema: is required"),
    (b'{"input": "q", "processor": "lite", "task_spec": {"output_schema": {"type": "xml"}}}', "type: expected one of"),
    (b'{"input": "q", "processor": "lite", "task_spec": {"output_schema": {"type": "json"}}}', "needs `json_schema`"),
    (b'{"input": "q", "processor": "lite", "task_spec": {"output_schema": 3}}', "schema object or a string"),
    (b'{"input": "q", "processor": "lite", "task_spec": {"output_schema": {}, "input_schema": {"type": "auto"}}}',
     "input_schema.type"),
    (b'{"input": "q", "processor": "lite", "metadata": ["k"]}', "metadata: expected an object"),
    (b'{"input": "q", "processor": "lite", "metadata": {"k": [1]}}', "metadata.k"),
    (b'{"input": "q", "processor": "lite", "previous_interaction_id": 5}', "previous_interaction_id"),
    (b'{"input": "q", "processor": "lite", "enable_events": "yes"}', "enable_events"),
    (b'{"input": "q", "processor": "lite", "source_policy": "example.org"}', "source_policy: expected an object"),
]


@pytest.mark.parametrize(("body", "fragment"), BAD_BODIES)
def test_bad_bodies_are_400_in_parallels_shape_and_write_nothing(
    recall: Recall, fake_parallel: FakeParallel, body: bytes, fragment: str
) -> None:
    answer = http.post(f"{recall.base('parallel')}/v1/tasks/runs", content=body,
                        headers={"x-api-key": "pk-A", "content-type": "application/json"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert answer.json()["type"] == "error" and error["ref_id"] and fragment in error["message"]
    assert fake_parallel.requests == []
    assert recall.query("SELECT count(*) FROM interactions") == [(0,)]
    assert recall.query("SELECT count(*) FROM exchanges WHERE stored OR request_body IS NOT NULL") == [(0,)]


def test_sdk_raises_bad_request_for_a_bad_timeout(recall: Recall) -> None:
    c = client(recall)
    run = c.task_run.create(input="q", processor="lite")
    answer = http.get(f"{recall.base('parallel')}/v1/tasks/runs/{run.run_id}/result?timeout=soon",
                       headers={"x-api-key": "pk-A"})
    assert answer.status_code == 400 and "timeout" in answer.json()["error"]["message"]


def test_context_budget_leaves_out_the_oldest_turns(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate",
                                                  context_max_chars=100)})
    c = client(recall)
    previous = None
    for question, _ in LAUNCH_CHAIN:
        run = c.task_run.create(input=question, processor="lite", task_spec=TEXT,
                                **({"previous_interaction_id": previous} if previous else {}))
        result = c.task_run.result(run.run_id)
        previous = run.interaction_id
    sent = fake_parallel.last_input()
    assert "(2 earlier turns left out to stay within 100 characters.)" in sent
    assert LAUNCH_CHAIN[0][0] not in sent and LAUNCH_CHAIN[0][1] not in sent
    assert f"Assistant: {LAUNCH_CHAIN[1][1]}" in sent
    # The newest answer still carried the medal count, so the comparison could be made.
    assert result.output.content == LAUNCH_CHAIN[2][1]


def test_a_run_cut_short_by_shutdown_is_failed(loop_thread: LoopThread, tmp_path: Path,
                                               fake_parallel: FakeParallel) -> None:
    fake_parallel.delay = 30.0
    config = Config(host="127.0.0.1", port=0)
    config.upstreams["parallel"] = Upstream("parallel", fake_parallel.url, "parallel", state="emulate")
    runner, port = loop_thread.run(start(config, tmp_path / "recall.db", check_recall(config)))
    run = Parallel(api_key="pk-A", base_url=f"http://127.0.0.1:{port}/parallel").task_run.create(
        input="q", processor="ultra")
    loop_thread.run(runner.cleanup())
    runner, port = loop_thread.run(start(config, tmp_path / "recall.db", check_recall(config)))
    try:
        c = Parallel(api_key="pk-A", base_url=f"http://127.0.0.1:{port}/parallel")
        with pytest.raises(parallel.UnprocessableEntityError) as caught:
            c.task_run.result(run.run_id)
        assert "recall shut down while this interaction was running" in caught.value.body["error"]["message"]
        assert c.task_run.retrieve(run.run_id).status == "failed"
    finally:
        loop_thread.run(runner.cleanup())
