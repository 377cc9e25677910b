"""Purge and rm while serving never cost the server (issue 16, item 7): an erase of any size
is many short transactions, and a serving recall's writes go between them.

The latency figures are bench/purge_under_load.py's (docs/RELIABILITY.md, section 15); these
tests pin the property that makes them: no transaction of an erase grows with the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from proxy.config import Config, Upstream
from proxy.http.app import start
from proxy.store.audit_db import AuditDB
from proxy.store.sqlite import SQLiteStore

from .support.fake_gemini import FakeGemini
from .support.loop_thread import LoopThread

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from purge_under_load import build  # noqa: E402

ROWS = 20_000  # 10,000 nodes and 10,000 exchanges, half of them old: 20 batches' worth
DAY = 86400.0
ROOT = Path(__file__).resolve().parent.parent
# Rows one transaction of an erase may change (its nodes, their exchanges and events, the search
# index's rows and pages): a step of 500 nodes changes about 8,000; the whole erase at once, 80,000.
MOST_CHANGES_AT_ONCE = 20_000


def transactions_of(db: sqlite3.Connection) -> list[int]:
    """Record the rows each transaction on `db` changes, from now on (the list fills as they commit)."""
    changed: list[int] = []
    begun = [db.total_changes]

    def seen(statement: str) -> None:
        word = statement.strip().split(None, 1)[0].upper() if statement.strip() else ""
        if word == "BEGIN":
            begun[0] = db.total_changes
        elif word == "COMMIT":
            changed.append(db.total_changes - begun[0])

    db.set_trace_callback(seen)
    return changed


def test_recall_purge_commits_in_short_steps(tmp_path: Path) -> None:
    path = tmp_path / "recall.db"
    asyncio.run(build(path, ROWS))
    audit = AuditDB.open(path)
    try:
        changed = transactions_of(audit.db)
        removed = audit.purge(time.time() - 5 * DAY)
    finally:
        audit.close()
    assert removed.interactions == ROWS // 4 and removed.exchanges == ROWS // 4
    # Many transactions, none of them the whole erase: each holds the database for a batch's worth.
    assert len(changed) >= 10
    assert max(changed) <= MOST_CHANGES_AT_ONCE, max(changed)


def test_a_retention_purge_inside_the_server_is_many_writer_jobs(tmp_path: Path, loop_thread: LoopThread) -> None:
    """Each step is one job of the writer: the requests' writes queued meanwhile go between them."""
    path = tmp_path / "recall.db"
    asyncio.run(build(path, ROWS))

    async def run() -> tuple[list[int], int]:
        store = await SQLiteStore.open(path)
        try:
            # The writer's own connection, watched from its own thread (sqlite3 objects are per thread).
            writer = store._writer_db
            changed: list[int] = await writer._execute(transactions_of, writer._conn)
            removed = await store.purge_older_than(time.time() - 5 * DAY)
            return changed, removed.interactions
        finally:
            await store.close()

    changed, erased = loop_thread.run(run())
    assert erased == ROWS // 4
    assert len(changed) >= 10
    assert max(changed) <= MOST_CHANGES_AT_ONCE, max(changed)


@pytest.mark.slow
def test_a_purge_of_half_a_large_database_fails_no_turn_of_a_serving_recall(
        tmp_path: Path, loop_thread: LoopThread, fake_gemini: FakeGemini) -> None:
    """The load run (slow tier): 100,000 rows, four chains of turns, `recall purge` from another process."""
    db_path = tmp_path / "recall.db"
    asyncio.run(build(db_path, 100_000))
    config = Config(host="127.0.0.1", port=0)
    config.upstreams = {"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")}
    runner, port = loop_thread.run(start(config, db_path))
    url = f"http://127.0.0.1:{port}/gemini/v1beta/interactions"
    stop, answers = threading.Event(), []

    def chain() -> None:
        with httpx.Client(timeout=60, headers={"x-goog-api-key": "key-A"}) as http:
            previous = None
            while not stop.is_set():
                body: dict[str, str] = {"model": "m", "input": "Hi, my name is Ada."}
                if previous:
                    body = {"model": "m", "input": "And again?", "previous_interaction_id": previous}
                answer = http.post(url, json=body)
                answers.append((answer.status_code, answer.text[:200]))
                previous = answer.json().get("id") if answer.status_code == 200 and len(answers) % 5 else None

    workers = [threading.Thread(target=chain) for _ in range(4)]
    try:
        for worker in workers:
            worker.start()
        purge = subprocess.run([sys.executable, "-m", "proxy", "purge", "--older-than", "5d", "--db", str(db_path)],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
        loop_thread.run(runner.cleanup())
    said = purge.stdout + purge.stderr
    # Exit 1 only for a WAL a busy server kept from being truncated (said, and harmless here).
    assert purge.returncode == 0 or "WAL could not be truncated" in said, said
    assert "erased 25000 interaction(s)" in said, said
    failed = [a for a in answers if a[0] != 200]
    assert len(answers) > 20 and failed == [], failed[:3]
