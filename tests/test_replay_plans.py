"""A replay hit costs the same among a thousand recordings or a million (issue 21).

What a hit does in the store (the Cache finding the n-th recording of its key, the recorded
events of a streamed one, the hit's metadata-only row) is run on a SQLite store whose
statements are traced: every read must be an index lookup (EXPLAIN QUERY PLAN, no SCAN of a
table), and finding a key's recordings must read as much after two thousand hits of that key
(each leaves a row under the key, for `recall stats`) as before the first: a hit that read
every earlier hit's row grew dearer with each request of a replayed test suite.

SQLite only, and through the store's private connections: the plans are the file's own.
PostgreSQL's are held to the same rule in test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from proxy.pipeline.cache import Cache
from proxy.store.records import Exchange
from proxy.store.rows import insert_exchange
from proxy.store.sqlite import SQLiteStore, open_private, open_sync
from proxy.store.threads import on_thread

from .support.loop_thread import LoopThread

RECORDINGS = 3_000
HOT = "hot-key"


def recording(n: int, key: str) -> Exchange:
    streamed = n % 10 == 0
    return Exchange(upstream="gemini", method="POST", path="/v1/interactions", created=time.time(), status=200,
                    owner="owner-a", interaction_id=f"v1_rec{n}" if streamed else None,
                    request_body=b'{"input": %d}' % n, response_body=None if streamed else b'{"n": %d}' % n,
                    response_headers={"content-type": "text/event-stream" if streamed else "application/json"},
                    cache_key=key, cache="live")


def hit_row(key: str) -> Exchange:
    """What a replay hit leaves: a metadata-only row under the key it was answered for."""
    return Exchange(upstream="gemini", method="POST", path="/v1/interactions", created=time.time(), status=200,
                    owner="owner-a", stored=False, cache_key=key, cache="hit")


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """Recordings under distinct keys (one in ten streamed, with events) and two under HOT."""
    path = tmp_path / "recall.db"
    open_private(path)
    with open_sync(path) as db:
        for n in range(RECORDINGS):
            insert_exchange(db, recording(n, f"key{n}"))
        for n in (RECORDINGS, RECORDINGS + 1):
            insert_exchange(db, recording(n, HOT))
        db.executemany("INSERT INTO stream_events (interaction_id, seq, event_id, at_ms, frame) VALUES (?,?,?,?,?)",
                       [(f"v1_rec{n}", seq, f"e{seq}", 0.0, b"data: {}\n\n")
                        for n in range(0, RECORDINGS + 2, 10) for seq in (1, 2, 3)])
    return path


class Traced:
    """The statements the store's two connections run, and the virtual-machine steps its reader takes."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.reader_steps = 0

    def step(self) -> int:
        self.reader_steps += 1
        return 0  # go on

    async def attach(self, store: SQLiteStore) -> None:
        reader, writer = store._reader, store._writer_db  # the file's plans are the point here
        await on_thread(reader, lambda db: db.set_trace_callback(self.statements.append), reader._conn)
        await on_thread(reader, lambda db: db.set_progress_handler(self.step, 1), reader._conn)
        await on_thread(writer, lambda db: db.set_trace_callback(self.statements.append), writer._conn)


def with_store(loop_thread: LoopThread, path: Path,
               test: Callable[[SQLiteStore, Traced], Awaitable[None]]) -> Traced:
    """`test` on a store opened on `path`, traced; what the trace saw."""
    traced = Traced()

    async def run() -> None:
        store = await SQLiteStore.open(path)
        try:
            await traced.attach(store)
            await test(store, traced)
        finally:
            await store.close()

    loop_thread.run(run(), timeout=120)
    return traced


async def hit(store: SQLiteStore, cache: Cache, key: str) -> Exchange:
    """The store's part of a replay hit, as http/app.py and Cache.serve run it."""
    found = await cache.find(key)
    assert found is not None
    if found.response_body is None and found.interaction_id:
        assert await store.stream_frames_timed(found.interaction_id)
    await store.record_exchange(hit_row(key))
    return found


def plans(path: Path, statements: list[str]) -> Iterator[tuple[str, list[str]]]:
    with sqlite3.connect(path) as db:
        for sql in dict.fromkeys(statements):
            if sql.lstrip().upper().startswith(("SELECT", "WITH", "INSERT", "UPDATE", "DELETE")):
                yield sql, [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]


def test_every_statement_of_a_hit_is_an_index_lookup(loop_thread: LoopThread, database: Path) -> None:
    async def test(store: SQLiteStore, _: Traced) -> None:
        cache = Cache(store, "replay", [])
        for key in ("key0", "key7", HOT):  # a streamed recording, a plain one, a key with two
            await hit(store, cache, key)

    traced = with_store(loop_thread, database, test)
    read = [sql for sql in traced.statements if "FROM exchanges" in sql or "FROM stream_events" in sql]
    assert len(read) >= 3, traced.statements
    checked = list(plans(database, traced.statements))
    for sql, plan in checked:
        scans = [step for step in plan if step.startswith("SCAN")]
        assert not scans, f"{sql!r} scans: {plan}"
    assert any("USING INDEX" in step for _, plan in checked for step in plan)


def test_finding_a_keys_recordings_reads_as_much_after_many_hits_of_it(loop_thread: LoopThread,
                                                                          database: Path) -> None:
    async def test(store: SQLiteStore, traced: Traced) -> None:
        cache = Cache(store, "replay", [])

        async def steps_of_one_lookup() -> int:
            before = traced.reader_steps
            assert [r.response_body for r in await store.recordings(HOT)] == [None, b'{"n": 3001}']
            return traced.reader_steps - before

        first = await steps_of_one_lookup()
        served = [await hit(store, cache, HOT) for _ in range(3)]
        # The n-th identical request gets the n-th recording; after the last, the last repeats.
        assert [r.request_body for r in served] == [b'{"input": 3000}', b'{"input": 3001}', b'{"input": 3001}']
        await asyncio.gather(*(store.record_exchange(hit_row(HOT)) for _ in range(2_000)))
        after = await steps_of_one_lookup()
        assert len(await store.recordings(HOT)) == 2
        assert after <= first * 1.5, f"{first} steps before the hits, {after} after 2,000 hits of the key"

    with_store(loop_thread, database, test)
