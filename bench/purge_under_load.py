"""What `recall purge` costs a server that is serving (run by hand; issue 16, item 7).

Builds a database of ROWS rows (half interactions with their search entries, half
exchanges), half of them older than the purge's cutoff, starts recall on it in front
of bench/fake_provider.py, and drives 20 chains of Gemini Interactions turns (emulate
mode: every turn rebuilds and commits) while `recall purge --older-than 5d` erases the
old half from another process. Reports the load's latency before and during the purge
(p50, p99, max), its errors, and how long the purge took.

    python bench/purge_under_load.py [--rows 500000] [--chains 20] [--baseline-s 5]

With BENCH_DEBUG=1 it also prints every turn slower than 0.5 s and when it ended, to find stalls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.model import TEXT, USER  # noqa: E402
from proxy.store.sqlite import SQLiteStore, open_sync  # noqa: E402

DAY = 86400.0
HEADERS = {"x-goog-api-key": "bench-key", "content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def build(path: Path, rows: int) -> None:
    """`rows` rows: rows/2 interactions in threads of 10 (with search entries), rows/2 exchanges; half old."""
    store = await SQLiteStore.open(path)  # the schema, migrated
    await store.close()
    db = open_sync(path)
    now = time.time()
    words = "the quick brown fox jumps over the lazy dog while the model answers at length".split()
    nodes = rows // 2
    db.execute("BEGIN")
    for n in range(nodes):
        thread, depth = n // 10, n % 10
        old = thread % 2 == 0
        created = now - (10 * DAY if old else 0) + n * 0.001
        node_id, parent = f"v1_b{n}", f"v1_b{n - 1}" if depth else None
        text = " ".join(words[(n + k) % len(words)] for k in range(40)) + f" marker{n}"
        turns = orjson.dumps([{"role": USER, "parts": [{"kind": TEXT, "text": text}]}]).decode()
        db.execute(
            "INSERT INTO interactions (id, owner, upstream, front, mode, model, status, parent_id, root_id, depth,"
            " input, output, request, usage, created_at, updated_at) VALUES"
            " (?, 'bench', 'bench', 'gemini-interactions', 'emulate', 'm', 'completed', ?, ?, ?, ?, ?, '{}', '{}', ?, ?)",
            (node_id, parent, f"v1_b{thread * 10}", depth, turns, turns, created, created))
        key = db.execute("INSERT INTO search_keys (interaction_id) VALUES (?)", (node_id,)).lastrowid
        db.execute("INSERT INTO search_index (rowid, input, output) VALUES (?, ?, ?)", (key, text, text))
        db.execute("INSERT INTO exchanges (interaction_id, owner, upstream, front, method, path, status, latency_ms,"
                   " created_at, stored, request_body, response_body) VALUES"
                   " (?, 'bench', 'bench', 'gemini-interactions', 'POST', '/v1beta/interactions', 200, 5, ?, 1, ?, ?)",
                   (node_id, created, text.encode(), text.encode()))
        if n % 20000 == 19999:
            db.execute("COMMIT")
            db.execute("BEGIN")
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


async def chain(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, samples: list[tuple[float, float]],
                errors: list[str]) -> None:
    previous: str | None = None
    while not stop.is_set():
        body: dict[str, object] = {"model": "m", "input": "hello again"}
        if previous:
            body["previous_interaction_id"] = previous
        started = time.perf_counter()
        try:
            async with session.post(url, data=orjson.dumps(body), headers=HEADERS) as answer:
                payload = await answer.read()
                if answer.status != 200:
                    errors.append(f"{answer.status} {payload[:120]!r}")
                    previous = None
                    continue
                previous = orjson.loads(payload)["id"] if len(samples) % 10 else None  # chains 10 turns deep
        except aiohttp.ClientError as exc:
            errors.append(repr(exc))
            continue
        samples.append((time.perf_counter(), time.perf_counter() - started))


def figures(latencies: list[float]) -> str:
    if not latencies:
        return "no samples"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{len(ordered)} turns, p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms,"
            f" max {ordered[-1] * 1000:.1f} ms")


async def run(rows: int, chains: int, baseline_s: float) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="recall-purge-bench-"))
    db_path = workdir / "recall.db"
    started = time.perf_counter()
    await build(db_path, rows)
    built_s = time.perf_counter() - started
    provider_port, recall_port = free_port(), free_port()
    config = workdir / "recall.toml"
    config.write_text(f'[upstreams.bench]\nurl = "http://127.0.0.1:{provider_port}"\napi = "gemini"\nstate = "emulate"\n')
    procs = [subprocess.Popen([sys.executable, "bench/fake_provider.py", "--port", str(provider_port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config), "--db", str(db_path),
                               "--port", str(recall_port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    url = f"http://127.0.0.1:{recall_port}/bench/v1beta/interactions"
    samples: list[tuple[float, float]] = []
    errors: list[str] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{recall_port}/_recall/health") as answer:
                        if answer.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            stop = asyncio.Event()
            load = [asyncio.create_task(chain(session, url, stop, samples, errors)) for _ in range(chains)]
            await asyncio.sleep(baseline_s)
            purge_started = time.perf_counter()
            purge = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "proxy", "purge", "--older-than", "5d", "--db", str(db_path), cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            said, _ = await purge.communicate()
            purge_ended = time.perf_counter()
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*load)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    if os.environ.get("BENCH_DEBUG"):
        for at, latency in samples:
            if latency > 0.5:
                print(f"slow turn ended {at - purge_started:.2f} s after the purge began: {latency:.2f} s")
    before = [latency for at, latency in samples if at < purge_started]
    during = [latency for at, latency in samples if purge_started <= at <= purge_ended]
    with sqlite3.connect(db_path) as db:
        left = db.execute("SELECT count(*) FROM interactions").fetchone()[0]
    return "\n".join([
        f"- database: {rows:,} rows ({rows // 2:,} interactions with search entries, {rows // 2:,} exchanges),"
        f" half older than the cutoff; built in {built_s:.0f} s; {os.cpu_count()} cores",
        f"- `recall purge --older-than 5d` took {purge_ended - purge_started:.1f} s"
        f" (exit {purge.returncode}: {said.decode().strip()[:200]}); {left:,} interactions left",
        f"- {chains} chains before the purge: {figures(before)}",
        f"- {chains} chains during the purge: {figures(during)}",
        f"- errors during the whole run: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--chains", type=int, default=20)
    parser.add_argument("--baseline-s", type=float, default=5.0)
    args = parser.parse_args()
    print(asyncio.run(run(args.rows, args.chains, args.baseline_s)))


if __name__ == "__main__":
    main()
