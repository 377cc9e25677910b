"""Response times of the viewer's JSON API over a big database (a benchmark, not a test).

Builds a file of N conversations (1 to 4 turns each, short texts) straight into
the tables, through recall's own migrations and triggers (so the search index
is filled as the server would fill it), serves it with `recall ui`'s app in
this process, and times each endpoint over HTTP on loopback: the first page of
conversations, a page deep in the list reached by cursor, filtered pages,
search, one conversation, and stats. For comparison it also times the
conversations view ordered with LIMIT/OFFSET, the query keyset paging replaces.

    .venv/bin/python bench/viewer_api.py [--conversations 100000] [--keep PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.config import Config  # noqa: E402
from proxy.store.sqlite import open_private, open_sync  # noqa: E402
from proxy.viewer import create_viewer_app  # noqa: E402

_WORDS = ("the a of to and in is it you that he was for on are with as his they be at one have this from or had"
          " by word but what some we can out other were all there when up use your how said an each she which do"
          " water people cricket okapi name play time long make thing see look more day could go come number").split()
_COLUMNS = ("id, owner, upstream, front, mode, model, status, parent_id, root_id, depth, input, output, request,"
            " usage, input_tokens, output_tokens, created_at, updated_at")


def build(path: Path, conversations: int, seed: int = 12) -> int:
    """N threads, newest last; returns the number of interactions."""
    rng = random.Random(seed)
    open_private(path)
    db = open_sync(path)
    start = time.time() - 60 * 86400
    rows: list[tuple] = []
    total = 0
    db.execute("BEGIN")
    for t in range(conversations):
        root = f"v1_bench{t:07d}"
        parent = None
        for k in range(rng.choice((1, 2, 3, 4))):
            node = root if k == 0 else f"{root}_{k}"
            said = " ".join(rng.choices(_WORDS, k=24))
            moment = start + t * (60 * 86400 / conversations) + k
            rows.append((
                node, "k_bench", rng.choice(("gemini", "openai", "anthropic")), "gemini-interactions", "emulate",
                rng.choice(("gemini-3-flash", "gpt-5", "claude-4")), "completed", parent, root, k,
                json.dumps([{"role": "user", "parts": [{"kind": "text", "text": said}]}]),
                json.dumps([{"role": "model", "parts": [{"kind": "text", "text": said[::-1]}]}]),
                "{}", '{"input_tokens": 30, "output_tokens": 60}', 30, 60, moment, moment + 0.5,
            ))
            parent = node
            total += 1
        if len(rows) >= 20_000:
            db.executemany(f"INSERT INTO interactions ({_COLUMNS}) VALUES ({', '.join('?' * 18)})", rows)
            rows = []
    db.executemany(f"INSERT INTO interactions ({_COLUMNS}) VALUES ({', '.join('?' * 18)})", rows)
    db.execute("COMMIT")
    db.close()
    return total


async def timed(session: aiohttp.ClientSession, url: str, rounds: int = 5) -> tuple[float, dict]:
    """Median milliseconds of `rounds` GETs, and the last answer."""
    times = []
    body: dict = {}
    for _ in range(rounds):
        started = time.perf_counter()
        async with session.get(url) as answer:
            body = await answer.json()
            assert answer.status == 200, body
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), body


async def measure(path: Path) -> list[tuple[str, float]]:
    runner = web.AppRunner(create_viewer_app(Config(), path), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/_recall/api"
    figures: list[tuple[str, float]] = []
    async with aiohttp.ClientSession() as session:
        ms, first = await timed(session, f"{base}/conversations?limit=50")
        figures.append(("conversations, page 1 (50)", ms))
        # Walk up to page 1000 by cursor, then time that page again on its own.
        cursor, pages, walked = first["next_cursor"], 1, time.perf_counter()
        while pages < 999 and cursor:
            async with session.get(f"{base}/conversations?limit=50&cursor={cursor}") as answer:
                next_cursor = (await answer.json())["next_cursor"]
            pages += 1
            if next_cursor is None:
                break
            cursor = next_cursor
        figures.append((f"conversations, walking {pages} pages by cursor (mean per page)",
                        (time.perf_counter() - walked) * 1000 / (pages - 1)))
        ms, _ = await timed(session, f"{base}/conversations?limit=50&cursor={cursor}")
        figures.append((f"conversations, page {pages} again", ms))
        ms, _ = await timed(session, f"{base}/conversations?limit=50&model=gpt-5")
        figures.append(("conversations, model=gpt-5, page 1", ms))
        ms, _ = await timed(session, f"{base}/conversations?limit=50&model=no-such-model", rounds=3)
        figures.append(("conversations, a model nothing matches (worst case: full walk)", ms))
        ms, _ = await timed(session, f"{base}/search?q=okapi")
        figures.append(("search okapi (a common word), 20 hits", ms))
        ms, _ = await timed(session, f"{base}/search?q=okapi+cricket+water")
        figures.append(("search three words", ms))
        thread = first["conversations"][0]["thread_id"]
        ms, _ = await timed(session, f"{base}/conversations/{thread}")
        figures.append(("one conversation", ms))
        ms, _ = await timed(session, f"{base}/stats?by=day&by=model&since=30d", rounds=3)
        figures.append(("stats by day and model, last 30 days", ms))
        ms, _ = await timed(session, f"{base}/stats?by=day&by=model", rounds=3)
        figures.append(("stats by day and model, all time", ms))
    await runner.cleanup()
    return figures


def offset_paging(path: Path, page: int) -> float:
    """The same page through the conversations view with LIMIT/OFFSET: what keyset paging replaces."""
    db = sqlite3.connect(path)
    started = time.perf_counter()
    db.execute("SELECT * FROM conversations ORDER BY last_activity_at DESC, thread_id LIMIT 50 OFFSET ?",
               ((page - 1) * 50,)).fetchall()
    db.close()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the database at this path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.keep or Path(scratch) / "viewer-bench.db"
        if not path.exists():
            started = time.perf_counter()
            interactions = build(path, args.conversations)
            print(f"built {args.conversations:,} conversations ({interactions:,} interactions,"
                  f" {path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")
        figures = asyncio.run(measure(path))
        figures.append(("for comparison: the view, LIMIT 50 OFFSET 0", offset_paging(path, 1)))
        figures.append(("for comparison: the view, LIMIT 50 OFFSET 49950 (page 1000)", offset_paging(path, 1000)))
    print("| request | median ms |\n|---|---:|")
    for name, ms in figures:
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
