"""The Store protocol's contract, held against every backend by one parametrised fixture:
SQLite on a file and PostgreSQL on a real server (tests/support/postgres.py).

Turns and chains, stream events, a delete that always wins, purges, conversations,
recordings and replay positions, run leases and cancels across instances, and (PostgreSQL)
a database that goes away and comes back.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.model import COMPLETED, FAILED, IN_PROGRESS, MODEL, TEXT, USER, Interaction, Part, Turn
from proxy.store.locations import open_audit
from proxy.store.protocol import Store
from proxy.store.records import Conversation, Exchange
from proxy.store.writer import StoreUnavailable

from .support.loop_thread import LoopThread
from .support.stores import Backend

MARKER = "Quillfenwick"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgres":
        pytest.importorskip("asyncpg")
        return Backend("postgres", request.getfixturevalue("pg_url"))
    return Backend("sqlite", tmp_path / "recall.db")


def node(node_id: str, *, parent: Interaction | None = None, status: str = COMPLETED, text: str = "hi",
         created: float | None = None, run_id: str | None = None) -> Interaction:
    now = time.time() if created is None else created
    return Interaction(id=node_id, owner="owner-a", upstream="gemini", front="gemini-interactions", mode="emulate",
                       model="m", status=status, input=[Turn(USER, [Part(TEXT, text=f"ask {text}")])],
                       output=[] if status == IN_PROGRESS else [Turn(MODEL, [Part(TEXT, text=f"say {text}")])],
                       created=now, updated=now, parent_id=parent.id if parent else None, run_id=run_id)


def exchange(interaction_id: str | None = None, *, key: str | None = None, body: bytes = b"{}",
             created: float | None = None) -> Exchange:
    return Exchange(upstream="gemini", method="POST", path="/v1beta/interactions",
                    created=time.time() if created is None else created, status=200, interaction_id=interaction_id,
                    owner="owner-a", request_body=b'{"q": 1}', response_body=body, cache_key=key)


def run_with(loop_thread: LoopThread, backend: Backend, test: Callable[[Store], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        store = await backend.open()
        try:
            return await test(store)
        finally:
            await store.close()

    return loop_thread.run(run())


def test_a_chain_is_its_nodes_from_the_root_and_each_node_reads_back(loop_thread: LoopThread,
                                                                      backend: Backend) -> None:
    async def test(store: Store) -> None:
        root = node("v1_root", text="one")
        child = node("v1_child", parent=root, text="two", run_id="trun_child")
        leaf = node("v1_leaf", parent=child, text="three")
        for it in (root, child, leaf):
            assert await store.save_interaction(it, exchange()) is True
        assert leaf.root_id == "v1_root"
        assert [it.id for it in await store.chain("v1_leaf")] == ["v1_root", "v1_child", "v1_leaf"]
        got = await store.get_interaction("v1_child")
        assert got is not None and got.output[0].parts[0].text == "say two" and got.parent_id == "v1_root"
        by_run = await store.get_interaction_by_run("trun_child")
        assert by_run is not None and by_run.id == "v1_child"
        assert await store.get_interaction("v1_nothing") is None
        assert await store.chain("v1_nothing") == []
        assert await backend.query("SELECT depth FROM interactions WHERE id = ?", "v1_leaf") == [(2,)]
        assert await backend.query("SELECT count(*) FROM exchanges WHERE interaction_id = ?", "v1_leaf") == [(1,)]

    run_with(loop_thread, backend, test)


def test_a_start_warms_the_chains_of_the_most_recently_active_threads(loop_thread: LoopThread,
                                                                     backend: Backend) -> None:
    async def test() -> None:
        writer = await backend.open()
        old = node("v1_old", created=1.0)
        root = node("v1_root", created=2.0)
        mid, gone = node("v1_mid", parent=root), node("v1_gone")
        leaf = node("v1_leaf", parent=mid)
        for it in (old, root, mid, gone, leaf):
            await writer.save_interaction(it)
        await writer.delete_interaction("v1_gone")
        await writer.close()
        store = await backend.open(warm_chains=1)
        try:
            warming = store.warming  # type: ignore[attr-defined]  # both stores have it; the protocol does not
            await warming
            chains = store._chains  # type: ignore[attr-defined]
            # One thread (the bound): the newest node's, whole, erased nodes skipped; not the older thread's.
            assert list(chains._entries) == ["v1_leaf"]
            assert [it.id for it in await store.chain("v1_leaf")] == ["v1_root", "v1_mid", "v1_leaf"]
            assert (await store.chain("v1_leaf"))[0].output[0].parts[0].text == "say hi"
            await store.delete_interaction("v1_mid")  # an erasure still reaches a warmed chain
            assert [it.id for it in await store.chain("v1_leaf")] == ["v1_root", "v1_leaf"]
        finally:
            await store.close()
            gc.unfreeze()  # the warm froze this test process's objects

    loop_thread.run(test())


def test_stream_events_resume_after_a_seq_or_an_event_id(loop_thread: LoopThread, backend: Backend) -> None:
    async def test(store: Store) -> None:
        await store.save_interaction(node("v1_s", status=IN_PROGRESS))
        await store.append_frames("v1_s", [(1, "e1", 0.0, b"one"), (2, "e2", 5.5, b"two")])
        await store.append_frames("v1_s", [(3, None, 9.0, b"three")])
        assert await store.stream_frames("v1_s") == [(1, b"one"), (2, b"two"), (3, b"three")]
        assert await store.stream_frames("v1_s", after_seq=2) == [(3, b"three")]
        assert await store.event_seq("v1_s", "e2") == 2
        assert await store.event_seq("v1_s", "e9") is None
        assert await store.stream_frames_timed("v1_s") == [(0.0, b"one"), (5.5, b"two"), (9.0, b"three")]

    run_with(loop_thread, backend, test)


def test_a_nodes_end_commits_with_its_last_events(loop_thread: LoopThread, backend: Backend) -> None:
    """Whoever reads an ended node finds its whole stream (a follower on another instance ends
    its stream when the node ends); an erased node takes its last events with it too."""
    async def test(store: Store) -> None:
        running = node("v1_end", status=IN_PROGRESS)
        await store.save_interaction(running)
        await store.append_frames("v1_end", [(1, "e1", 0.0, b"one")])
        running.status, running.output = COMPLETED, [Turn(MODEL, [Part(TEXT, text="done")])]
        assert await store.save_interaction(running, exchange(), [(2, "e2", 1.0, b"two"), (3, "e3", 2.0, b"end")])
        assert await store.stream_frames("v1_end") == [(1, b"one"), (2, b"two"), (3, b"end")]
        erased = node("v1_gone", status=IN_PROGRESS)
        await store.save_interaction(erased)
        await store.delete_interaction("v1_gone")
        erased.status = COMPLETED
        assert await store.save_interaction(erased, None, [(1, "e1", 0.0, MARKER.encode())]) is False
        assert await store.stream_frames("v1_gone") == []

    run_with(loop_thread, backend, test)


def test_a_turn_is_searchable_once_it_ends(loop_thread: LoopThread, backend: Backend) -> None:
    """A turn is saved in progress (before its provider is asked), then ended: it is indexed for
    search once, when it ends."""
    def hits() -> int:
        audit = open_audit(backend.location)
        try:
            return len(audit.search(MARKER))
        finally:
            audit.close()

    async def test(store: Store) -> None:
        running = node("v1_searched", status=IN_PROGRESS, text=MARKER)
        await store.save_interaction(running)
        assert await asyncio.to_thread(hits) == 0
        running.status, running.output = COMPLETED, [Turn(MODEL, [Part(TEXT, text="an answer")])]
        await store.save_interaction(running)
        assert await asyncio.to_thread(hits) == 1

    run_with(loop_thread, backend, test)


def test_a_delete_always_wins_over_the_writes_of_a_run(loop_thread: LoopThread, backend: Backend) -> None:
    async def test(store: Store) -> None:
        parent = node("v1_p")
        await store.save_interaction(parent)
        running = node("v1_run", parent=parent, status=IN_PROGRESS, text=MARKER)
        child = node("v1_after", parent=running)
        assert await store.save_interaction(running) is True
        assert await store.delete_interaction("v1_run") is True
        assert await store.delete_interaction("v1_run") is False  # already erased
        running.status, running.output = COMPLETED, [Turn(MODEL, [Part(TEXT, text=MARKER)])]
        assert await store.save_interaction(running, exchange(body=MARKER.encode())) is False
        await store.record_exchange(exchange("v1_run", body=MARKER.encode()))
        await store.append_frames("v1_run", [(1, "e1", 0.0, MARKER.encode())])
        await store.save_interaction(child)
        assert await store.get_interaction("v1_run") is None
        assert [it.id for it in await store.chain("v1_after")] == ["v1_p", "v1_after"]
        rows = await backend.query("SELECT status, input, output, request, deleted_at IS NOT NULL FROM interactions"
                                   " WHERE id = ?", "v1_run")
        assert rows == [("deleted", None, None, None, True)]
        for table in ("exchanges", "stream_events"):
            assert await backend.query(f"SELECT count(*) FROM {table} WHERE interaction_id = ?", "v1_run") == [(0,)]

    run_with(loop_thread, backend, test)


def test_an_unstarted_turn_is_discarded_and_a_failed_save_is_recorded(loop_thread: LoopThread,
                                                                      backend: Backend) -> None:
    async def test(store: Store) -> None:
        await store.save_interaction(node("v1_refused", status=IN_PROGRESS))
        await store.discard_unstarted("v1_refused")
        assert await backend.query("SELECT count(*) FROM interactions WHERE id = ?", "v1_refused") == [(0,)]
        await store.save_interaction(node("v1_unsaved", status=IN_PROGRESS))
        await store.fail_unsaved("v1_unsaved", "the disk was full")
        failed = await store.get_interaction("v1_unsaved")
        assert failed is not None and (failed.status, failed.error) == (FAILED, "the disk was full")

    run_with(loop_thread, backend, test)


def test_a_purge_erases_what_is_older_and_drops_dead_threads(loop_thread: LoopThread, backend: Backend) -> None:
    async def test(store: Store) -> None:
        old = time.time() - 86400
        dead_root = node("v1_dead", created=old)
        kept_root = node("v1_oldroot", created=old)
        newer = node("v1_newer", parent=kept_root)
        for it in (dead_root, kept_root, newer):
            await store.save_interaction(it, exchange(created=it.created))
        removed = await store.purge_older_than(time.time() - 3600)
        assert (removed.interactions, removed.threads) == (2, 1)
        assert removed.exchanges == 2
        assert await backend.query("SELECT id, status FROM interactions ORDER BY id") == [
            ("v1_newer", COMPLETED), ("v1_oldroot", "deleted")]
        assert [it.id for it in await store.chain("v1_newer")] == ["v1_newer"]

    run_with(loop_thread, backend, test)


def test_conversations_keep_their_items_in_order(loop_thread: LoopThread, backend: Backend) -> None:
    async def test(store: Store) -> None:
        conversation = Conversation(id="conv_1", owner="owner-a", upstream="openai", created=time.time(),
                                    metadata={"topic": "x"})
        await store.create_conversation(conversation, [("msg_1", {"n": 1})])
        await store.append_conversation_items("conv_1", [("msg_2", {"n": 2}), ("msg_3", {"n": 3})])
        assert [item["n"] for item in await store.conversation_items("conv_1")] == [1, 2, 3]
        assert await store.delete_conversation_item("conv_1", "msg_2") is True
        assert await store.delete_conversation_item("conv_1", "msg_2") is False
        await store.update_conversation("conv_1", {"topic": "y"})
        got = await store.get_conversation("conv_1")
        assert got is not None and got.metadata == {"topic": "y"} and got.owner == "owner-a"
        await store.delete_conversation("conv_1")
        assert await store.get_conversation("conv_1") is None
        await store.append_conversation_items("conv_1", [("msg_4", {"n": 4})])  # deleted: nothing kept
        assert await store.conversation_items("conv_1") == []

    run_with(loop_thread, backend, test)


def test_recordings_replay_in_order_and_a_cassette_load_replaces(loop_thread: LoopThread, backend: Backend) -> None:
    async def test(store: Store) -> None:
        for body in (b"first", b"second"):
            await store.record_exchange(exchange(key="k1", body=body))
        assert [r.response_body for r in await store.recordings("k1")] == [b"first", b"second"]
        assert [await store.next_replay("k1") for _ in range(3)] == [0, 1, 2]
        assert await store.next_replay("k2") == 0
        assert [r.cache_key for r in await store.recent_requests("gemini", 5)] == ["k1", "k1"]
        rows: list[tuple[str, dict[str, Any]]] = [
            ("interaction", {"id": "v1_rec", "upstream": "gemini", "front": "gemini-interactions", "mode": "emulate",
                             "model": "m", "status": COMPLETED, "parent_id": None, "root_id": "v1_rec", "depth": 0,
                             "input": '[{"role":"user","parts":[{"kind":"text","text":"' + MARKER + '"}]}]',
                             "output": "[]", "request": "{}", "usage": None, "input_tokens": None,
                             "output_tokens": None, "error": None, "provider_id": None, "created_at": 1.0,
                             "updated_at": 1.0}),
            ("exchange", {"interaction_id": "v1_rec", "upstream": "gemini", "method": "POST", "path": "/x",
                          "status": 200, "stored": 1, "created_at": 2.0, "cache_key": "k3",
                          "response_body": b"recorded"}),
            ("event", {"interaction_id": "v1_rec", "seq": 1, "event_id": None, "at_ms": 0, "frame": b"data: 1\n\n"}),
        ]
        assert await store.load_recordings(rows, "recorded") == {"interaction": 1, "exchange": 1, "event": 1}
        assert await store.load_recordings(rows, "recorded") == {"interaction": 1, "exchange": 1, "event": 1}
        assert [r.response_body for r in await store.recordings("k3")] == [b"recorded"]
        assert await store.stream_frames("v1_rec") == [(1, b"data: 1\n\n")]
        loaded = await store.get_interaction("v1_rec")
        assert loaded is not None and loaded.owner == "recorded"

    run_with(loop_thread, backend, test)



def test_a_keys_recordings_are_found_without_reading_the_hits_served_under_it(loop_thread: LoopThread,
                                                                              backend: Backend) -> None:
    """Every replay hit leaves a metadata-only row under its key: the lookup of a key's
    recordings goes through an index of recordings only, or it reads every earlier hit
    (PostgreSQL here, its planner's choice on analysed tables; SQLite's plans and read steps
    are tests/test_replay_plans.py's)."""
    if not backend.postgres:
        pytest.skip("SQLite's plans are held by tests/test_replay_plans.py")
    from proxy.store.postgres import RECORDINGS_OF_KEY

    async def test(store: Store) -> None:
        for body in (b"first", b"second"):
            await store.record_exchange(exchange(key="k1", body=body))
        for n in range(200):
            await store.record_exchange(exchange(key=f"other{n}"))
        await backend.execute("INSERT INTO exchanges (upstream, method, path, created_at, status, stored, cache_key,"
                              " cache) SELECT 'gemini', 'POST', '/x', 1.0, 200, false, 'k1', 'hit'"
                              " FROM generate_series(1, 5000)")
        await backend.execute("ANALYZE exchanges")
        plan = await backend.query(f"EXPLAIN SELECT id FROM exchanges WHERE {RECORDINGS_OF_KEY} ORDER BY id", "k1")
        assert "exchanges_recordings" in "\n".join(row[0] for row in plan), plan
        assert [r.response_body for r in await store.recordings("k1")] == [b"first", b"second"]

    run_with(loop_thread, backend, test)

def test_a_run_is_leased_to_its_instance_and_failed_when_its_instance_is_gone(loop_thread: LoopThread,
                                                                             backend: Backend) -> None:
    async def test() -> None:
        first = await backend.open()
        second = await backend.open()
        try:
            await first.save_interaction(node("v1_mine", status=IN_PROGRESS))
            owner = await backend.query("SELECT run_owner, lease_until > ? FROM interactions WHERE id = ?",
                                        time.time(), "v1_mine")
            assert owner == [(first.instance, True)]  # type: ignore[attr-defined]
            assert await second.running_elsewhere("v1_mine") is True
            assert await first.running_elsewhere("v1_mine") is False
            # A recall on another machine that stopped renewing: its lease ran out.
            await backend.execute("UPDATE interactions SET run_owner = 'elsewhere:1:dead', lease_until = ?"
                                  " WHERE id = ?", time.time() - 1, "v1_mine")
            assert await second.running_elsewhere("v1_mine") is False
        finally:
            await first.close()
            await second.close()
        third = await backend.open()  # fails what was left behind at start
        try:
            failed = await third.get_interaction("v1_mine")
            assert failed is not None and failed.status == FAILED and "recall stopped" in (failed.error or "")
        finally:
            await third.close()

    loop_thread.run(test())


def test_a_cancel_asked_on_one_instance_reaches_the_one_that_runs_it(loop_thread: LoopThread,
                                                                     backend: Backend) -> None:
    async def test() -> list[str]:
        owner, other = await backend.open(), await backend.open()
        heard: list[str] = []

        async def cancel(interaction_id: str) -> bool:
            heard.append(interaction_id)
            return True

        owner.watch_cancels(cancel)
        try:
            await owner.save_interaction(node("v1_long", status=IN_PROGRESS))
            asked = await other.request_cancel("v1_long")
            assert await owner.request_cancel("v1_long") is False  # its own run: cancelled in-process
            assert await other.request_cancel("v1_nothing") is False
            if not asked:
                return heard
            for _ in range(100):
                if heard:
                    break
                await asyncio.sleep(0.02)
            return heard
        finally:
            await owner.close()
            await other.close()

    heard = loop_thread.run(test())
    # SQLite: one process runs what it starts (no channel between processes on a file).
    assert heard == (["v1_long"] if backend.postgres else [])


def test_an_erase_on_one_instance_drops_the_chains_another_has_cached(loop_thread: LoopThread,
                                                                      backend: Backend) -> None:
    async def test() -> None:
        reader, eraser = await backend.open(), await backend.open()
        try:
            root = node("v1_a")
            mid = node("v1_b", parent=root)
            leaf = node("v1_c", parent=mid)
            for it in (root, mid, leaf):
                await reader.save_interaction(it)
            assert [it.id for it in await reader.chain("v1_c")] == ["v1_a", "v1_b", "v1_c"]  # cached now
            assert await eraser.delete_interaction("v1_b") is True
            chain: list[str] = []
            for _ in range(100):  # the notification arrives within milliseconds
                chain = [it.id for it in await reader.chain("v1_c")]
                if chain == ["v1_a", "v1_c"]:
                    break
                await asyncio.sleep(0.02)
            assert chain == ["v1_a", "v1_c"]
        finally:
            await reader.close()
            await eraser.close()

    loop_thread.run(test())


def test_a_database_that_goes_away_is_unavailable_until_it_is_back(loop_thread: LoopThread, backend: Backend,
                                                                   postgres_server: Any) -> None:
    """PostgreSQL only (SQLite's troubles are tests/test_store_trouble.py's): every operation
    raises StoreUnavailable while the server is stopped, and works again once it is back."""
    if not backend.postgres:
        pytest.skip("a SQLite file does not go away; see tests/test_store_trouble.py")

    async def test() -> None:
        store = await backend.open()
        try:
            await store.save_interaction(node("v1_before"))
            postgres_server.stop()
            try:
                with pytest.raises(StoreUnavailable):
                    await store.save_interaction(node("v1_away"))
                with pytest.raises(StoreUnavailable):
                    await store.get_interaction("v1_before")
            finally:
                postgres_server.restart()
            assert await store.save_interaction(node("v1_back")) is True
            assert [it.id for it in await store.chain("v1_before")] == ["v1_before"]
            assert await store.get_interaction("v1_away") is None  # nothing half-written
        finally:
            await store.close()

    loop_thread.run(test())
