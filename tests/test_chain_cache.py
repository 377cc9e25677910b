"""Chains kept in memory must never outlive an erasure, wherever it was made."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.genai import _interactions as gi

from proxy.cli.main import main
from proxy.config import Config
from proxy.http.app import start
from proxy.model import COMPLETED, IN_PROGRESS, MODEL, USER, Interaction, Part, Turn
from proxy.store.chain_cache import ChainCache, last_of_threads, warm
from proxy.store.rows import dumps, turns_json

from .conftest import Recall
from .support.fake_gemini import FakeGemini
from .support.loop_thread import LoopThread
from .test_gemini_interactions import MODEL as GEMINI_MODEL
from .test_gemini_interactions import client, user_turns_sent


def node(node_id: str, parent: str | None) -> Interaction:
    return Interaction(id=node_id, owner="o", upstream="u", front="f", mode="emulate", model="m", status=COMPLETED,
                       input=[Turn(USER, [Part("text", text=node_id)])], output=[Turn(MODEL, [])],
                       created=0.0, updated=0.0, parent_id=parent)


def test_a_new_node_extends_its_parents_chain_in_the_same_version() -> None:
    cache = ChainCache()
    root, child = node("a", None), node("b", "a")
    cache.extend(root, version=1)
    cache.extend(child, version=1)
    assert [n.id for n in cache.get("b", 1) or []] == ["a", "b"]
    assert cache.get("b", 2) is None  # another process wrote to the file: ask the database again
    cache.extend(node("c", "b"), version=2)  # the parent's entry is of another version: not extended
    assert cache.get("c", 2) is None


def test_the_cache_is_bounded_by_the_references_it_holds() -> None:
    cache = ChainCache(max_references=5)
    chain = [node(str(n), str(n - 1) if n else None) for n in range(3)]
    cache.put("2", 1, chain)
    cache.put("x", 1, chain[:2])
    cache.put("y", 1, chain[:2])  # 7 references: the oldest entry goes
    assert cache.get("2", 1) is None and cache.get("y", 1) is not None


def test_a_chain_whose_last_node_still_runs_is_not_kept() -> None:
    # Kept, it would go on answering "in progress" after the turn ended elsewhere.
    cache = ChainCache()
    running = node("b", "a")
    running.status = IN_PROGRESS
    cache.put("b", 1, [node("a", None), running])
    assert cache.get("b", 1) is None


def test_continuing_a_cached_node_erased_by_another_process_is_not_found(recall: Recall,
                                                                          fake_gemini: FakeGemini) -> None:
    c = client(recall)
    first = c.interactions.create(model=GEMINI_MODEL, input="First.")
    second = c.interactions.create(model=GEMINI_MODEL, input="Second.", previous_interaction_id=first.id)
    result = CliRunner().invoke(main, ["rm", second.id, "--db", str(recall.db_path)])
    assert result.exit_code == 0, result.output
    with pytest.raises(gi.NotFoundError):
        c.interactions.create(model=GEMINI_MODEL, input="Third.", previous_interaction_id=second.id)
    assert user_turns_sent(fake_gemini) == ["First.", "Second."]


def test_a_chain_read_in_the_background_never_outlives_a_clear_nor_replaces_a_turns() -> None:
    cache = ChainCache()
    chain = [node("a", None), node("b", "a")]
    before = cache.generation
    cache.clear()  # an erasure while the warm was reading: what it read may hold the erased node
    assert cache.offer("b", 1, before, chain) is False and cache.get("b", 1) is None
    turns = [node("a", None), node("b", "a")]
    cache.put("b", 1, turns)  # a turn read it meanwhile: its entry stays
    assert cache.offer("b", 1, cache.generation, chain) is False
    assert (cache.get("b", 1) or [None])[0] is turns[0]
    assert cache.offer("c", 1, cache.generation, [node("c", None)]) is True and cache.get("c", 1) is not None


def row(node_id: str, text: str) -> tuple[object, ...]:
    """A stored node's row, as the stores' chain reads give it (rows.INTERACTION_COLUMNS)."""
    turns = turns_json([Turn(USER, [Part("text", text=text)])])
    return (node_id, "o", "u", "f", "emulate", "m", COMPLETED, None, node_id, 0, turns, "[]", "{}",
            dumps({"input_tokens": 1}), None, None, 0.0, 0.0, None)


def test_the_start_warms_the_newest_threads_last_nodes_within_its_bytes() -> None:
    # (id, root id), newest first: thread r1's last node is n3, r2's is n2.
    assert last_of_threads([("n3", "r1"), ("n2", "r2"), ("n1", "r1"), ("n0", "r3")], 2) == ["n3", "n2"]
    chains = {"n3": [row("n3", "x" * 100)], "n2": [row("n2", "y" * 100)]}

    async def read(leaf: str) -> tuple[int, list[tuple[object, ...]]]:
        return 7, chains[leaf]

    cache = ChainCache()
    try:
        assert asyncio.run(warm(cache, ["n3", "n2"], read, max_bytes=200)) == 1  # the second would pass the bound
    finally:
        gc.unfreeze()  # the warm froze this test process's objects
    warmed = cache.get("n3", 7)
    assert warmed is not None and warmed[0].input[0].parts[0].text == "x" * 100 and warmed[0].usage.input_tokens == 1
    assert cache.get("n2", 7) is None


def test_recall_serve_settles_its_heap_before_listening_and_an_embedded_start_leaves_it(
        loop_thread: LoopThread, tmp_path: Path) -> None:
    gc.unfreeze()
    for settle in (False, True):
        runner, _ = loop_thread.run(start(Config(host="127.0.0.1", port=0), tmp_path / "recall.db", settle_heap=settle))
        try:
            # Frozen: start-up's objects are out of every later collection (none falls on a first turn).
            assert (gc.get_freeze_count() > 0) is settle
        finally:
            loop_thread.run(runner.cleanup())
            gc.unfreeze()


def test_an_erasure_by_another_process_reaches_the_next_turn(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    first = c.interactions.create(model=GEMINI_MODEL, input="Secret-Marmot-1 is my first message.")
    second = c.interactions.create(model=GEMINI_MODEL, input="Second.", previous_interaction_id=first.id)
    c.interactions.create(model=GEMINI_MODEL, input="Third.", previous_interaction_id=second.id)
    assert user_turns_sent(fake_gemini)[0] == "Secret-Marmot-1 is my first message."
    # `recall rm` runs in its own process (here: its own connection) while recall serves.
    result = CliRunner().invoke(main, ["rm", first.id, "--db", str(recall.db_path)])
    assert result.exit_code == 0, result.output
    c.interactions.create(model=GEMINI_MODEL, input="Fourth.", previous_interaction_id=second.id)
    assert user_turns_sent(fake_gemini) == ["Second.", "Fourth."]


def test_an_erasure_through_the_api_reaches_the_next_turn(recall: Recall, fake_gemini: FakeGemini) -> None:
    c = client(recall)
    first = c.interactions.create(model=GEMINI_MODEL, input="Secret-Marmot-2.")
    second = c.interactions.create(model=GEMINI_MODEL, input="Second.", previous_interaction_id=first.id)
    c.interactions.delete(first.id)
    c.interactions.create(model=GEMINI_MODEL, input="Third.", previous_interaction_id=second.id)
    assert user_turns_sent(fake_gemini) == ["Second.", "Third."]


def test_the_search_index_takes_the_start_of_a_huge_reply() -> None:
    from proxy.store.search import MAX_INDEXED_CHARS, searchable_text

    huge = [Turn(MODEL, [Part("text", text="needle " + "x" * (3 * MAX_INDEXED_CHARS)), Part("text", text="tail")])]
    text = searchable_text(huge)
    assert text is not None and text.startswith("needle ") and len(text) == MAX_INDEXED_CHARS
    assert searchable_text([Turn(USER, [Part("text", text="short"), Part("function_call", name="f", arguments={"a": 1})])]) \
        == 'short\nf {"a":1}'
