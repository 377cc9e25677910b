"""Parallel's Responses API through recall, with the openai SDK (docs/PARALLEL_RESPONSES.md).

Native: Parallel keeps the chain (`previous_response_id` goes to it) and recall records it.
Emulate (a zero-data-retention account): recall keeps the chain and sends Parallel the
history as the text-only `{role, content}` messages it takes, never a previous id.
"""

from __future__ import annotations

import openai
import orjson
import pytest

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_parallel import FakeParallel
from .test_parallel_tasks import LAUNCH_CHAIN

RESPONSES = "/v1/responses"


def client(recall: Recall) -> openai.OpenAI:
    return openai.OpenAI(api_key="pk-A", base_url=recall.base("parallel") + "/v1", max_retries=0)


@pytest.fixture
def native(recall_factory: RecallFactory, stateful_parallel: FakeParallel) -> Recall:
    return recall_factory({"parallel": Upstream("parallel", stateful_parallel.url, "parallel", state="native")})


@pytest.fixture
def emulated(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> Recall:
    return recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})


def _sent(fake: FakeParallel) -> list[dict]:
    return [seen.body for seen in fake.requests if seen.path == RESPONSES]


def test_native_chain_is_parallels_and_recorded(native: Recall, stateful_parallel: FakeParallel) -> None:
    c = client(native)
    previous = None
    for question, answer in LAUNCH_CHAIN:
        response = c.responses.create(model="parallel", input=question, reasoning={"effort": "low"},
                                      **({"previous_response_id": previous} if previous else {}))
        assert response.id.startswith("resp_par")  # Parallel's own id, relayed
        assert response.output_text == answer
        assert response.output[-1].content[0].annotations[0].type == "url_citation"
        assert _sent(stateful_parallel)[-1].get("previous_response_id") == previous
        assert _sent(stateful_parallel)[-1]["input"] == question  # nothing re-sent: Parallel remembers
        previous = response.id
    rows = native.query("SELECT mode, status, parent_id IS NOT NULL FROM interactions ORDER BY depth")
    assert rows == [("native", "completed", 0), ("native", "completed", 1), ("native", "completed", 1)]


def test_emulated_chain_sends_the_history_as_text_messages(emulated: Recall, fake_parallel: FakeParallel) -> None:
    c = client(emulated)
    previous = None
    for n, (question, answer) in enumerate(LAUNCH_CHAIN):
        response = c.responses.create(model="parallel", input=question,
                                      **({"previous_response_id": previous} if previous else {}))
        assert response.output_text == answer
        sent = _sent(fake_parallel)[-1]
        assert "previous_response_id" not in sent
        # Every earlier turn as {role, content} text, then the new question as the app sent it.
        assert [m["role"] for m in sent["input"]] == ["user", "assistant"] * n + ["user"]
        assert all(isinstance(m["content"], str) for m in sent["input"])
        previous = response.id
    assert previous is not None and not previous.startswith("resp_par")  # recall's id, not Parallel's
    assert c.responses.retrieve(previous).output_text == LAUNCH_CHAIN[-1][1]


def test_an_emulated_stream_relays_the_answer_and_its_citations(emulated: Recall, fake_parallel: FakeParallel) -> None:
    c = client(emulated)
    first = c.responses.create(model="parallel", input=LAUNCH_CHAIN[0][0])
    with c.responses.stream(model="parallel", input=LAUNCH_CHAIN[1][0], previous_response_id=first.id) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == LAUNCH_CHAIN[1][1]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert [m["role"] for m in _sent(fake_parallel)[-1]["input"]] == ["user", "assistant", "user"]


def test_a_native_stream_is_relayed_byte_for_byte(native: Recall, stateful_parallel: FakeParallel) -> None:
    with client(native).responses.stream(model="parallel", input=LAUNCH_CHAIN[0][0]) as stream:
        kinds = [event.type for event in stream]
    assert "response.output_text.annotation.added" in kinds
    assert stream.get_final_response().output_text == LAUNCH_CHAIN[0][1]


@pytest.mark.parametrize(("extra", "message"), [
    ({"model": "PARALLEL", "input": ""}, "input must not be empty"),  # the model matched case-insensitively
    ({"background": True}, "background mode is not supported"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://example.org/a.png"}]}]},
     "unsupported non-text content parts: input_image"),
])
def test_what_parallel_refuses_comes_back_as_its_400(native: Recall, extra: dict, message: str) -> None:
    body = {"model": "parallel", "input": "hello", **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        client(native).responses.create(**body)
    assert message in caught.value.message


def test_another_model_is_a_task_api_processor(native: Recall, stateful_parallel: FakeParallel) -> None:
    """Parallel's Responses API serves the model `parallel` only; a Responses request under a Parallel
    upstream that names a processor goes to the Task API, translated (as before that API existed)."""
    response = client(native).responses.create(model="lite", input=LAUNCH_CHAIN[0][0])
    assert response.output_text == LAUNCH_CHAIN[0][1]
    assert _sent(stateful_parallel) == []
    assert stateful_parallel.creates()[-1].body["processor"] == "lite"


def test_store_false_is_not_recorded_though_parallel_keeps_it(native: Recall, stateful_parallel: FakeParallel) -> None:
    response = client(native).responses.create(model="parallel", input=LAUNCH_CHAIN[0][0], store=False)
    assert response.output_text == LAUNCH_CHAIN[0][1]
    # Parallel ignores store: it keeps the response, so a follow-up by id still works there.
    assert response.id in stateful_parallel.response_memory
    assert native.query("SELECT count(*) FROM interactions") == [(0,)]
    bodies = [b for (b,) in native.query("SELECT response_body FROM exchanges")]
    assert bodies == [None]  # a metadata-only audit row: nothing of what was said


def test_the_parallel_beta_header_reaches_parallel_untouched(native: Recall, stateful_parallel: FakeParallel) -> None:
    client(native).responses.create(model="parallel", input="hello",
                                    extra_headers={"parallel-beta": "mcp-server-2025-07-17"})
    assert stateful_parallel.requests[-1].headers.get("parallel-beta") == "mcp-server-2025-07-17"


def test_an_emulated_chain_is_answered_from_the_recording_in_replay(
        recall_factory: RecallFactory, fake_parallel: FakeParallel) -> None:
    live = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    first = client(live).responses.create(model="parallel", input=LAUNCH_CHAIN[0][0])
    recorded = orjson.loads(orjson.dumps(first.model_dump()))
    replaying = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")},
                               mode="replay", db_name=live.db_path.name)
    seen = len(fake_parallel.requests)
    again = client(replaying).responses.create(model="parallel", input=LAUNCH_CHAIN[0][0])
    assert again.id == recorded["id"] and again.output_text == LAUNCH_CHAIN[0][1]
    assert len(fake_parallel.requests) == seen  # no call to Parallel


def test_a_chain_kept_for_parallel_is_compacted_by_recall(emulated: Recall, fake_parallel: FakeParallel) -> None:
    """Parallel documents no /responses/compact: recall asks Parallel's Responses API for the
    summary and seals it, as on any upstream that cannot compact."""
    c = client(emulated)
    first = c.responses.create(model="parallel", input=LAUNCH_CHAIN[0][0])
    compacted = c.responses.compact(model="parallel", previous_response_id=first.id)
    assert compacted.output[-1].type == "compaction"
    assert [seen.path for seen in fake_parallel.requests] == [RESPONSES, RESPONSES]  # the turn, then the summary
    follow = c.responses.create(model="parallel", input=LAUNCH_CHAIN[1][0], previous_response_id=compacted.id)
    assert follow.output_text
