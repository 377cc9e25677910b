"""Erasing: `recall rm`, `recall purge`, retention at start, and the search index of
databases made before it existed. Erased text must be gone from the file itself."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from google.genai import _interactions as gi

from proxy.store import migrations
from proxy.store.sqlite import open_sync

from .conftest import Recall, RecallFactory
from .support.conversations import FORK_MARKER, MODEL, Conversations, cli, client, have_conversations
from .support.fake_gemini import FakeGemini

DAY = 86400


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECALL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def convs(recall: Recall) -> Conversations:
    return have_conversations(recall.url)


def user_texts_sent(fake: FakeGemini) -> list[str]:
    return ["".join(c["text"] for c in step["content"] if c["type"] == "text")
            for step in fake.last_body()["input"] if step["type"] == "user_input"]


def age(recall: Recall, interaction_id: str, days: float) -> None:
    """Make a node and its exchanges look `days` old (what time would do)."""
    with sqlite3.connect(recall.db_path) as db:
        db.execute("UPDATE interactions SET created_at = created_at - ?, updated_at = updated_at - ? WHERE id = ?",
                   (days * DAY, days * DAY, interaction_id))
        db.execute("UPDATE exchanges SET created_at = created_at - ? WHERE interaction_id = ?",
                   (days * DAY, interaction_id))


def test_rm_erases_one_node_from_the_file_and_its_follow_up_is_404(recall: Recall, convs: Conversations,
                                                                   fake_gemini: FakeGemini) -> None:
    assert FORK_MARKER.encode() in recall.db_bytes() and FORK_MARKER.lower().encode() in recall.db_bytes()
    result = cli(recall.db_path, "rm", convs.fork.id)
    assert result.exit_code == 0
    assert result.stdout.startswith("erased 1 interaction(s), 1 exchange(s); 0 thread(s) removed entirely; freed ")
    data = recall.db_bytes()
    assert FORK_MARKER.encode() not in data and FORK_MARKER.lower().encode() not in data
    app = client(recall.base("gemini"))
    with pytest.raises(gi.NotFoundError) as caught:
        app.interactions.create(model=MODEL, input="and?", previous_interaction_id=convs.fork.id)
    assert convs.fork.id in caught.value.body["error"]["message"]
    with pytest.raises(gi.NotFoundError):
        app.interactions.get(convs.fork.id)
    # The rest of the thread is untouched.
    follow_up = app.interactions.create(model=MODEL, input="Still there?", previous_interaction_id=convs.name_question.id)
    assert user_texts_sent(fake_gemini) == [convs.inputs[convs.first.id], "What is my name?", "Still there?"]
    assert follow_up.status == "completed"
    again = cli(recall.db_path, "rm", convs.fork.id)
    assert again.exit_code == 1 and f"no interaction '{convs.fork.id}'" in again.stderr


def test_rm_of_a_parent_keeps_its_children_working(recall: Recall, convs: Conversations,
                                                    fake_gemini: FakeGemini) -> None:
    removed = json.loads(cli(recall.db_path, "rm", convs.first.id, "--json").stdout)
    assert (removed["interactions"], removed["exchanges"], removed["threads"]) == (1, 1, 0)
    assert b"cricket" not in recall.db_bytes()
    app = client(recall.base("gemini"))
    turn = app.interactions.create(model=MODEL, input="Go on.", previous_interaction_id=convs.name_question.id)
    assert turn.status == "completed"
    assert user_texts_sent(fake_gemini) == ["What is my name?", "Go on."]
    tree = cli(recall.db_path, "tree", convs.name_question.id).stdout.splitlines()
    assert tree[0] == f"{convs.first.id}  [deleted]"


def test_rm_thread_removes_every_node(recall: Recall, convs: Conversations) -> None:
    result = cli(recall.db_path, "rm", "--thread", convs.name_question.id)
    assert result.exit_code == 0
    assert result.stdout.startswith("erased 3 interaction(s), 3 exchange(s); 1 thread(s) removed entirely")
    data = recall.db_bytes()
    for word in (b"Karthik", b"karthik", b"cricket", FORK_MARKER.encode()):
        assert word not in data
    assert recall.query("SELECT count(*) FROM interactions WHERE root_id = ?", convs.first.id) == [(0,)]
    threads = json.loads(cli(recall.db_path, "ls", "--json").stdout)
    assert [t["thread_id"] for t in threads] == [convs.generate.id]
    app = client(recall.base("gemini"))
    for gone in (convs.first, convs.name_question, convs.fork):
        with pytest.raises(gi.NotFoundError):
            app.interactions.create(model=MODEL, input="and?", previous_interaction_id=gone.id)
    assert cli(recall.db_path, "rm", "v1_unknown").exit_code == 1


def test_purge_erases_what_is_older_and_frees_space(recall: Recall, convs: Conversations,
                                                     fake_gemini: FakeGemini) -> None:
    age(recall, convs.first.id, 40)
    age(recall, convs.generate.id, 40)
    size_before = len(recall.db_bytes())
    dry = cli(recall.db_path, "purge", "--older-than", "30d", "--dry-run")
    assert dry.exit_code == 0
    listed, partly, summary = dry.stdout.splitlines()
    # The threads it would touch, oldest first: gemgen's goes whole; thread A loses its old start.
    assert listed.startswith(f"would erase {convs.generate.id}: whole thread") and "okapi" in listed
    assert partly.startswith(f"would erase {convs.first.id}: 1 older interaction(s)")
    assert summary.startswith("dry run, nothing changed: would have erased 2 interaction(s), 2 exchange(s);"
                              " 1 thread(s) removed entirely")
    preview = json.loads(cli(recall.db_path, "purge", "--older-than", "30d", "--dry-run", "--json").stdout)
    assert [(t["thread_id"], t["interactions"], t["whole_thread"]) for t in preview["would_touch"]] == [
        (convs.generate.id, 1, True), (convs.first.id, 1, False)]
    assert b"cricket" in recall.db_bytes() and b"okapi" in recall.db_bytes()

    result = json.loads(cli(recall.db_path, "purge", "--older-than", "30d", "--json").stdout)
    assert (result["interactions"], result["exchanges"], result["threads"]) == (2, 2, 1)
    assert result["dry_run"] is False and result["freed_bytes"] > 0
    data = recall.db_bytes()
    assert len(data) < size_before
    for word in (b"cricket", b"okapi", b"Zanzibar", b"zanzibar"):
        assert word not in data
    # The old start of thread A is a tombstone; its newer turns still hold their text.
    assert b"What is my name?" in data
    app = client(recall.base("gemini"))
    with pytest.raises(gi.NotFoundError):
        app.interactions.create(model=MODEL, input="and?", previous_interaction_id=convs.first.id)
    gemgen = client(recall.base("gemgen"))
    with pytest.raises(gi.NotFoundError):
        gemgen.interactions.create(model=MODEL, input="and?", previous_interaction_id=convs.generate.id)
    app.interactions.create(model=MODEL, input="Who am I?", previous_interaction_id=convs.name_question.id)
    assert user_texts_sent(fake_gemini) == ["What is my name?", "Who am I?"]
    threads = json.loads(cli(recall.db_path, "ls", "--json").stdout)
    assert [t["thread_id"] for t in threads] == [convs.first.id]
    assert threads[0]["interactions"] == 3  # name_question, fork and the new turn
    nothing = cli(recall.db_path, "purge", "--older-than", "30d")
    assert "erased 0 interaction(s), 0 exchange(s); 0 thread(s) removed entirely" in nothing.stdout


def test_purge_needs_a_valid_age(recall: Recall, convs: Conversations) -> None:
    for args in (["purge"], ["purge", "--older-than", "soon"], ["purge", "--older-than", "30"]):
        result = cli(recall.db_path, *args)
        assert result.exit_code == 2
    assert "not a duration" in cli(recall.db_path, "purge", "--older-than", "30").stderr
    ambiguous = cli(recall.db_path, "purge", "--older-than", "1m")  # a minute or a month: refused, not guessed
    assert ambiguous.exit_code == 2 and "ambiguous (minutes or months?)" in ambiguous.stderr
    assert "1min" in ambiguous.stderr and "30d" in ambiguous.stderr
    assert recall.query("SELECT count(*) FROM interactions WHERE deleted_at IS NULL") == [(4,)]


def test_retention_purges_at_start(recall: Recall, convs: Conversations, recall_factory: RecallFactory,
                                   fake_gemini: FakeGemini) -> None:
    from proxy.config import Upstream

    age(recall, convs.first.id, 10)
    restarted = recall_factory({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")},
                               retention_days=7)
    assert restarted.db_path == recall.db_path
    assert recall.query("SELECT status FROM interactions WHERE id = ?", convs.first.id) == [("deleted",)]
    assert b"cricket" not in recall.db_bytes()
    assert recall.query("SELECT count(*) FROM interactions WHERE deleted_at IS NULL") == [(3,)]
    app = client(restarted.base("gemini"))
    with pytest.raises(gi.NotFoundError):
        app.interactions.create(model=MODEL, input="and?", previous_interaction_id=convs.first.id)


def test_search_index_is_built_for_rows_written_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database from before the search index (and before incremental vacuum)."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        migrations.migrate(old)
    now = time.time()
    turns = '[{"role": "user", "parts": [{"kind": "text", "text": "The Quetzalcoatlus flew."}]}]'
    old.execute(
        "INSERT INTO interactions (id, owner, upstream, front, mode, model, status, root_id, input, output,"
        " created_at, updated_at) VALUES ('v1_old', 'k_1', 'gemini', 'gemini-interactions', 'emulate', 'm',"
        " 'completed', 'v1_old', ?, '[]', ?, ?)",
        (turns, now, now),
    )
    old.close()

    hits = json.loads(cli(path, "search", "quetzalcoatlus", "--json").stdout)
    assert [h["interaction_id"] for h in hits] == ["v1_old"]
    assert [t["title"] for t in json.loads(cli(path, "ls", "--json").stdout)] == ["The Quetzalcoatlus flew."]
    with closing(open_sync(path)) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone() == (0,)
        assert db.execute("SELECT text FROM turns").fetchall() == [("The Quetzalcoatlus flew.",)]
    # The first erase converts the file to incremental vacuum and leaves no trace.
    assert cli(path, "rm", "v1_old").exit_code == 0
    with closing(open_sync(path)) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    data = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    assert b"Quetzalcoatlus" not in data and b"quetzalcoatlus" not in data


def test_retention_keeps_purging_while_the_server_runs(tmp_path: Path, loop_thread) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from proxy.model import TEXT, USER, Interaction, Part, Turn
    from proxy.store import SQLiteStore
    from proxy.store.retention import Retention

    def node(node_id: str, created: float) -> Interaction:
        return Interaction(id=node_id, owner="k_1", upstream="gemini", front="gemini-interactions", mode="emulate",
                           model="m", status="completed", input=[Turn(USER, [Part(TEXT, text=f"Said in {node_id}")])],
                           output=[], created=created, updated=created)

    async def scenario() -> tuple[bool, bool]:
        store = await SQLiteStore.open(tmp_path / "retained.db")
        retention = Retention(store, days=1, every_s=0.05)
        await retention.start()
        await store.save_interaction(node("v1_stale", time.time() - 2 * DAY))
        await store.save_interaction(node("v1_fresh", time.time()))
        for _ in range(100):  # the next round erases the stale one
            if await store.get_interaction("v1_stale") is None:
                break
            await asyncio.sleep(0.02)
        kept = (await store.get_interaction("v1_stale") is not None, await store.get_interaction("v1_fresh") is not None)
        await retention.stop()
        await store.close()
        return kept

    assert loop_thread.run(scenario()) == (False, True)
    data = b"".join(p.read_bytes() for p in tmp_path.glob("retained.db*"))
    assert b"Said in v1_stale" not in data and b"Said in v1_fresh" in data


def test_an_erase_behind_a_reader_says_the_wal_still_holds_pages(recall: Recall, convs: Conversations) -> None:
    from proxy.store.audit_db import AuditDB
    from proxy.store.records import WalBusy

    reader = sqlite3.connect(recall.db_path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM interactions").fetchall()  # holds a snapshot in the WAL
    audit = AuditDB(open_sync(recall.db_path, busy_timeout_s=0.1), recall.db_path)
    try:
        with pytest.raises(WalBusy) as caught:
            audit.rm(convs.fork.id)
        assert caught.value.removed.interactions == 1  # committed all the same
        reader.rollback()
        reader.close()
        assert cli(recall.db_path, "rm", convs.fork.id).exit_code == 1  # already erased
        assert cli(recall.db_path, "purge", "--older-than", "1d").exit_code == 0  # truncates the WAL now
    finally:
        audit.close()
    assert FORK_MARKER.encode() not in recall.db_bytes()
