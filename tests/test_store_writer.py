"""A write that meets another process's lock (a `recall rm`, a second instance) waits for it on
the writer's thread, while the event loop goes on serving; and writes go on once it is gone."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from proxy.model import COMPLETED, USER, Interaction, Part, Turn
from proxy.store.sqlite import SQLiteStore


def node(node_id: str) -> Interaction:
    now = time.time()
    return Interaction(id=node_id, owner="o", upstream="u", front="gemini-interactions", mode="emulate", model="m",
                       status=COMPLETED, input=[Turn(USER, [Part("text", text="hello")])], output=[],
                       created=now, updated=now)


def test_a_write_that_meets_another_process_lock_waits_while_the_loop_serves(tmp_path: Path) -> None:
    path = tmp_path / "recall.db"

    async def run() -> tuple[int, float]:
        store = await SQLiteStore.open(path)
        other = sqlite3.connect(path, isolation_level=None)  # a `recall rm` in another process
        try:
            other.execute("BEGIN IMMEDIATE")
            saving = asyncio.ensure_future(store.save_interaction(node("v1_locked")))
            ticks = 0
            started = time.perf_counter()
            while time.perf_counter() - started < 0.5:  # the loop runs while the save waits
                await asyncio.sleep(0.01)
                ticks += 1
            assert not saving.done()
            other.execute("COMMIT")
            assert await asyncio.wait_for(saving, 10) is True
            waited = time.perf_counter() - started
            return ticks, waited
        finally:
            other.close()
            await store.close()

    ticks, waited = asyncio.run(run())
    assert ticks >= 20, ticks  # about 50 ticks of 10 ms in 0.5 s; a blocked loop would give 1
    assert waited < 5
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT status FROM interactions WHERE id = 'v1_locked'").fetchall() == [(COMPLETED,)]


def test_a_store_takes_writes_again_after_the_lock_it_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "recall.db"

    async def run() -> list[bool]:
        store = await SQLiteStore.open(path)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            first = asyncio.ensure_future(store.save_interaction(node("v1_a")))
            await asyncio.sleep(0.1)
            other.execute("COMMIT")
            # Once the lock is gone, writes commit on the loop's thread again, without waiting.
            return [await first, *[await store.save_interaction(node(f"v1_{n}")) for n in range(3)]]
        finally:
            other.close()
            await store.close()

    assert asyncio.run(run()) == [True] * 4
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM interactions").fetchone() == (4,)
