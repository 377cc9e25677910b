"""Start-up checks on the database file: one line saying what is wrong and what to do.

`recall serve` runs them before it opens the store, so that a bad file stops it at once
with exit status 2 (never a traceback, never a hang): a directory, a file that is not
SQLite, one locked by another process past the busy timeout, a read-only one, a corrupted
one (`PRAGMA quick_check`), or one written by a newer recall (its schema has migrations
this recall does not know).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NoReturn

from .migrations import MIGRATIONS
from .records import StoreError

# How long recall waits for another process's write lock at start (and sqlite3's default).
BUSY_TIMEOUT_S = 5.0
_MAGIC = b"SQLite format 3\x00"
# quick_check names at most this many problems; the first is enough for the one line.
_CHECK_LIMIT = 1


def check_database(path: Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S, writable: bool = True) -> None:
    """Raise StoreError unless `path` is a database recall can use (a missing or empty file is fine);
    `writable=False` for a file recall only reads (replay's source, which it copies)."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a database file; pass --db with a file path"
                         f" such as {path / 'recall.db'}")
    if path.exists():
        try:
            with path.open("rb") as handle:
                head = handle.read(len(_MAGIC))
        except OSError as exc:
            raise StoreError(f"{path} cannot be read ({exc.strerror}); check its permissions") from None
        if head and head != _MAGIC:
            raise StoreError(f"{path} is not a SQLite database (it starts with {head[:8]!r}); pass --db with"
                             " recall's database file, or a new path to start one")
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s)
    except sqlite3.Error as exc:
        raise StoreError(f"{path} cannot be opened ({exc}); check that its directory exists and is writable") from None
    try:
        _check(db, path, busy_timeout_s, writable)
    finally:
        db.close()


def _check(db: sqlite3.Connection, path: Path, busy_timeout_s: float, writable: bool) -> None:
    try:
        problems = [row[0] for row in db.execute(f"PRAGMA quick_check({_CHECK_LIMIT})")]
    except sqlite3.DatabaseError as exc:
        _raise_for(exc, path, busy_timeout_s)
    if problems != ["ok"]:
        # quick_check says "*** in database main ***" and the problem on the next line: keep one line.
        problem = " ".join(problems[0].replace("*** in database main ***", "").split())
        raise StoreError(f"{path} is corrupted (PRAGMA quick_check: {problem}); restore it from a backup,"
                         f" or salvage what is left with `sqlite3 {path} .recover | sqlite3 NEW.db`")
    known = len(MIGRATIONS)
    try:
        has_table = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
                               ).fetchone()
        newest = db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] if has_table else None
    except sqlite3.DatabaseError as exc:
        _raise_for(exc, path, busy_timeout_s)
    if newest is not None and newest > known:
        raise StoreError(f"{path} has schema version {newest}, written by a newer recall; this recall knows"
                         f" versions up to {known}: upgrade recall, or pass --db with another file")
    try:
        # Take the write lock and give it back: a read-only file, or one another process
        # holds past the busy timeout, is found now rather than on the first request.
        # Rewriting user_version with its own value is a real write (of page 1), rolled back:
        # BEGIN IMMEDIATE alone succeeds on a read-only file.
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute(f"PRAGMA user_version = {int(version)}")
        finally:
            db.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        _raise_for(exc, path, busy_timeout_s)


def _raise_for(exc: sqlite3.DatabaseError, path: Path, busy_timeout_s: float) -> NoReturn:
    text = str(exc)
    code = getattr(exc, "sqlite_errorname", "")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        raise StoreError(f"{path} is locked by another process for more than {busy_timeout_s:g} s (the busy"
                         " timeout); stop the other recall or sqlite3 that holds it, or pass --db with another"
                         " file") from None
    if code.startswith("SQLITE_READONLY") or "readonly" in text:
        raise StoreError(f"{path} is read-only ({text}); recall writes every call it records: make it and its"
                         " directory writable, or pass --db with another file") from None
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        raise StoreError(f"{path} is corrupted ({text}); restore it from a backup, or salvage what is left"
                         f" with `sqlite3 {path} .recover | sqlite3 NEW.db`") from None
    raise StoreError(f"{path} cannot be used: {text}") from None
