"""The database as a Datasette site: links between tables, and search on the view people read."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from .conftest import Recall
from .support.conversations import Conversations, have_conversations

datasette_app = pytest.importorskip("datasette.app")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def site_file(recall: Recall, tmp_path: Path) -> tuple[Path, Conversations]:
    convs = have_conversations(recall.url)
    copy = tmp_path / "site" / "recall.db"  # Datasette names the database after the file
    copy.parent.mkdir()
    with sqlite3.connect(recall.db_path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return copy, convs


def _get(ds: object, path: str) -> object:
    async def fetch() -> object:
        response = await ds.client.get(path)  # type: ignore[attr-defined]
        assert response.status_code == 200, (path, response.text[:500])
        return response.json() if ".json" in path else response.text

    return asyncio.run(fetch())


def test_datasette_shows_the_links_between_tables(site_file: tuple[Path, Conversations]) -> None:
    path, convs = site_file
    ds = datasette_app.Datasette([str(path)])

    async def keys(table: str) -> list[tuple[str, str, str]]:
        found = await ds.get_database("recall").foreign_keys_for_table(table)
        return sorted((k["column"], k["other_table"], k["other_column"]) for k in found)

    assert asyncio.run(keys("exchanges")) == [("interaction_id", "interactions", "id")]
    assert asyncio.run(keys("interactions")) == [("parent_id", "interactions", "id"), ("root_id", "interactions", "id")]
    assert asyncio.run(keys("stream_events")) == [("interaction_id", "interactions", "id")]
    # An interaction's page links to what points at it; an exchange's row links to its interaction.
    row = _get(ds, f"/recall/interactions/{convs.first.id}.json?_extras=foreign_key_tables")
    links = {(t["other_table"], t["other_column"]): t["count"] for t in row["foreign_key_tables"]}
    assert links[("exchanges", "interaction_id")] == 1
    assert links[("interactions", "parent_id")] == 2  # its two follow-ups: name_question and the fork
    rows = _get(ds, f"/recall/exchanges.json?_shape=array&_labels=on&interaction_id={convs.first.id}")
    assert rows and rows[0]["interaction_id"]["value"] == convs.first.id


def test_search_works_on_the_turns_view(site_file: tuple[Path, Conversations]) -> None:
    path, convs = site_file
    metadata = json.loads((ROOT / "docs" / "datasette.json").read_text())
    ds = datasette_app.Datasette([str(path)], metadata=metadata)
    hits = _get(ds, "/recall/turns.json?_search=cricket&_shape=array")
    assert {row["interaction_id"] for row in hits} == {convs.first.id}
    assert any("cricket" in (row["text"] or "") for row in hits)
    # Without the metadata file, the same search names the index in the URL.
    bare = datasette_app.Datasette([str(path)])
    again = _get(bare, "/recall/turns.json?_search=cricket&_fts_table=search_index&_fts_pk=search_key&_shape=array")
    assert again == hits
    assert _get(ds, "/recall/turns.json?_search=platypus&_shape=array") == []


def test_the_foreign_keys_migration_keeps_every_row(tmp_path: Path) -> None:
    """m010 rebuilds four tables: a database filled before it keeps its rows, indexes and search."""
    from proxy.store.migrations import MIGRATIONS, migrate

    db = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    for version, migration in enumerate(MIGRATIONS[:9], start=1):
        migration(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, migration.__name__))
    turn = '[{"role": "user", "parts": [{"kind": "text", "text": "the okapi of Zanzibar"}]}]'
    db.execute("INSERT INTO interactions (id, owner, upstream, front, mode, status, root_id, input, created_at, updated_at)"
               " VALUES ('v1_a', 'o', 'gemini', 'gemini-interactions', 'emulate', 'completed', 'v1_a', ?, 1, 1)", (turn,))
    db.execute("INSERT INTO search_keys (interaction_id) VALUES ('v1_a')")
    db.execute("INSERT INTO search_index (rowid, input, output) VALUES (1, 'the okapi of Zanzibar', '')")
    db.execute("INSERT INTO exchanges (interaction_id, upstream, method, path, created_at) VALUES ('v1_a', 'gemini', 'POST', '/v1/x', 1)")
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert migrate(db)[0] == "m010_declared_foreign_keys"
    # Every index kept, beside those later migrations add (m011: replay's index of recordings).
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")} == indexes | {
        "exchanges_recordings"}
    assert db.execute("SELECT id, input FROM interactions").fetchall() == [("v1_a", turn)]
    assert db.execute("SELECT count(*) FROM exchanges WHERE interaction_id = 'v1_a'").fetchone() == (1,)
    assert db.execute("SELECT search_key, text FROM turns").fetchall() == [(1, "the okapi of Zanzibar")]
    assert db.execute("SELECT k.interaction_id FROM search_index JOIN search_keys AS k ON k.id = search_index.rowid"
                      " WHERE search_index MATCH 'okapi'").fetchall() == [("v1_a",)]
    # The search triggers survived the rebuild: erasing the text takes it out of the index.
    db.execute("UPDATE interactions SET input = NULL WHERE id = 'v1_a'")
    assert db.execute("SELECT count(*) FROM search_index WHERE search_index MATCH 'okapi'").fetchone() == (0,)
