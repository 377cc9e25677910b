"""A delete always wins (issue 16, items 1 and 2): a turn erased while it runs stays erased.

Deleting a running turn (DELETE of any front API, `recall rm`, a purge) stops its
run, and nothing that run writes afterwards (the node, its exchange, its stream
events, its search entry, its conversation items) reaches the file: the final
write used to be an INSERT OR REPLACE that brought everything back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import openai
import parallel
import pytest
from google import genai
from google.genai import _interactions as gi

from proxy.config import Config, Upstream
from proxy.model import COMPLETED, IN_PROGRESS, TEXT, USER, Interaction, Part, Turn
from proxy.model import MODEL as MODEL_ROLE
from proxy.store.records import Exchange
from proxy.store.sqlite import SQLiteStore

from .conftest import Recall, RecallFactory
from .support.conversations import cli
from .support.fake_gemini import FakeGemini
from .support.fake_openai import FakeOpenAI
from .support.fake_parallel import FakeParallel
from .support.loop_thread import LoopThread
from .support.openai_sdk import MODEL as OPENAI_MODEL
from .test_gemini_interactions import MODEL

MARKER = "Quetzalbrook"


def gemini(recall: Recall) -> genai.Client:
    return genai.Client(api_key="key-A", http_options={"base_url": recall.base("gemini"),
                                                       "retry_options": {"attempts": 1}})


def nothing_left_of(recall: Recall, interaction_id: str) -> list[str]:
    """Whatever the file still holds of an erased turn (empty when it holds nothing but a tombstone)."""
    problems = []
    rows = recall.query("SELECT status, input, output, request, error, deleted_at FROM interactions WHERE id = ?",
                        interaction_id)
    for status, *content, deleted_at in rows:
        if status != "deleted" or deleted_at is None or any(c is not None for c in content):
            problems.append(f"the node came back: {status} {content}")
    for table in ("exchanges", "stream_events"):
        if count := recall.query(f"SELECT count(*) FROM {table} WHERE interaction_id = ?", interaction_id)[0][0]:
            problems.append(f"{count} rows in {table}")
    if found := recall.search_entries(MARKER):
        problems.append(f"{found} search rows")
    # The file's bytes: SQLite overwrites erased content (secure_delete); PostgreSQL's old row
    # versions stay in its pages until a vacuum, so the bytes are looked at on SQLite only.
    if isinstance(recall.database, Path) and MARKER.encode() in recall.db_bytes():
        problems.append("the marker is still in the file")
    return problems


def release(loop_thread: LoopThread, hold: asyncio.Event) -> None:
    loop_thread.loop.call_soon_threadsafe(hold.set)


# -- DELETE through the front API -------------------------------------------------------


@pytest.mark.parametrize("when", ["before the first event", "mid-stream"])
def test_deleting_a_streaming_interaction_keeps_it_deleted(recall_factory: RecallFactory, fake_gemini: FakeGemini,
                                                           loop_thread: LoopThread, when: str) -> None:
    recall = recall_factory({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")})
    fake_gemini.hold = asyncio.Event()
    if when == "before the first event":
        fake_gemini.reply_delay = 0.5
    c = gemini(recall)
    seen: list[Any] = []
    created = threading.Event()

    def app() -> None:
        for event in c.interactions.create(model=MODEL, input=f"Tell me of {MARKER}.", stream=True):
            seen.append(event)
            created.set()

    reader = threading.Thread(target=app)
    reader.start()
    assert created.wait(10)
    interaction_id = seen[0].interaction.id
    c.interactions.delete(interaction_id)
    release(loop_thread, fake_gemini.hold)
    reader.join(10)
    assert not reader.is_alive()
    with pytest.raises(gi.NotFoundError):
        c.interactions.get(interaction_id)
    time.sleep(0.3)
    assert nothing_left_of(recall, interaction_id) == []


def test_deleting_a_background_interaction_cancels_its_run(recall_factory: RecallFactory, fake_gemini: FakeGemini,
                                                           loop_thread: LoopThread) -> None:
    recall = recall_factory({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")})
    fake_gemini.hold = asyncio.Event()
    c = gemini(recall)
    started = c.interactions.create(model=MODEL, input=f"Research {MARKER}.", background=True)
    deadline = time.monotonic() + 10
    while not fake_gemini.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    c.interactions.delete(started.id)
    finished = fake_gemini.streams_finished
    release(loop_thread, fake_gemini.hold)
    time.sleep(0.5)
    # The provider call was abandoned with the run: the fake never finished that stream.
    assert fake_gemini.streams_finished == finished
    assert nothing_left_of(recall, started.id) == []


def test_deleting_a_conversation_while_its_turn_streams_keeps_nothing_of_it(
        recall_factory: RecallFactory, fake_openai: FakeOpenAI, loop_thread: LoopThread) -> None:
    recall = recall_factory({"openai": Upstream("openai", fake_openai.url, "openai", state="emulate")})
    fake_openai.hold = asyncio.Event()
    c = openai.OpenAI(api_key="sk-A", base_url=f"{recall.base('openai')}/v1", max_retries=0)
    conversation = c.conversations.create()
    started = threading.Event()
    done: list[Any] = []

    def app() -> None:
        with c.responses.stream(model=OPENAI_MODEL, input=f"Tell me of {MARKER}.",
                                conversation=conversation.id) as stream:
            for _ in stream:
                started.set()
            done.append(True)

    reader = threading.Thread(target=app)
    reader.start()
    assert started.wait(10)
    c.conversations.delete(conversation.id)
    release(loop_thread, fake_openai.hold)
    reader.join(10)
    time.sleep(0.3)
    assert recall.query("SELECT count(*) FROM openai_conversation_items WHERE conversation_id = ?",
                        conversation.id) == [(0,)]
    assert recall.query("SELECT count(*) FROM openai_conversations") == [(0,)]


# -- recall rm and purge from another process, while the server runs the turn ----------


def test_rm_of_a_running_task_run_is_not_undone_when_it_finishes(recall_factory: RecallFactory,
                                                                 fake_parallel: FakeParallel) -> None:
    fake_parallel.delay = 1.0
    recall = recall_factory({"parallel": Upstream("parallel", fake_parallel.url, "parallel", state="emulate")})
    client = parallel.Parallel(api_key="pk-A", base_url=recall.base("parallel"), max_retries=0)
    run = client.task_run.create(input=f"Research {MARKER}.", processor="lite")
    result = cli(recall.db_path, "rm", run.interaction_id, "--thread")
    assert result.exit_code == 0, result.output
    time.sleep(2.0)  # the run finishes at the provider, and tries to write
    assert nothing_left_of(recall, run.interaction_id) == []


def test_purge_of_a_running_turn_is_not_undone_when_it_finishes(recall_factory: RecallFactory,
                                                                fake_gemini: FakeGemini,
                                                                loop_thread: LoopThread) -> None:
    recall = recall_factory({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")})
    fake_gemini.hold = asyncio.Event()
    c = gemini(recall)
    started = c.interactions.create(model=MODEL, input=f"Research {MARKER}.", background=True)
    time.sleep(1.1)  # older than one second, by the purge's own clock
    result = cli(recall.db_path, "purge", "--older-than", "1s")
    assert result.exit_code == 0, result.output
    release(loop_thread, fake_gemini.hold)
    time.sleep(0.5)
    assert nothing_left_of(recall, started.id) == []


# -- the store itself: the last write of a run, in every order ---------------------------


def test_every_write_after_the_erase_is_refused(loop_thread: LoopThread, tmp_path: Path) -> None:
    """Right before the final commit: the erase is queued just ahead of the run's last writes."""
    turn = [Turn(USER, [Part(TEXT, text=f"Tell me of {MARKER}.")])]
    node = Interaction(id="v1_running", owner="o", upstream="gemini", front="gemini-interactions", mode="emulate",
                       model=MODEL, status=IN_PROGRESS, input=turn, output=[], created=time.time(),
                       updated=time.time())

    async def run() -> tuple[bool, bool]:
        store = await SQLiteStore.open(tmp_path / "recall.db")
        try:
            first = await store.save_interaction(node)
            await store.delete_interaction(node.id)
            node.status, node.output = COMPLETED, [Turn(MODEL_ROLE, [Part(TEXT, text=f"{MARKER} is a river.")])]
            exchange = Exchange(upstream="gemini", method="POST", path="/v1beta/interactions", created=time.time(),
                                status=200, response_body=MARKER.encode())
            last = await store.save_interaction(node, exchange)
            await store.record_exchange(Exchange(upstream="gemini", method="GET", path="/x", created=time.time(),
                                                 interaction_id=node.id, response_body=MARKER.encode()))
            await store.append_frames(node.id, [(1, "e1", 0.0, MARKER.encode())])
            return first, last
        finally:
            await store.close()

    first, last = loop_thread.run(run())
    assert (first, last) == (True, False)
    recall = Recall("", tmp_path / "recall.db", Config())
    assert nothing_left_of(recall, node.id) == []
