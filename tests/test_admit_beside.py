"""A streamed turn's in-progress node is committed while the provider's stream opens (issue 21).

The commit costs the app's first byte the longer of the two, not their sum; and still
no byte of the stream, so no id, reaches the app before its node exists: a GET of the id
the first event names finds the node. Shown with the database's write lock held by another
connection, which keeps recall's commit waiting (as a slow disk would) for as long as the
test likes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Upstream

from .conftest import RecallFactory
from .support.fake_gemini import FakeGemini
from .test_gemini_interactions import MODEL, client


def test_the_provider_is_asked_while_the_node_commits_and_the_app_waits_for_the_commit(
        recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    recall = recall_factory({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")})
    if not isinstance(recall.database, Path):
        pytest.skip("holds a SQLite file's write lock")
    app = client(recall)
    seen: dict[str, Any] = {}

    def stream() -> None:
        events = iter(app.interactions.create(model=MODEL, input="Hi, my name is Ada.", stream=True))
        first = next(events)
        seen["first"] = first
        seen["got"] = app.interactions.get(first.interaction.id)  # at once: the node must be there
        seen["rest"] = [e.event_type for e in events]

    lock = sqlite3.connect(recall.database, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # recall's writer now waits (up to its busy timeout)
    streaming = threading.Thread(target=stream)
    try:
        streaming.start()
        deadline = time.monotonic() + 10
        while not fake_gemini.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake_gemini.requests, "the provider was not asked while the node's commit waited"
        time.sleep(0.3)  # the provider has answered by now; the app must still have nothing
        assert "first" not in seen
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    streaming.join(30)
    assert seen["first"].event_type == "interaction.created"
    assert seen["got"].id == seen["first"].interaction.id
    assert seen["got"].status in ("in_progress", "completed")
    assert seen["rest"][-1] == "interaction.completed"
    assert app.interactions.get(seen["first"].interaction.id).status == "completed"
