"""Gemini Interactions through recall with the real google-genai SDK (3.x)."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import _interactions as gi

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_gemini import FakeGemini

MODEL = "gemini-3-flash-preview"


def client(recall: Recall, upstream: str = "gemini", key: str = "key-A") -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options={"base_url": recall.base(upstream), "retry_options": {"attempts": 1}},
    )


def user_turns_sent(fake: FakeGemini) -> list[str]:
    """The user texts in the last self-contained request recall sent upstream."""
    return [
        "".join(c["text"] for c in step["content"] if c["type"] == "text")
        for step in fake.last_body()["input"]
        if step["type"] == "user_input"
    ]


def test_launch_example_remembers_the_name(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    first = c.interactions.create(model=MODEL, input="Hi, my name is Karthik. I like to play cricket.")
    assert first.id.startswith("v1_")
    assert first.status == "completed"
    assert "Hi, my name is Karthik" in first.output_text
    second = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=first.id)
    assert "Karthik" in second.output_text
    assert second.id != first.id
    sent = fake_gemini.last_body()
    assert "previous_interaction_id" not in sent
    assert sent["store"] is False
    assert [s["type"] for s in sent["input"]] == ["user_input", "model_output", "user_input"]


def test_four_turn_chain_sends_complete_history_each_turn(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    questions = ["Suggest 3 cities in Japan.", "Best time for the first?", "A dish there?", "And the second city?"]
    previous = None
    for n, question in enumerate(questions, start=1):
        turn = c.interactions.create(model=MODEL, input=question, previous_interaction_id=previous)
        assert user_turns_sent(fake_gemini) == questions[:n]
        assert turn.output_text.startswith(f"[{n} user messages]")
        previous = turn.id
    # Each node stores only its own turn: the history is rebuilt, not copied.
    rows = recall.query("SELECT depth, length(input) FROM interactions ORDER BY depth")
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert max(r[1] for r in rows) < 200


def test_stateless_history_as_steps(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    history = [
        {"type": "user_input", "content": [{"type": "text", "text": "My name is Ada."}]},
        {"type": "model_output", "content": [{"type": "text", "text": "Hello Ada."}]},
        {"type": "user_input", "content": [{"type": "text", "text": "What is my name?"}]},
    ]
    turn = c.interactions.create(model=MODEL, input=history)
    assert "Your name is Ada." in turn.output_text
    assert user_turns_sent(fake_gemini) == ["My name is Ada.", "What is my name?"]


def test_input_shapes(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    single = c.interactions.create(model=MODEL, input={"type": "text", "text": "single object"})
    assert single.output_text.endswith("You said: single object")
    listed = c.interactions.create(
        model=MODEL,
        input=[{"type": "text", "text": "Describe"}, {"type": "image", "data": "iVBORw0KGgpmYWtl", "mime_type": "image/png"}],
    )
    assert listed.output_text.endswith("You said: Describe")
    sent = fake_gemini.last_body()["input"][0]["content"]
    assert sent[1] == {"type": "image", "data": "iVBORw0KGgpmYWtl", "mime_type": "image/png"}


def test_get_and_include_input(recall: Recall) -> None:
    c = client(recall)
    turn = c.interactions.create(model=MODEL, input="Remember the word zephyr.", system_instruction="Be terse.")
    got = c.interactions.get(turn.id)
    assert got.id == turn.id
    assert got.output_text == turn.output_text
    assert got.status == "completed"
    assert got.system_instruction == "Be terse."
    with_input = c.interactions.get(turn.id, include_input=True)
    assert with_input.input[0].content[0].text == "Remember the word zephyr."


def test_delete_removes_the_text_from_the_database(recall: Recall) -> None:
    c = client(recall)
    marker = "Marmalade-Quokka-7731"
    turn = c.interactions.create(model=MODEL, input=f"The secret is {marker}.")
    assert marker.encode() in recall.db_bytes()
    c.interactions.delete(turn.id)
    with pytest.raises(gi.NotFoundError):
        c.interactions.get(turn.id)
    with pytest.raises(gi.NotFoundError):
        c.interactions.create(model=MODEL, input="and?", previous_interaction_id=turn.id)
    assert marker.encode() not in recall.db_bytes()


def test_deleted_parent_leaves_children_working(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    first = c.interactions.create(model=MODEL, input="First: my name is Zed.")
    second = c.interactions.create(model=MODEL, input="Second.", previous_interaction_id=first.id)
    c.interactions.delete(first.id)
    third = c.interactions.create(model=MODEL, input="Third.", previous_interaction_id=second.id)
    assert third.status == "completed"
    # The erased turn is gone from the history recall rebuilds; its children stay.
    assert user_turns_sent(fake_gemini) == ["Second.", "Third."]


def test_store_false_writes_no_content(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    marker = "Unstored-Pangolin-4410"
    turn = c.interactions.create(model=MODEL, input=f"Keep {marker} to yourself.", store=False)
    assert marker in turn.output_text
    assert marker.encode() not in recall.db_bytes()
    assert recall.query("SELECT count(*) FROM interactions") == [(0,)]
    # A metadata-only row remains for the audit log.
    assert recall.query("SELECT stored, request_body, response_body FROM exchanges") == [(0, None, None)]
    with pytest.raises(gi.NotFoundError):
        c.interactions.create(model=MODEL, input="and?", previous_interaction_id=turn.id)


def test_stored_header_says_whether_content_was_kept(recall: Recall) -> None:
    import httpx

    body = {"model": MODEL, "input": "hello"}
    kept = httpx.post(f"{recall.base('gemini')}/v1/interactions", json=body, headers={"x-goog-api-key": "k"})
    assert kept.headers["x-recall-stored"] == "true"
    unkept = httpx.post(f"{recall.base('gemini')}/v1/interactions", json={**body, "store": False},
                        headers={"x-goog-api-key": "k"})
    assert unkept.headers["x-recall-stored"] == "false"
    opted_out = httpx.post(f"{recall.base('gemini')}/v1/interactions", json={**body, "input": "Opt-Out-Heron-99"},
                           headers={"x-goog-api-key": "k", "x-recall-store": "false"})
    assert opted_out.status_code == 200
    assert opted_out.headers["x-recall-stored"] == "false"
    assert b"Opt-Out-Heron-99" not in recall.db_bytes()


def test_unknown_previous_id_is_404(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    with pytest.raises(gi.NotFoundError) as caught:
        c.interactions.create(model=MODEL, input="hi", previous_interaction_id="v1_doesnotexist")
    assert caught.value.body["error"]["code"] == "not_found"
    assert "v1_doesnotexist" in caught.value.body["error"]["message"]
    assert fake_gemini.requests == []


def test_fork_keeps_branches_apart(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    root = c.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    left = c.interactions.create(model=MODEL, input="I like cricket.", previous_interaction_id=root.id)
    right = c.interactions.create(model=MODEL, input="Actually, my name is Priya.", previous_interaction_id=root.id)
    ask_left = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=left.id)
    assert user_turns_sent(fake_gemini) == ["Hi, my name is Karthik.", "I like cricket.", "What is my name?"]
    assert "Karthik" in ask_left.output_text
    ask_right = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=right.id)
    assert user_turns_sent(fake_gemini) == ["Hi, my name is Karthik.", "Actually, my name is Priya.", "What is my name?"]
    assert "Priya" in ask_right.output_text


def test_another_key_cannot_read_chain_delete_or_cancel(recall: Recall, fake_gemini: FakeGemini) -> None:
    mine = client(recall, key="key-A")
    theirs = client(recall, key="key-B")
    turn = mine.interactions.create(model=MODEL, input="private")
    calls = fake_gemini.requests.copy()
    with pytest.raises(gi.NotFoundError):
        theirs.interactions.get(turn.id)
    with pytest.raises(gi.NotFoundError):
        theirs.interactions.create(model=MODEL, input="x", previous_interaction_id=turn.id)
    with pytest.raises(gi.NotFoundError):
        theirs.interactions.delete(turn.id)
    with pytest.raises(gi.NotFoundError):
        theirs.interactions.cancel(turn.id)
    assert fake_gemini.requests == calls
    assert mine.interactions.get(turn.id).id == turn.id


def test_api_key_never_reaches_the_database(recall: Recall, fake_gemini: FakeGemini) -> None:
    key = "AIzaSy-Secret-Key-0123456789"
    c = client(recall, key=key)
    turn = c.interactions.create(model=MODEL, input="hello")
    c.interactions.create(model=MODEL, input="again", previous_interaction_id=turn.id)
    c.interactions.get(turn.id)
    assert fake_gemini.requests[-1].headers["x-goog-api-key"] == key
    assert key.encode() not in recall.db_bytes()


def test_native_mode_records_and_lets_the_provider_chain(recall_factory: RecallFactory, stateful_gemini: FakeGemini) -> None:
    recall = recall_factory({"gemini": Upstream("gemini", stateful_gemini.url, "gemini", state="native")})
    c = client(recall)
    first = c.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    assert first.id.startswith("v1_fake")  # the provider's own id
    second = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=first.id)
    assert "Karthik" in second.output_text
    assert stateful_gemini.last_body()["previous_interaction_id"] == first.id
    rows = recall.query("SELECT id, parent_id, root_id, mode FROM interactions ORDER BY depth")
    assert rows == [(first.id, None, first.id, "native"), (second.id, first.id, first.id, "native")]
    assert c.interactions.get(second.id).output_text == second.output_text
    other = client(recall, key="key-B")
    with pytest.raises(gi.NotFoundError):
        other.interactions.create(model=MODEL, input="x", previous_interaction_id=first.id)


def test_interactions_over_generate_content(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall, upstream="gemgen")
    first = c.interactions.create(model=MODEL, input="Hi, my name is Karthik.", system_instruction="Be kind.",
                                  generation_config={"temperature": 0.2, "max_output_tokens": 50})
    assert first.id.startswith("v1_")
    second = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=first.id)
    assert "Karthik" in second.output_text
    request = fake_gemini.requests[-1]
    assert request.path == f"/v1beta/models/{MODEL}:generateContent"
    body = request.body
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    # Only the conversation carries over: the first turn's system instruction and config do not.
    assert "systemInstruction" not in body and "generationConfig" not in body
    first_body = fake_gemini.requests[0].body
    assert first_body["systemInstruction"] == {"parts": [{"text": "Be kind."}]}
    assert first_body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 50}
    assert second.usage.total_input_tokens == 10


def test_untranslatable_tool_names_what_and_where(recall: Recall) -> None:
    c = client(recall, upstream="gemgen")
    with pytest.raises(gi.BadRequestError) as caught:
        c.interactions.create(model=MODEL, input="search", tools=[{"type": "google_search"}])
    message = caught.value.body["error"]["message"]
    assert "tools[0]" in message and "google_search" in message and "gemini-generate" in message
