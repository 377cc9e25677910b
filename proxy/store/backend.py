"""Which store a server opens: SQLite on a file (the default), or PostgreSQL on a URL.

Replay mode never changes the recordings it serves. On SQLite it serves a private copy of
the file (anything it writes lands in the copy and goes with it). On PostgreSQL it reads the
team's database directly and writes nothing there but its replay positions (postgres.py's
`read_only`): a copy of a shared database is no one's to make at every start, and the
positions must be shared for several instances to replay one session together.
"""

from __future__ import annotations

from pathlib import Path

from .preflight import check_database
from .protocol import Store
from .sqlite import SQLiteStore, copy_database


async def open_store(location: str | Path, *, replaying: bool, scratch: Path,
                     replay_session: str | None = None, warm_chains: int = 0) -> Store:
    """The server's store at `location`: a PostgreSQL URL (a str, as config.explain_db_url
    found it), or a SQLite file's Path.
    `scratch`: a private directory for replay's copy of a SQLite file. `replay_session`:
    the name instances replaying one session together share (PostgreSQL; else this start's own).
    `warm_chains`: how many recently active threads' chains are read into memory in the background.
    Raises records.StoreError with one line when the database cannot be used."""
    if isinstance(location, str):
        from .postgres import PostgresStore

        return await PostgresStore.open(location, read_only=replaying, replay_session=replay_session,
                                        warm_chains=warm_chains)
    path = location
    if replaying:
        copy = scratch / "replay.db"
        if path.exists():
            # A bad source stops start-up with one line, as the store's own file would.
            check_database(path, writable=False)
            copy_database(path, copy)
        path = copy
    return await SQLiteStore.open(path, warm_chains=warm_chains)
