"""Start-up on a database recall cannot use (issue 16, item 8): one line, exit status 2,
never a traceback and never a hang (no thread left behind that keeps the process alive).

Each case starts `python -m proxy serve` as a real process, with a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proxy.store import preflight
from proxy.store.migrations import MIGRATIONS
from proxy.store.sqlite import WRITER_BUSY_TIMEOUT_S, SQLiteStore, open_sync

REPO = Path(__file__).resolve().parents[1]


def serve(db: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`recall serve` on `db`; a process that does not exit in time fails the test (TimeoutExpired)."""
    command = [sys.executable, "-m", "proxy", "serve", "--db", str(db), "--port", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, (result.returncode, output)
    assert len(output.splitlines()) == 1, output
    assert output.startswith("recall: bad database: "), output
    assert "Traceback" not in output
    for word in words:
        assert word in output, (word, output)
    return output


def recall_database(path: Path, rows: int = 0) -> Path:
    """A database as recall leaves it (its schema), with `rows` exchanges of some size."""
    db = open_sync(path) if path.exists() else None
    if db is None:
        sqlite3.connect(path).close()
        db = open_sync(path)
    for i in range(rows):
        db.execute("INSERT INTO exchanges (upstream, method, path, created_at, request_body) VALUES (?,?,?,?,?)",
                   ("up", "POST", f"/v1/{i}", time.time(), os.urandom(300)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


@pytest.mark.parametrize("mode", ["live", "replay"])  # replay serves a copy of the file: checked before copying
def test_a_file_that_is_not_sqlite(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "notes.db"
    db.write_text("my shopping list\n" * 100)
    assert_one_line(serve(db, "--mode", mode), str(db), "not a SQLite database")
    assert db.read_text() == "my shopping list\n" * 100  # untouched


def test_a_directory(tmp_path: Path) -> None:
    assert_one_line(serve(tmp_path), "is a directory")


def test_a_corrupted_database(tmp_path: Path) -> None:
    db = recall_database(tmp_path / "r.db", rows=400)
    page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
    with db.open("r+b") as handle:  # overwrite pages in the middle of the file, as a bad disk would
        handle.seek(page * 6)
        handle.write(b"\xa5" * page * 3)
    assert_one_line(serve(db), "corrupted", ".recover")


def test_a_large_database_starts_at_once_and_has_its_pages_checked_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Past FULL_CHECK_AT_START_MAX_BYTES, quick_check (which reads every page) runs once recall is
    listening: start-up stays fast at any size, and corruption is still named, in one log line."""
    db = recall_database(tmp_path / "r.db", rows=400)
    page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
    with db.open("r+b") as handle:
        handle.seek(page * 6)
        handle.write(b"\xa5" * page * 3)
    monkeypatch.setattr(preflight, "FULL_CHECK_AT_START_MAX_BYTES", db.stat().st_size - 1)

    async def open_then_close() -> None:
        store = await SQLiteStore.open(db)  # no StoreError: the pages are not read at start
        try:
            for _ in range(200):
                if "corrupted" in caplog.text:
                    break
                await asyncio.sleep(0.05)
        finally:
            await store.close()

    with caplog.at_level(logging.ERROR, logger="recall"):
        asyncio.run(open_then_close())
    lines = [r.getMessage() for r in caplog.records if "corrupted" in r.getMessage()]
    assert len(lines) == 1 and ".recover" in lines[0] and "\n" not in lines[0]
    assert preflight.PageCheck(db).run() == lines[0]


def test_a_schema_newer_than_this_recall(tmp_path: Path) -> None:
    db = recall_database(tmp_path / "r.db")
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', 0)",
                    (len(MIGRATIONS) + 1,))
    output = assert_one_line(serve(db), "newer recall")
    assert f"version {len(MIGRATIONS) + 1}" in output and f"up to {len(MIGRATIONS)}" in output


def test_a_database_locked_past_the_busy_timeout(tmp_path: Path) -> None:
    db = recall_database(tmp_path / "r.db")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's long write
    try:
        started = time.monotonic()
        assert_one_line(serve(db), "locked by another process", f"{WRITER_BUSY_TIMEOUT_S:g} s")
        assert time.monotonic() - started < WRITER_BUSY_TIMEOUT_S + 15
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_read_only_database(tmp_path: Path) -> None:
    db = recall_database(tmp_path / "r.db")
    if os.geteuid() == 0:
        # root writes whatever the mode says: make the file immutable instead (ext4, xfs...).
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(db)]).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i: no way to make a file read-only")
        try:
            result = serve(db)
        finally:
            subprocess.run(["chattr", "-i", str(db)], check=True)
    else:
        db.chmod(0o444)
        tmp_path.chmod(0o555)
        try:
            result = serve(db)
        finally:
            tmp_path.chmod(0o755)
    assert_one_line(result, "read-only")
