"""PostgreSQL under the audit commands: `recall db copy` and `recall db migrate`, erasing
(tombstones, searchable text, NOTIFY recall_erased), the viewer's readers, `recall info`/`env`,
and one clear line for a database that cannot be used. The shared audit commands run on both
backends in tests/test_audit_cli.py (the audit_backend fixture)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from click.testing import Result

from proxy.store.migrations import MIGRATIONS
from proxy.store.pg_erase import ERASED_CHANNEL
from proxy.store.pg_migrations import PG_MIGRATIONS
from proxy.store.readers import Readers
from proxy.store.records import StoreError

from .conftest import Recall
from .support.conversations import FORK_MARKER, Conversations, cli, have_conversations
from .support.loop_thread import LoopThread
from .support.openai_sdk import MODEL, client

TABLES = ("interactions", "exchanges", "stream_events", "openai_conversations", "openai_conversation_items")
# The columns both backends hold (PostgreSQL adds searchable text and a cancel flag).
KEYS = {"interactions": "id", "exchanges": "id", "stream_events": "interaction_id, seq",
        "openai_conversations": "id", "openai_conversation_items": "conversation_id, seq"}


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RECALL_CONFIG", "RECALL_DB", "RECALL_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.chdir(tmp_path)


def sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY {KEYS[table]}").fetchall() for table in TABLES}


def pg_fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async def fetch() -> list[tuple[Any, ...]]:
        db = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await db.fetch(sql, *args)]
        finally:
            await db.close()
    return asyncio.run(fetch())


def copy(source: Any, target: Any, *more: str) -> Result:
    return cli(None, "db", "copy", "--from", str(source), "--to", str(target), *more)


def test_a_round_trip_through_postgresql_gives_identical_rows(openai_recall: Recall, pg_url: str,
                                                              tmp_path: Path) -> None:
    c = client(openai_recall, "openai")
    conversation = c.conversations.create(items=[{"type": "message", "role": "user", "content": "Hi, I am Ada."}],
                                          metadata={"topic": "names"})
    c.responses.create(model=MODEL, conversation=conversation.id, input="I like tea.")
    with c.responses.stream(model=MODEL, input="Stream me a story.", store=True) as stream:
        streamed = stream.get_final_response()
    first = c.responses.create(model=MODEL, input="Remember the word heliotrope.")
    c.responses.create(model=MODEL, input="And now?", previous_response_id=first.id)
    c.responses.delete(first.id)  # a tombstone travels too
    before = sqlite_rows(openai_recall.db_path)
    assert all(before[table] for table in TABLES), {t: len(r) for t, r in before.items()}

    there = copy(f"sqlite://{openai_recall.db_path}", pg_url)
    assert there.exit_code == 0, there.output
    counts = {table: len(rows) for table, rows in before.items()}
    assert there.stdout.strip() == (
        f"copied {counts['interactions']} interactions, {counts['exchanges']} exchanges, {counts['stream_events']}"
        f" stream events, 1 conversations ({counts['openai_conversation_items']} items) from"
        f" {openai_recall.db_path} to {pg_url.replace(':recall-test@', ':***@')}")
    assert "recall-test" not in there.output  # the password is never printed
    # PostgreSQL wrote each live node's searchable text, and none for the tombstone.
    texts = dict(pg_fetch(pg_url, "SELECT id, search_input FROM interactions"))
    assert texts[first.id] is None and "Stream me a story." in texts[streamed.id]

    back = tmp_path / "back.db"
    returned = copy(pg_url, f"sqlite://{back}")
    assert returned.exit_code == 0, returned.output
    assert sqlite_rows(back) == before  # ids, JSON text, bytes, floats: identical
    found = json.loads(cli(back, "search", "story", "--json").stdout)  # SQLite's index was made again
    assert [hit["interaction_id"] for hit in found] == [streamed.id]


def test_copy_refuses_a_target_that_holds_rows_unless_appending(recall: Recall, convs: Conversations,
                                                                 pg_url: str, tmp_path: Path) -> None:
    assert copy(recall.db_path, pg_url).exit_code == 0
    again = copy(recall.db_path, pg_url)
    assert again.exit_code == 1
    assert again.stderr.count("\n") == 1 and "already holds rows (4 interactions" in again.stderr
    assert "pass --append" in again.stderr
    appended = copy(recall.db_path, pg_url, "--append", "--json")
    assert appended.exit_code == 0, appended.output
    copied = json.loads(appended.stdout)["copied"]
    assert copied["interactions"] == 0 and copied["exchanges"] == 6  # nodes kept as they were; exchanges added
    assert pg_fetch(pg_url, "SELECT count(*) FROM interactions") == [(4,)]
    # The server's next exchange id comes after the copied ones.
    assert pg_fetch(pg_url, "SELECT max(id) FROM exchanges") == [(12,)]

    missing = copy(tmp_path / "typo.db", pg_url)
    assert missing.exit_code == 1 and f"no database at {tmp_path / 'typo.db'}" in missing.stderr
    same = copy(recall.db_path, recall.db_path)
    assert same.exit_code == 1 and "both the source and the target" in same.stderr


def test_bad_urls_are_one_line_and_exit_1(recall: Recall, convs: Conversations, postgres_server: Any,
                                          pg_url: str) -> None:
    refused = pg_url.replace(":recall-test@", ":not-the-password@")
    unreachable = f"postgresql://recall:secret@127.0.0.1:1/{pg_url.rsplit('/', 1)[1]}"
    missing_db = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    for url, why in ((refused, "refused the password"), (unreachable, "cannot reach PostgreSQL"),
                     (missing_db, "the database does not exist")):
        for result in (cli(url, "ls"), cli(url, "search", "x"), copy(recall.db_path, url), copy(url, recall.db_path),
                       cli(url, "db", "migrate")):
            assert result.exit_code == 1, (url, result.output)
            assert result.stderr.count("\n") == 1 and why in result.stderr, result.stderr
            assert "not-the-password" not in result.output and "secret" not in result.output


def test_migrate_says_what_it_applied(pg_url: str, tmp_path: Path) -> None:
    first = cli(pg_url, "db", "migrate")
    assert first.exit_code == 0, first.output
    names = [name for name, _ in PG_MIGRATIONS]
    assert names[:2] == ["m001_schema", "m002_trigram_search"]
    assert f"applied {', '.join(names)}; schema version {len(names)}" in first.stdout
    assert "recall-test" not in first.stdout
    again = json.loads(cli(pg_url, "db", "migrate", "--json").stdout)
    assert again["applied"] == [] and again["version"] == len(names)
    fresh = tmp_path / "new.db"
    made = json.loads(cli(fresh, "db", "migrate", "--json").stdout)
    assert made["applied"][0] == "m001_interactions_and_exchanges"
    assert made["version"] == len(made["applied"]) == len(MIGRATIONS)
    assert json.loads(cli(fresh, "db", "migrate", "--json").stdout)["applied"] == []


def _listen(url: str, loop_thread: LoopThread) -> tuple[list[str], Any]:
    heard: list[str] = []

    async def listen() -> Any:
        db = await asyncpg.connect(url)
        await db.add_listener(ERASED_CHANNEL, lambda *args: heard.append(args[-1]))
        return db
    return heard, loop_thread.run(listen())


def _wait_for(heard: list[str], count: int, loop_thread: LoopThread) -> None:
    async def wait() -> None:
        for _ in range(200):
            if len(heard) >= count:
                return
            await asyncio.sleep(0.01)
    loop_thread.run(wait())


def test_rm_and_purge_on_postgresql_erase_content_and_tell_other_instances(
        recall: Recall, convs: Conversations, postgres_server: Any, loop_thread: LoopThread) -> None:
    url = postgres_server.new_database()
    assert copy(recall.db_path, url).exit_code == 0
    heard, listener = _listen(url, loop_thread)
    try:
        assert cli(url, "search", FORK_MARKER, "--json").stdout.count(convs.fork.id) == 1
        result = cli(url, "rm", convs.fork.id)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("erased 1 interaction(s), 1 exchange(s); 0 thread(s) removed entirely")
        _wait_for(heard, 1, loop_thread)
        assert heard == [convs.fork.id]
        (row,) = pg_fetch(url, "SELECT status, input, output, request, search_input, search_output, deleted_at"
                               " FROM interactions WHERE id = $1", convs.fork.id)
        assert row[0] == "deleted" and row[1:6] == (None,) * 5 and row[6] is not None
        assert pg_fetch(url, "SELECT count(*) FROM exchanges WHERE interaction_id = $1", convs.fork.id) == [(0,)]
        assert json.loads(cli(url, "search", FORK_MARKER, "--json").stdout) == []
        assert cli(url, "rm", convs.fork.id).exit_code == 1  # already erased

        dry = cli(url, "purge", "--older-than", "0s", "--dry-run")
        assert dry.exit_code == 0 and dry.stdout.splitlines()[-1].startswith("dry run, nothing changed")
        assert pg_fetch(url, "SELECT count(*) FROM interactions WHERE deleted_at IS NULL") == [(3,)]
        purged = json.loads(cli(url, "purge", "--older-than", "0s", "--json").stdout)
        assert (purged["interactions"], purged["threads"]) == (3, 2)
        _wait_for(heard, 2, loop_thread)
        assert heard[1:] and set(heard[1:]) == {"*"}  # each step of a purge says: flush everything
        assert pg_fetch(url, "SELECT count(*) FROM interactions") == [(0,)]
        assert json.loads(cli(url, "ls", "--json").stdout) == []
    finally:
        loop_thread.run(listener.close())


def test_the_same_purge_gives_the_same_answers_on_both_backends(recall: Recall, convs: Conversations,
                                                                 pg_url: str) -> None:
    with sqlite3.connect(recall.db_path) as db:  # the first turns look 40 days old
        for turn in (convs.first, convs.generate):
            db.execute("UPDATE interactions SET created_at = created_at - 3456000, updated_at = updated_at - 3456000"
                       " WHERE id = ?", (turn.id,))
            db.execute("UPDATE exchanges SET created_at = created_at - 3456000 WHERE interaction_id = ?", (turn.id,))
    assert copy(recall.db_path, pg_url).exit_code == 0
    for args in (["purge", "--older-than", "30d", "--dry-run"], ["purge", "--older-than", "30d", "--json"],
                 ["ls", "--json"], ["rm", "--thread", convs.name_question.id, "--json"], ["ls", "--json"]):
        on_sqlite, on_postgres = cli(recall.db_path, *args), cli(pg_url, *args)
        assert on_sqlite.exit_code == on_postgres.exit_code == 0, on_postgres.output
        if "--json" in args and args[0] in ("purge", "rm"):  # what was freed differs by backend
            for record in (json.loads(on_sqlite.stdout), json.loads(on_postgres.stdout)):
                record.pop("freed_bytes", None)
                record.pop("before", None)
            assert json.loads(on_sqlite.stdout).keys() == json.loads(on_postgres.stdout).keys()
        else:
            assert on_postgres.stdout == on_sqlite.stdout, args


def test_the_viewers_readers_read_postgresql_and_never_write(recall: Recall, convs: Conversations, pg_url: str,
                                                            loop_thread: LoopThread) -> None:
    assert copy(recall.db_path, pg_url).exit_code == 0

    async def read() -> tuple[Any, ...]:
        on_postgres, on_sqlite = await Readers.open(pg_url), await Readers.open(recall.db_path)
        try:
            threads = await on_postgres.run(lambda audit: audit.threads())
            expected = await on_sqlite.run(lambda audit: audit.threads())
            nodes = await on_postgres.run(lambda audit: audit.thread(convs.first.id))
            try:
                await on_postgres.run(lambda audit: audit.rm(convs.first.id))
                refused = ""
            except StoreError as exc:
                refused = str(exc)
            return on_postgres.location, threads, expected, nodes, refused
        finally:
            await on_postgres.close()
            await on_sqlite.close()

    location, threads, expected, nodes, refused = loop_thread.run(read())
    assert location == pg_url.replace(":recall-test@", ":***@")
    assert threads == expected
    assert [n.interaction.id for n in nodes] == [convs.first.id, convs.name_question.id, convs.fork.id]
    assert "read-only transaction" in refused
    assert pg_fetch(pg_url, "SELECT count(*) FROM interactions WHERE deleted_at IS NULL") == [(4,)]


def test_info_and_env_name_the_backend_without_the_password(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECALL_DB_URL", pg_url)
    hidden = pg_url.replace(":recall-test@", ":***@")
    info = json.loads(cli(None, "info", "--json").stdout)
    assert info["database"] == {"backend": "postgresql", "url": hidden, "why": "RECALL_DB_URL"}
    text = cli(None, "info").stdout
    assert f"database:  PostgreSQL at {hidden} (RECALL_DB_URL)" in text and "recall-test" not in text
    env = cli(None, "env")
    assert f"# recall keeps its records in PostgreSQL at {hidden}" in env.stdout and "recall-test" not in env.stdout
    assert json.loads(cli(None, "env", "--json").stdout)["database"] == {"backend": "postgresql", "location": hidden}
    # The audit commands follow RECALL_DB_URL with no --db.
    assert cli(None, "db", "migrate").exit_code == 0
    assert json.loads(cli(None, "ls", "--json").stdout) == []
    monkeypatch.setenv("RECALL_DB_URL", "mysql://nope")
    bad = cli(None, "ls")
    assert bad.exit_code == 2 and "RECALL_DB_URL" in bad.stderr and "postgresql://" in bad.stderr


@pytest.fixture
def convs(recall: Recall) -> Conversations:
    return have_conversations(recall.url)
