"""The audit commands' tests on both backends: one parametrised fixture, `audit_backend`.

The data is always recorded through a real recall on SQLite (the server's PostgreSQL store is
tested on its own); on the `postgres` side, `of(db_path)` copies that file into a fresh
PostgreSQL database with `recall db copy`, and the test runs the same commands against its URL,
expecting the same output (search may rank differently: pg_audit_search.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from proxy.cli.main import main

SQLITE, POSTGRES = "sqlite", "postgres"


class AuditBackend:
    def __init__(self, name: str, new_database: Callable[[], str] | None = None) -> None:
        self.name = name
        self._new_database = new_database

    def __repr__(self) -> str:
        return self.name

    @property
    def postgres(self) -> bool:
        return self.name == POSTGRES

    def of(self, db_path: Path) -> Path | str:
        """What to pass to --db for the rows the SQLite file at `db_path` holds now."""
        if self._new_database is None:
            return db_path
        url = self._new_database()
        copied = CliRunner().invoke(main, ["db", "copy", "--from", str(db_path), "--to", url])
        assert copied.exit_code == 0, copied.output
        return url

    def empty(self, db_path: Path) -> Path | str:
        """A database with nothing in it yet: the (missing) file, or a fresh PostgreSQL database."""
        return db_path if self._new_database is None else self._new_database()
