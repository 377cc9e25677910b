"""How much memory recall uses while it relays a large stream (run by hand).

Starts a fake provider that streams N MB of Interactions text deltas, a recall
subprocess in front of it (emulate mode, so recall decodes, records and
assembles the whole output; and native mode, a byte relay teed into the store),
streams through it with a raw HTTP client, and samples recall's RSS from /proc
every 20 ms; then GETs the interaction it recorded (emulate mode: recall answers it
from its store) and samples again. Prints a Markdown table. Ports 9400-9419.

    python bench/stream_memory.py --sizes 10 50 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

DELTA_BYTES = 4096


# The ports benchmarks may use on the shared machines: the provider's first, then recall's.
PORTS = iter(range(9400, 9420))


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port left in 9400-9419")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def fake_provider(size_mb: int) -> web.AppRunner:
    text = "x" * (DELTA_BYTES - 1) + " "

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def event(payload: dict) -> bytes:
            return f"event: {payload['event_type']}\ndata: {json.dumps(payload)}\n\n".encode()

        await response.write(event({"event_type": "interaction.created", "event_id": "p0",
                                    "interaction": {"id": "v1_big", "status": "in_progress"}}))
        await response.write(event({"event_type": "step.start", "index": 0, "step": {"type": "model_output"}}))
        for n in range(size_mb * 1024 * 1024 // DELTA_BYTES):
            await response.write(event({"event_type": "step.delta", "event_id": f"p{n + 1}", "index": 0,
                                        "delta": {"type": "text", "text": text}}))
        await response.write(event({"event_type": "step.stop", "index": 0}))
        await response.write(event({"event_type": "interaction.completed",
                                    "interaction": {"id": "v1_big", "status": "completed"}}))
        await response.write(b"event: done\ndata: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", stream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


async def measure(state: str, size_mb: int, provider_port: int, workdir: Path) -> dict:
    port = free_port()
    config = workdir / f"{state}-{size_mb}.toml"
    config.write_text(f'[upstreams.bench]\nurl = "http://127.0.0.1:{provider_port}"\napi = "gemini"\nstate = "{state}"\n')
    db = workdir / f"{state}-{size_mb}.db"
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config), "--db", str(db),
                             "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/_recall/health"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            baseline = rss_mb(proc.pid)
            peak = baseline
            received = 0
            started = time.perf_counter()
            body = {"model": "m", "input": "go", "stream": True}
            async with session.post(f"http://127.0.0.1:{port}/bench/v1/interactions", json=body,
                                    headers={"x-goog-api-key": "k"}) as answer:
                last_sample = 0.0
                async for chunk in answer.content.iter_any():
                    received += len(chunk)
                    now = time.perf_counter()
                    if now - last_sample > 0.02:
                        peak, last_sample = max(peak, rss_mb(proc.pid)), now
            elapsed = time.perf_counter() - started
            await asyncio.sleep(0.3)
            after = rss_mb(proc.pid)
            peak = max(peak, after)
            get_peak, got = after, 0
            if state == "emulate":
                async with session.get(f"http://127.0.0.1:{port}/bench/v1/interactions/{interaction_id(db)}",
                                       headers={"x-goog-api-key": "k"}) as answer:
                    async for chunk in answer.content.iter_any():
                        got += len(chunk)
                        get_peak = max(get_peak, rss_mb(proc.pid))
                    assert answer.status == 200, answer.status
                get_peak = max(get_peak, rss_mb(proc.pid))
    finally:
        proc.terminate()
        proc.wait(10)
    return {"state": state, "size_mb": size_mb, "received_mb": received / 2**20, "baseline": baseline,
            "peak": peak, "after": after, "seconds": elapsed, "db_mb": db_mb(db),
            "get_growth": get_peak - after if got else None, "get_mb": got / 2**20}


def interaction_id(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return str(con.execute("SELECT id FROM interactions ORDER BY created_at DESC LIMIT 1").fetchone()[0])


def db_mb(db: Path) -> str:
    """The database file, and its WAL (pages not yet checkpointed into the file) if any."""
    wal = Path(f"{db}-wal")
    size = f"{db.stat().st_size / 2**20:.0f} MB"
    return f"{size} + {wal.stat().st_size / 2**20:.0f} MB WAL" if wal.exists() and wal.stat().st_size else size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            provider = await fake_provider(size)
            provider_port = free_port()
            site = web.TCPSite(provider, "127.0.0.1", provider_port)
            await site.start()
            for state in ("native", "emulate"):
                rows.append(await measure(state, size, provider_port, Path(tmp)))
            await provider.cleanup()
    print("| mode | streamed | recall RSS before | peak | after | peak growth | time | db size | GET growth |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        get = f"{r['get_growth']:.0f} MB ({r['get_mb']:.0f} MB body)" if r["get_growth"] is not None else "-"
        print(f"| {r['state']} | {r['received_mb']:.0f} MB | {r['baseline']:.0f} MB | {r['peak']:.0f} MB "
              f"| {r['after']:.0f} MB | {r['peak'] - r['baseline']:.0f} MB | {r['seconds']:.1f} s | {r['db_mb']} "
              f"| {get} |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
