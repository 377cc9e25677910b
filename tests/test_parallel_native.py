"""Parallel task runs through recall in native mode: the provider keeps the chain, recall records it."""

from __future__ import annotations

import time

import httpx
import parallel
import pytest

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_parallel import FakeParallel
from .test_parallel_tasks import LAUNCH_CHAIN, TEXT, client


@pytest.fixture
def recall(recall_factory: RecallFactory, stateful_parallel: FakeParallel) -> Recall:
    return recall_factory({"parallel": Upstream("parallel", stateful_parallel.url, "parallel", state="native")})


def test_native_chain_goes_to_the_provider_and_is_recorded(recall: Recall, stateful_parallel: FakeParallel) -> None:
    c = client(recall)
    previous = None
    runs = []
    for question, answer in LAUNCH_CHAIN:
        run = c.task_run.create(input=question, processor="lite", task_spec=TEXT,
                                **({"previous_interaction_id": previous} if previous else {}))
        assert run.run_id.startswith("trun_fake") and run.interaction_id.startswith("itr_fake")  # the provider's
        assert stateful_parallel.creates()[-1].body.get("previous_interaction_id") == previous
        assert stateful_parallel.last_input() == question  # nothing folded: the provider remembers
        assert c.task_run.result(run.run_id, api_timeout=30).output.content == answer
        previous = run.interaction_id
        runs.append(run)
    rows = recall.query("SELECT id, run_id, parent_id, root_id, mode, status, output FROM interactions ORDER BY depth")
    assert [(r[0], r[1]) for r in rows] == [(r.interaction_id, r.run_id) for r in runs]
    assert [r[2] for r in rows] == [None, runs[0].interaction_id, runs[1].interaction_id]
    assert {r[3] for r in rows} == {runs[0].interaction_id} and {r[4] for r in rows} == {"native"}
    # The results recall relayed completed the nodes: the chain is in the store for audit.
    assert [r[5] for r in rows] == ["completed"] * 3
    assert all(answer in row[6] for row, (_, answer) in zip(rows, LAUNCH_CHAIN, strict=True))
    paths = [p for (p,) in recall.query("SELECT path FROM exchanges ORDER BY id")]
    assert paths[:2] == ["/v1/tasks/runs", f"/v1/tasks/runs/{runs[0].run_id}/result?timeout=30"]
    # Reads go to the provider, which knows its runs.
    assert c.task_run.retrieve(runs[0].run_id).status == "completed"
    assert c.task_run.retrieve_input(runs[1].run_id).previous_interaction_id == runs[0].interaction_id


def test_native_run_status_is_the_providers(recall: Recall, stateful_parallel: FakeParallel) -> None:
    stateful_parallel.delay = 0.8
    c = client(recall)
    run = c.task_run.create(input="q", processor="pro")
    assert c.task_run.retrieve(run.run_id).status == "queued"
    time.sleep(0.45)
    assert c.task_run.retrieve(run.run_id).status == "running"
    assert recall.query("SELECT status FROM interactions") == [("in_progress",)]
    assert c.task_run.result(run.run_id).run.status == "completed"
    assert recall.query("SELECT status FROM interactions") == [("completed",)]


def test_native_events_are_relayed_and_complete_the_node(recall: Recall, stateful_parallel: FakeParallel) -> None:
    c = client(recall)
    run = c.task_run.create(input="Which country won the most Winter Olympics gold medals in 2026?", processor="core",
                            task_spec=TEXT)
    events = list(c.task_run.events(run.run_id))
    assert [e.type for e in events] == ["task_run.state", "task_run.progress_msg.plan", "task_run.state"]
    assert events[-1].output.content == LAUNCH_CHAIN[0][1]
    assert recall.query("SELECT status, output LIKE '%Norway%' FROM interactions") == [("completed", 1)]
    recorded = recall.query("SELECT response_body FROM exchanges WHERE path LIKE '%/events'")
    assert b"task_run.progress_msg.plan" in recorded[0][0]


def test_another_key_cannot_read_or_chain_a_native_run(recall: Recall, stateful_parallel: FakeParallel) -> None:
    mine, theirs = client(recall, key="pk-A"), client(recall, key="pk-B")
    run = mine.task_run.create(input="private", processor="lite")
    mine.task_run.result(run.run_id)
    calls = len(stateful_parallel.requests)
    for read in (theirs.task_run.retrieve, theirs.task_run.result, theirs.task_run.retrieve_input,
                 theirs.task_run.events):
        with pytest.raises(parallel.NotFoundError):
            read(run.run_id)
    with pytest.raises(parallel.NotFoundError):
        theirs.task_run.create(input="x", processor="lite", previous_interaction_id=run.interaction_id)
    assert len(stateful_parallel.requests) == calls


def test_native_errors_and_bearer_keys_pass_through(recall: Recall, stateful_parallel: FakeParallel) -> None:
    with pytest.raises(parallel.NotFoundError) as caught:
        client(recall).task_run.create(input="q", processor="lite", previous_interaction_id="itr_unknown")
    assert "itr_unknown" in caught.value.body["error"]["message"]  # the provider's own answer
    answer = httpx.post(f"{recall.base('parallel')}/v1/tasks/runs", json={"input": "q", "processor": "lite"},
                        headers={"Authorization": "Bearer pk-A"})
    assert answer.status_code == 202  # Parallel accepts a run with 202
    assert stateful_parallel.requests[-1].headers["x-api-key"] == "pk-A"
    assert b"pk-A" not in recall.db_bytes()


def test_native_store_false_header_records_no_content(recall: Recall, stateful_parallel: FakeParallel) -> None:
    c = client(recall)
    marker = "Native-Unstored-Okapi-31"
    run = c.task_run.create(input=marker, processor="lite", extra_headers={"X-Recall-Store": "false"})
    assert c.task_run.result(run.run_id, extra_headers={"X-Recall-Store": "false"}).run.run_id == run.run_id
    assert marker.encode() not in recall.db_bytes()
    assert recall.query("SELECT count(*) FROM interactions") == [(0,)]
