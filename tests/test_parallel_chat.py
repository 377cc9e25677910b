"""Parallel's Chat API through recall, with the openai SDK as Parallel documents it (spec section 3),
and threads that mix chat turns and task runs (the launch material).

Native: Parallel keeps the chain (`previous_interaction_id` goes to it, its
`interaction_id` comes back). Emulate (zero data retention): recall keeps it,
puts the earlier turns before the chat's messages (or folds them into a
task's input) and mints the ids.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_parallel import BASIS_URL, FakeParallel
from .test_parallel_tasks import LAUNCH_CHAIN, TEXT, http
from .test_parallel_tasks import client as tasks_client


def chat_client(recall: Recall, key: str = "pk-A") -> openai.OpenAI:
    """The openai SDK as Parallel's docs set it up: base_url is the bare host, so it posts to /chat/completions."""
    return openai.OpenAI(api_key=key, base_url=recall.base("parallel"), max_retries=0)


def ask(c: openai.OpenAI, question: str, previous: str | None, *, stream: bool, model: str = "lite") -> tuple[str, Any]:
    """One chat turn: the answer's text, and the object that carries `interaction_id` (the completion,
    or for a stream the list of chunks)."""
    extra = {"extra_body": {"previous_interaction_id": previous}} if previous else {}
    messages = [{"role": "user", "content": question}]
    if not stream:
        completion = c.chat.completions.create(model=model, messages=messages, **extra)  # type: ignore[arg-type]
        return completion.choices[0].message.content or "", completion
    chunks = list(c.chat.completions.create(model=model, messages=messages, stream=True,  # type: ignore[arg-type]
                                            stream_options={"include_usage": True}, **extra))
    return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices), chunks


def interaction_id_of(reply: Any) -> str:
    if isinstance(reply, list):  # a stream: on the first chunk and on the closing ones
        marked = [ch.interaction_id for ch in reply if getattr(ch, "interaction_id", None)]
        assert marked and len(set(marked)) == 1 and reply[0].interaction_id == marked[0]
        assert reply[-1].interaction_id == marked[0]
        return marked[0]
    return reply.interaction_id


def basis_of(reply: Any) -> list[dict[str, Any]]:
    if isinstance(reply, list):
        return next(ch.basis for ch in reversed(reply) if getattr(ch, "basis", None) is not None)
    return reply.basis


@pytest.fixture
def native(recall_factory: RecallFactory, stateful_parallel: FakeParallel) -> Recall:
    return recall_factory({"parallel": Upstream("parallel", stateful_parallel.url, "parallel", state="native")})


@pytest.fixture
def emulated(recall_factory: RecallFactory, fake_parallel: FakeParallel) -> Recall:
    return recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_native_chat_chain_is_parallels_and_recorded(native: Recall, stateful_parallel: FakeParallel,
                                                     stream: bool) -> None:
    c = chat_client(native)
    previous = None
    ids = []
    for question, answer in LAUNCH_CHAIN:
        text, reply = ask(c, question, previous, stream=stream)
        assert text == answer
        sent = stateful_parallel.chats()[-1]
        assert sent.path == "/chat/completions"
        assert sent.headers["x-api-key"] == "pk-A"  # relayed calls to Parallel carry the key in its own header
        assert sent.body.get("previous_interaction_id") == previous  # the provider keeps the chain
        assert [m["content"] for m in sent.body["messages"]] == [question]
        previous = interaction_id_of(reply)
        assert previous.startswith("itr_chat")  # Parallel's own id
        assert basis_of(reply)[0]["citations"][0]["url"] == BASIS_URL
        ids.append(previous)
    rows = native.query("SELECT id, parent_id, mode, front FROM interactions ORDER BY depth")
    assert rows == [(ids[0], None, "native", "openai-chat"), (ids[1], ids[0], "native", "openai-chat"),
                    (ids[2], ids[1], "native", "openai-chat")]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_emulated_chat_chain_carries_the_history(emulated: Recall, fake_parallel: FakeParallel, stream: bool) -> None:
    c = chat_client(emulated)
    previous = None
    for n, (question, answer) in enumerate(LAUNCH_CHAIN):
        text, reply = ask(c, question, previous, stream=stream)
        assert text == answer
        sent = fake_parallel.chats()[-1]
        assert sent.path == "/v1beta/chat/completions"  # Parallel's own path for its Chat API
        assert sent.headers["Authorization"] == "Bearer pk-A"  # as the openai SDK sent it; Parallel takes both
        assert "previous_interaction_id" not in sent.body
        earlier = [text for pair in LAUNCH_CHAIN[:n] for text in pair]
        assert [m["content"] for m in sent.body["messages"]] == [*earlier, question]
        assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant"] * n + ["user"]
        previous = interaction_id_of(reply)
        assert previous.startswith("chatcmpl-") and "par" not in previous  # recall's id, not the provider's
        assert basis_of(reply)[0]["citations"][0]["url"] == BASIS_URL  # Parallel's basis passes on
    assert emulated.query("SELECT count(*), min(mode) FROM interactions") == [(3, "emulate")]


def test_both_chat_paths_and_both_key_headers(emulated: Recall, fake_parallel: FakeParallel) -> None:
    for path, headers in (("/v1beta/chat/completions", {"x-api-key": "pk-A"}),
                          ("/chat/completions", {"authorization": "Bearer pk-A"})):
        answer = http.post(f"{emulated.base('parallel')}{path}", headers=headers,
                           json={"model": "speed", "messages": [{"role": "user", "content": "Hi, my name is Ada."}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["interaction_id"] and answer.json()["basis"] == []
    # One owner: a key is the same key in either header.
    assert emulated.query("SELECT count(DISTINCT owner) FROM interactions") == [(1,)]


def test_emulated_chat_refuses_unknown_previous_ids(emulated: Recall, fake_parallel: FakeParallel) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        ask(chat_client(emulated), "q", "itr_unknown", stream=False)
    assert caught.value.code == "interaction_not_found" and fake_parallel.chats() == []


def test_mixed_thread_chat_task_chat_emulated(emulated: Recall, fake_parallel: FakeParallel) -> None:
    """Chat, then a task run, then chat again: each upstream request carries every earlier turn."""
    (q1, a1), (q2, a2), (q3, a3) = LAUNCH_CHAIN
    chat, tasks = chat_client(emulated), tasks_client(emulated)
    text, first = ask(chat, q1, None, stream=False)
    assert text == a1
    run = tasks.task_run.create(input=q2, processor="core", task_spec=TEXT,
                                previous_interaction_id=first.interaction_id)
    assert tasks.task_run.result(run.run_id).output.content == a2
    folded = fake_parallel.last_input()
    assert f"User: {q1}\n\nAssistant: {a1}" in folded and folded.endswith(f"Current request:\n{q2}")
    text, third = ask(chat, q3, run.interaction_id, stream=True)
    assert text == a3
    assert [m["content"] for m in fake_parallel.chats()[-1].body["messages"]] == [q1, a1, q2, a2, q3]
    rows = emulated.query("SELECT front, parent_id FROM interactions ORDER BY depth")
    assert rows == [("openai-chat", None), ("parallel-tasks", first.interaction_id),
                    ("openai-chat", run.interaction_id)]
    assert interaction_id_of(third).startswith("chatcmpl-")


def test_mixed_thread_task_chat_task_native(native: Recall, stateful_parallel: FakeParallel) -> None:
    """In native mode Parallel keeps the mixed thread: each call names only its previous id."""
    (q1, a1), (q2, a2), (q3, a3) = LAUNCH_CHAIN
    chat, tasks = chat_client(native), tasks_client(native)
    run = tasks.task_run.create(input=q1, processor="lite", task_spec=TEXT)
    assert tasks.task_run.result(run.run_id).output.content == a1
    text, second = ask(chat, q2, run.interaction_id, stream=False)
    assert text == a2 and stateful_parallel.chats()[-1].body["previous_interaction_id"] == run.interaction_id
    last = tasks.task_run.create(input=q3, processor="core", task_spec=TEXT,
                                 previous_interaction_id=second.interaction_id)
    assert tasks.task_run.result(last.run_id).output.content == a3
    assert stateful_parallel.last_input() == q3  # nothing folded: Parallel remembers
    rows = native.query("SELECT id, front, parent_id FROM interactions ORDER BY depth")
    assert rows == [(run.interaction_id, "parallel-tasks", None),
                    (second.interaction_id, "openai-chat", run.interaction_id),
                    (last.interaction_id, "parallel-tasks", second.interaction_id)]
