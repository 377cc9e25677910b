"""Replay hit latency against the number of recordings (issue 21), run by hand.

For each scale (1,000 to 1,000,000 recordings by default) a database is seeded straight
into recall's tables (migrated by recall, one transaction, executemany): plain recordings,
and every tenth a streamed one with its recorded events, each under the replay key of a
distinct request. `recall serve --mode replay` is started on it and measured with
sequential requests spread over random recorded keys (each a first hit of its key, not one
hot key), interleaved round by round with the minimal relay (bench/minimal_relay.py) in
front of the fake provider as the floor: p50/p99 of a hit and recall's CPU per hit. Then
one key asked `--hot` times in a row: the n-th identical request gets the n-th recording
(here the last repeats), and each hit leaves a metadata-only row under that key, so the
last hits' p50 beside the first hits' shows whether a hit's cost grows with the hits before it.

    python bench/replay_scale.py [--scales 1000 10000 100000 1000000] [--requests 400] [--ports 9440]
                                 [--write docs/PERFORMANCE.md]

Each database lives in a private directory under /tmp and is deleted once measured (the
1,000,000 file is a few hundred MB, and replay mode serves a copy of it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy_overhead import Processes, cpu_seconds, pct, wait_up, write_section  # noqa: E402

from proxy.config import Config  # noqa: E402
from proxy.pipeline.cache import canonical_form, request_key  # noqa: E402
from proxy.store.recordings import EVENT_FIELDS, EXCHANGE_FIELDS  # noqa: E402
from proxy.store.sqlite import open_private, open_sync  # noqa: E402

MARKS = ("<!-- replay-scale:start -->", "<!-- replay-scale:end -->")
UPSTREAM, PATH = "bench", "/v1/interactions"
HEADERS = {"x-goog-api-key": "bench-key", "content-type": "application/json"}
RELAY_BODY = orjson.dumps({"model": "bench-model", "input": "Hello, how are you?"})
STREAMED_EVERY = 10  # every tenth recording is a streamed one
EVENTS_PER_STREAM = 6


def request_body(n: int) -> bytes:
    """The n-th distinct request: what an app would send, a streamed one every tenth."""
    body: dict[str, object] = {"model": "bench-model", "input": f"Question {n}: what does the replay key of this"
                               " request look like, and how fast is it found among the others?",
                               "generation_config": {"temperature": 0.2}}
    if n % STREAMED_EVERY == 0:
        body["stream"] = True
    return orjson.dumps(body)


def response_body(n: int) -> bytes:
    return orjson.dumps({"id": f"v1_replay{n:08d}", "status": "completed", "model": "bench-model",
                         "outputs": [{"type": "text", "text": f"Answer {n}: a recorded reply of a typical length,"
                                      " long enough to be more than a few bytes but short like most replies."}],
                         "usage": {"total_input_tokens": 24, "total_output_tokens": 31, "total_tokens": 55}})


def event_frame(n: int, seq: int) -> bytes:
    data = orjson.dumps({"event_type": "content.delta", "event_id": f"e{seq}",
                         "delta": {"type": "text", "text": f"piece {seq} of answer {n} "}})
    return b"event: content.delta\ndata: " + data + b"\n\n"


def seed(path: Path, count: int) -> float:
    """`count` recordings under distinct replay keys, in one transaction; seconds it took."""
    started = time.perf_counter()
    open_private(path)
    db = open_sync(path)
    ignore = Config().ignore_fields
    now = time.time()
    plain_headers = orjson.dumps({"content-type": "application/json"})
    stream_headers = orjson.dumps({"content-type": "text/event-stream"})
    request_headers = orjson.dumps({"content-type": "application/json", "x-goog-api-key": "[redacted]"})

    def exchanges() -> Iterator[tuple[object, ...]]:
        for n in range(count):
            body = request_body(n)
            streamed = n % STREAMED_EVERY == 0
            row = {"interaction_id": f"v1_replay{n:08d}" if streamed else None, "upstream": UPSTREAM,
                   "front": "gemini_interactions", "method": "POST", "path": PATH, "status": 200,
                   "latency_ms": 412.0, "model": "bench-model", "input_tokens": 24, "output_tokens": 31,
                   "stored": 1, "request_headers": request_headers, "request_body": body,
                   "response_headers": stream_headers if streamed else plain_headers,
                   "response_body": None if streamed else response_body(n), "upstream_digest": None,
                   "error": None, "created_at": now + n / 1000,
                   "cache_key": request_key(canonical_form(UPSTREAM, "POST", PATH, [], body, ignore))}
            yield ("", "live", *(row[f] for f in EXCHANGE_FIELDS))

    def events() -> Iterator[tuple[object, ...]]:
        for n in range(0, count, STREAMED_EVERY):
            for seq in range(1, EVENTS_PER_STREAM + 1):
                yield (f"v1_replay{n:08d}", seq, f"e{seq}", seq * 20.0, event_frame(n, seq))

    db.execute("BEGIN")
    db.executemany(f"INSERT INTO exchanges (owner, cache, {', '.join(EXCHANGE_FIELDS)})"
                   f" VALUES ({', '.join('?' * (len(EXCHANGE_FIELDS) + 2))})", exchanges())
    db.executemany(f"INSERT INTO stream_events ({', '.join(EVENT_FIELDS)}) VALUES (?,?,?,?,?)", events())
    db.execute("COMMIT")
    db.close()
    return time.perf_counter() - started


async def wait_idle(pid: int, limit_s: float = 600.0) -> None:
    """Until the process is idle (a file over 64 MB has its pages checked once recall listens)."""
    deadline = time.monotonic() + limit_s
    quiet = 0
    before = cpu_seconds(pid)
    while quiet < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - before < 0.02 else 0
        before = now


async def timed_post(session: aiohttp.ClientSession, url: str, body: bytes) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=HEADERS) as answer:
        data = await answer.read()
        if answer.status != 200 or (answer.headers.get("X-Recall-Cache", "hit") != "hit"):
            raise RuntimeError(f"{url}: {answer.status} {data[:300]!r}")
    return time.perf_counter() - started


async def sequential(session: aiohttp.ClientSession, url: str, bodies: list[bytes],
                     pid: int | None = None) -> tuple[list[float], float]:
    """Latencies of `bodies` sent one after another, and the CPU seconds `pid` spent meanwhile."""
    before = cpu_seconds(pid) if pid else 0.0
    latencies = [await timed_post(session, url, body) for body in bodies]
    return latencies, (cpu_seconds(pid) - before) if pid else 0.0


async def measure_scale(session: aiohttp.ClientSession, args: argparse.Namespace, workdir: Path, count: int,
                        relay_url: str, procs: Processes) -> dict[str, float]:
    db_path = workdir / f"replay-{count}.db"
    seconds = seed(db_path, count)
    size_mb = db_path.stat().st_size / 1e6
    port = args.ports + 2  # after the fake provider's and the relay's
    config = workdir / "replay.toml"
    config.write_text(f'[upstreams.{UPSTREAM}]\nurl = "http://127.0.0.1:9"\napi = "gemini"\nstate = "emulate"\n')
    # Replay serves a copy of the file: in a TemporaryDirectory, under the benchmark's own.
    env = {**os.environ, "TMPDIR": str(workdir)}
    proc = procs.start("-m", "proxy", "serve", "--config", str(config), "--db", str(db_path), "--port", str(port),
                       "--mode", "replay", env=env)
    url = f"http://127.0.0.1:{port}/{UPSTREAM}{PATH}"
    try:
        await wait_up(session, f"http://127.0.0.1:{port}/_recall/health")
        await wait_idle(proc.pid)
        rng = random.Random(count)
        keys = rng.sample(range(count), min(count, args.warmup + args.requests))
        warm, measured = keys[:args.warmup], keys[args.warmup:]
        await sequential(session, url, [request_body(n) for n in warm])
        hits: list[float] = []
        relay: list[float] = []
        cpu = 0.0
        per_round = -(-len(measured) // args.rounds)
        for start in range(0, len(measured), per_round):
            relay += (await sequential(session, relay_url, [RELAY_BODY] * per_round))[0]
            latencies, spent = await sequential(session, url, [request_body(n) for n in measured[start:start + per_round]],
                                                proc.pid)
            hits += latencies
            cpu += spent
        hot_body = request_body(rng.randrange(count))
        hot, _ = await sequential(session, url, [hot_body] * args.hot)
        tenth = max(1, args.hot // 10)
        return {"count": count, "seed_s": seconds, "size_mb": size_mb, "p50": pct(hits, 0.5), "p99": pct(hits, 0.99),
                "relay_p50": pct(relay, 0.5), "cpu": cpu / len(hits), "hits": len(hits),
                "hot_first": pct(hot[:tenth], 0.5), "hot_last": pct(hot[-tenth:], 0.5)}
    finally:
        proc.terminate()
        proc.wait(30)
        procs.procs.remove(proc)
        db_path.unlink()
        for suffix in ("-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)


async def run(args: argparse.Namespace) -> list[dict[str, float]]:
    workdir = Path(tempfile.mkdtemp(prefix="recall-replay-scale-", dir="/tmp"))
    procs = Processes()
    try:
        provider_port, relay_port = args.ports, args.ports + 1
        procs.start("bench/fake_provider.py", "--port", str(provider_port))
        procs.start("bench/minimal_relay.py", "--port", str(relay_port), "--upstream",
                    f"http://127.0.0.1:{provider_port}")
        relay_url = f"http://127.0.0.1:{relay_port}/v1/interactions"
        results = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await wait_up(session, relay_url.replace("/v1/interactions", "/"))
            for count in args.scales:
                result = await measure_scale(session, args, workdir, count, relay_url, procs)
                print(result, flush=True)
                results.append(result)
        return results
    finally:
        procs.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(results: list[dict[str, float]], args: argparse.Namespace) -> str:
    first = results[0]
    lines = [
        f"Command: `python bench/replay_scale.py --scales {' '.join(str(s) for s in args.scales)} --requests"
        f" {args.requests} --rounds {args.rounds} --hot {args.hot}` ({time.strftime('%Y-%m-%d')};"
        f" {os.cpu_count()} cores; recall, the relay, the fake provider and the client share the machine).",
        "",
        f"Hits: {first['hits']:.0f} sequential requests per scale over distinct random recorded keys (one in"
        f" {STREAMED_EVERY} a streamed recording of {EVENTS_PER_STREAM} events), interleaved in {args.rounds}"
        f" rounds with the minimal relay; *hot key*: one key asked {args.hot} times in a row, p50 of the first"
        " and the last tenth.",
        "",
        "| recordings | db MB | seeded in s | hit p50 ms | hit p99 ms | relay p50 ms | hit p50 × relay's |"
        f" hit p50 × {first['count']:,.0f}'s | CPU ms/hit | hot key first p50 ms | hot key last p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['count']:,.0f} | {r['size_mb']:,.0f} | {r['seed_s']:.1f} | {1000 * r['p50']:.2f} |"
                     f" {1000 * r['p99']:.2f} | {1000 * r['relay_p50']:.2f} | {r['p50'] / r['relay_p50']:.2f} |"
                     f" {r['p50'] / first['p50']:.2f} | {1000 * r['cpu']:.2f} | {1000 * r['hot_first']:.2f} |"
                     f" {1000 * r['hot_last']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=400, help="measured hits per scale, over distinct keys")
    parser.add_argument("--warmup", type=int, default=100, help="hits before measuring, over other keys")
    parser.add_argument("--rounds", type=int, default=4, help="rounds interleaving the relay and recall")
    parser.add_argument("--hot", type=int, default=2000, help="hits of one key in a row")
    parser.add_argument("--ports", type=int, default=9440, help="the first of three ports: the fake provider,"
                        " the relay, recall")
    parser.add_argument("--write", type=Path, help="put the table into this Markdown file (docs/PERFORMANCE.md)")
    args = parser.parse_args()
    table = report(asyncio.run(run(args)), args)
    print(table)
    if args.write:
        write_section(args.write, table, MARKS, "Replay at scale (issue 21)")


if __name__ == "__main__":
    main()
