"""Start-up checks on the database file: one line saying what is wrong and what to do.

`recall serve` runs them before it opens the store, so that a bad file stops it at once
with exit status 2 (never a traceback, never a hang): a directory, a file that is not
SQLite, one locked by another process past the busy timeout, a read-only one, a corrupted
one (`PRAGMA quick_check`), or one written by a newer recall (its schema has migrations
this recall does not know).

quick_check reads every page, about a second per GB of a typical database on this
project's machine: a file larger than FULL_CHECK_AT_START_MAX_BYTES gets every other
check at start and its pages checked once recall is listening (`PageCheck`, run
by the store on a thread), so that start-up stays under a second at any size.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import NoReturn

from .migrations import MIGRATIONS
from .records import StoreError

# How long recall waits for another process's write lock at start (and sqlite3's default).
BUSY_TIMEOUT_S = 5.0
_MAGIC = b"SQLite format 3\x00"
# quick_check names at most this many problems; the first is enough for the one line.
_CHECK_LIMIT = 1
# The largest file whose pages are checked before recall listens (see the docstring).
FULL_CHECK_AT_START_MAX_BYTES = 64 * 1024 * 1024


def check_database(path: Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S, writable: bool = True) -> bool:
    """Raise StoreError unless `path` is a database recall can use (a missing or empty file is fine);
    `writable=False` for a file recall only reads (replay's source, which it copies).

    Returns whether the file's pages are still to be checked (`PageCheck`): a file
    larger than FULL_CHECK_AT_START_MAX_BYTES has them checked after start."""
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
    pages_later = path.exists() and path.stat().st_size > FULL_CHECK_AT_START_MAX_BYTES
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s)
    except sqlite3.Error as exc:
        raise StoreError(f"{path} cannot be opened ({exc}); check that its directory exists and is writable") from None
    try:
        if not pages_later:
            problem = _quick_check(db, path, busy_timeout_s)
            if problem is not None:
                raise StoreError(_corrupted(path, problem))
        _check(db, path, busy_timeout_s, writable)
    finally:
        db.close()
    return pages_later


class PageCheck:
    """`PRAGMA quick_check` of a whole file on a connection of its own, run on a thread after
    start for a large file. It reads every page (minutes for a GB that is not in the page
    cache), so `stop` interrupts it: a shutdown never waits for it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        self._stopped = False
        # The check's thread closes the connection while the loop may interrupt it: never both at once.
        self._closing = threading.Lock()

    def run(self) -> str | None:
        """What is wrong with the file's pages, in one line; None if nothing is (or the check was stopped)."""
        try:
            problem = _quick_check(self._db, self.path, BUSY_TIMEOUT_S)
        except StoreError as exc:
            return None if self._stopped else str(exc)
        finally:
            with self._closing:
                self._db.close()
                self._stopped = True
        return None if problem is None else _corrupted(self.path, problem)

    def stop(self) -> None:
        with self._closing:
            if not self._stopped:
                self._stopped = True
                self._db.interrupt()


def _quick_check(db: sqlite3.Connection, path: Path, busy_timeout_s: float) -> str | None:
    try:
        problems = [row[0] for row in db.execute(f"PRAGMA quick_check({_CHECK_LIMIT})")]
    except sqlite3.DatabaseError as exc:
        _raise_for(exc, path, busy_timeout_s)
    if problems == ["ok"]:
        return None
    # quick_check says "*** in database main ***" and the problem on the next line: keep one line.
    return " ".join(problems[0].replace("*** in database main ***", "").split())


def _corrupted(path: Path, problem: str) -> str:
    return (f"{path} is corrupted (PRAGMA quick_check: {problem}); restore it from a backup,"
            f" or salvage what is left with `sqlite3 {path} .recover | sqlite3 NEW.db`")


def _check(db: sqlite3.Connection, path: Path, busy_timeout_s: float, writable: bool) -> None:
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
