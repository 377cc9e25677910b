"""How long `recall serve` takes to listen on a large database (run by hand).

Builds a database of the size asked (migrations applied by recall itself, then
interactions of ~2 KB each (a typical turn) written straight into the file), then starts
`python -m proxy serve` on it several times and measures the time from the
process's start to its first answer on /_recall/health. A process that only
prints its version is timed the same way, so that the interpreter's own start
(and its imports) can be told from what recall does with the database.

    python bench/startup.py [--size-mb 1024] [--runs 5] [--db PATH (kept, reused)]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.store.sqlite import SQLiteStore  # noqa: E402

_ROW_TEXT = 2_000
_BATCH = 500


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build(path: Path, size_mb: int) -> None:
    """A recall database of about `size_mb` megabytes: the schema by recall, the rows by hand."""
    asyncio.run(_migrate(path))
    target = size_mb * 1024 * 1024
    turn = json.dumps([{"role": "model", "parts": [{"kind": "text", "text": "x" * _ROW_TEXT}]}])
    now = time.time()
    with sqlite3.connect(path) as db:
        n = 0
        while path.stat().st_size < target:
            rows = [(f"v1_bench{n + i:09d}", "bench-owner", "bench", "gemini-interactions", "emulate", "m",
                     "completed", None, f"v1_bench{n + i:09d}", 0, "[]", turn, "{}", "{}", now, now)
                    for i in range(_BATCH)]
            db.executemany("INSERT INTO interactions (id, owner, upstream, front, mode, model, status, parent_id,"
                           " root_id, depth, input, output, request, usage, created_at, updated_at)"
                           " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            db.commit()
            n += _BATCH
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def _migrate(path: Path) -> None:
    store = await SQLiteStore.open(path)
    await store.close()


def time_to_listen(args: list[str]) -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "proxy", *args, "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_recall/health", timeout=1):
                    return time.perf_counter() - started
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"recall exited with {proc.returncode}") from None
                time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(30)


def time_to_version() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "proxy", "--version"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", type=Path, help="build (or reuse, if it exists) the database here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="recall-startup-"))
    path = args.db or workdir / "big.db"
    if not path.exists():
        started = time.perf_counter()
        build(path, args.size_mb)
        print(f"built {path} ({path.stat().st_size / 2**20:,.0f} MB) in {time.perf_counter() - started:.1f} s")
    size = path.stat().st_size / 2**20
    empty = workdir / "empty.db"
    asyncio.run(_migrate(empty))
    versions = [time_to_version() for _ in range(args.runs)]
    small = [time_to_listen(["serve", "--db", str(empty)]) for _ in range(args.runs)]
    big = [time_to_listen(["serve", "--db", str(path)]) for _ in range(args.runs)]
    print(f"Command: `python bench/startup.py --size-mb {args.size_mb} --runs {args.runs}`"
          f" ({time.strftime('%Y-%m-%d')}; {os.cpu_count()} cores; median of {args.runs}, first run included)")
    print()
    print("| start | median s | max s |")
    print("|---|---|---|")
    print(f"| `python -m proxy --version` (interpreter and imports) | {statistics.median(versions):.2f} | {max(versions):.2f} |")
    print(f"| `recall serve`, empty database, to listening | {statistics.median(small):.2f} | {max(small):.2f} |")
    print(f"| `recall serve`, {size:,.0f} MB database, to listening | {statistics.median(big):.2f} | {max(big):.2f} |")


if __name__ == "__main__":
    main()
