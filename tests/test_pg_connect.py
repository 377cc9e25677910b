"""Opening a PostgreSQL database: a migrated pool, one clear line when it cannot be used,
and migrations that two instances starting together never race."""

from __future__ import annotations

import asyncio

import pytest

from proxy.config import Config, ConfigError, explain_db_url, parse_config
from proxy.store.pg_connect import open_pool, redacted
from proxy.store.pg_migrations import PG_MIGRATIONS, SchemaTooNew, migrate
from proxy.store.records import StoreError

asyncpg = pytest.importorskip("asyncpg")


def test_two_instances_starting_together_migrate_once(pg_url: str) -> None:
    async def both() -> list[list[str]]:
        first, second = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
        try:
            return list(await asyncio.gather(migrate(first), migrate(second)))
        finally:
            await first.close()
            await second.close()

    applied = sorted(asyncio.run(both()), key=len)
    assert applied == [[], [name for name, _ in PG_MIGRATIONS]]


def test_a_schema_newer_than_this_recall_is_refused(pg_url: str) -> None:
    async def run() -> None:
        pool = await open_pool(pg_url)
        await pool.execute("INSERT INTO schema_migrations VALUES ($1, 'm999_future', 0)", len(PG_MIGRATIONS) + 1)
        await pool.close()
        with pytest.raises(StoreError, match="newer than this recall knows"):
            await open_pool(pg_url)
        db = await asyncpg.connect(pg_url)
        with pytest.raises(SchemaTooNew):
            await migrate(db)
        await db.close()

    asyncio.run(run())


def test_a_refused_password_and_a_missing_database_are_one_line_each(pg_url: str, postgres_server: object) -> None:
    wrong = pg_url.replace(":recall-test@", ":wrong-password@")
    with pytest.raises(StoreError) as refused:
        asyncio.run(open_pool(wrong))
    assert "refused the password" in str(refused.value) and "wrong-password" not in str(refused.value)
    missing = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreError, match="database does not exist"):
        asyncio.run(open_pool(missing))


def test_an_unreachable_server_says_so() -> None:
    with pytest.raises(StoreError, match="cannot reach PostgreSQL at postgresql://u:\\*\\*\\*@127.0.0.1:1/db"):
        asyncio.run(open_pool("postgresql://u:secret@127.0.0.1:1/db"))


def test_the_url_comes_from_db_then_the_environment_then_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config({"storage": {"url": "postgresql://a/config"}}, "recall.toml")
    monkeypatch.delenv("RECALL_DB_URL", raising=False)
    assert explain_db_url(None, config) == ("postgresql://a/config", "[storage] url in recall.toml")
    monkeypatch.setenv("RECALL_DB_URL", "postgres://a/env")
    assert explain_db_url(None, config) == ("postgres://a/env", "RECALL_DB_URL")
    assert explain_db_url("postgresql://a/flag", config) == ("postgresql://a/flag", "--db")
    assert explain_db_url("/tmp/recall.db", config) == (None, "")  # --db names a SQLite file
    monkeypatch.delenv("RECALL_DB_URL")
    assert explain_db_url(None, Config()) == (None, "")


def test_a_url_that_is_not_postgres_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"\[storage\] url: must be a postgresql:// URL \(got sqlite:…\)"):
        parse_config({"storage": {"url": "sqlite:///x.db"}}, "recall.toml")
    monkeypatch.setenv("RECALL_DB_URL", "mysql://x")
    with pytest.raises(ConfigError, match="RECALL_DB_URL"):
        explain_db_url(None, Config())


def test_passwords_never_reach_messages() -> None:
    assert redacted("postgresql://me:s3cret@db:5432/recall") == "postgresql://me:***@db:5432/recall"
    assert redacted("postgresql://db/recall") == "postgresql://db/recall"
