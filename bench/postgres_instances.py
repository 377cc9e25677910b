"""PostgreSQL against SQLite, and one, two and three instances on one database (run by hand).

Starts a real PostgreSQL (Debian's binaries, a cluster in a temp directory: the tests' own
tests/support/postgres.py), the fast fake provider (bench/fake_provider.py), and recall in
emulate mode with recording on: one instance on a SQLite file, and three on one PostgreSQL
database. Then, round by round, interleaved:

- per-turn cost: two-turn chains (a create, then a follow-up chained by its id) at concurrency
  1, on the SQLite instance and on one PostgreSQL instance: p50 ms per turn and the recall
  process's CPU per turn;
- throughput: two-turn chains at concurrency 32 on one, two and three PostgreSQL instances
  (each chain's follow-up on another instance than its create when there are several), and on
  SQLite. The fake provider, PostgreSQL and the load generator share the machine with them.

    python bench/postgres_instances.py [--rounds 3] [--chains 200] [--seconds 3] [--write docs/PERFORMANCE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from proxy_overhead import Processes, cpu_seconds, free_port, post, wait_up, write_section  # noqa: E402

from tests.support.postgres import PostgresServer  # noqa: E402

FIRST = orjson.dumps({"model": "bench-model", "input": "Hello, how are you?"})
MARK_START, MARK_END = "<!-- postgres-instances:start -->", "<!-- postgres-instances:end -->"


async def chain(session: aiohttp.ClientSession, first_url: str, second_url: str) -> None:
    created = orjson.loads(await post(session, first_url, FIRST))
    await post(session, second_url, orjson.dumps({"model": "bench-model", "input": "And then?",
                                                  "previous_interaction_id": created["id"]}))


async def per_turn(session: aiohttp.ClientSession, url: str, pid: int, chains: int) -> tuple[list[float], float]:
    """Seconds per turn (half a chain) at c=1, and the process's CPU seconds per turn."""
    times = []
    before = cpu_seconds(pid)
    for _ in range(chains):
        started = time.perf_counter()
        await chain(session, url, url)
        times.append((time.perf_counter() - started) / 2)
    return times, (cpu_seconds(pid) - before) / (2 * chains)


async def throughput(session: aiohttp.ClientSession, urls: list[str], seconds: float, workers: int) -> float:
    """Chains per second at `workers` concurrent chains, round-robin over `urls` (a chain's
    follow-up on the next instance)."""
    done = 0
    deadline = time.perf_counter() + seconds
    turn = itertools.count()

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            n = next(turn)
            await chain(session, urls[n % len(urls)], urls[(n + 1) % len(urls)])
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done / (time.perf_counter() - started)


def serve_args(workdir: Path, name: str, provider: str, database: str, port: int) -> list[str]:
    config = workdir / f"{name}.toml"
    config.write_text(f'[upstreams.bench]\nurl = "{provider}"\napi = "gemini"\nstate = "emulate"\n')
    return ["-m", "proxy", "serve", "--config", str(config), "--db", database, "--port", str(port)]


async def run(args: argparse.Namespace) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="recall-bench-pg-"))
    cluster = PostgresServer.start(Path(tempfile.mkdtemp(prefix="recall-bench-pgdata-")))
    procs = Processes()
    try:
        provider = f"http://127.0.0.1:{free_port()}"
        procs.start("bench/fake_provider.py", "--port", provider.rsplit(":", 1)[1])
        url = cluster.new_database()
        sqlite_port = free_port()
        sqlite = procs.start(*serve_args(workdir, "sqlite", provider, str(workdir / "recall.db"), sqlite_port))
        pg_ports = [free_port() for _ in range(3)]
        # The first migrates; the others find the schema there.
        pg = [procs.start(*serve_args(workdir, f"pg{n}", provider, url, port)) for n, port in enumerate(pg_ports)]
        sqlite_url = f"http://127.0.0.1:{sqlite_port}/bench/v1/interactions"
        pg_urls = [f"http://127.0.0.1:{port}/bench/v1/interactions" for port in pg_ports]
        turns: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        cpu: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        rates: dict[str, list[float]] = {"sqlite": [], "postgres ×1": [], "postgres ×2": [], "postgres ×3": []}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for port in (sqlite_port, *pg_ports):
                await wait_up(session, f"http://127.0.0.1:{port}/_recall/health")
            for target in (sqlite_url, *pg_urls):  # warm up: connections, pools, first paths
                for _ in range(20):
                    await chain(session, target, target)
            for _ in range(args.rounds):
                for name, target, proc in (("sqlite", sqlite_url, sqlite), ("postgres", pg_urls[0], pg[0])):
                    times, per = await per_turn(session, target, proc.pid, args.chains)
                    turns[name] += times
                    cpu[name].append(per)
                rates["sqlite"].append(await throughput(session, [sqlite_url], args.seconds, 32))
                for count in (1, 2, 3):
                    rates[f"postgres ×{count}"].append(await throughput(session, pg_urls[:count], args.seconds, 32))
    finally:
        procs.stop()
        cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return report(args, turns, cpu, rates)


def report(args: argparse.Namespace, turns: dict[str, list[float]], cpu: dict[str, list[float]],
           rates: dict[str, list[float]]) -> str:
    sqlite_p50, pg_p50 = statistics.median(turns["sqlite"]), statistics.median(turns["postgres"])
    sqlite_cpu, pg_cpu = statistics.median(cpu["sqlite"]), statistics.median(cpu["postgres"])
    lines = [
        f"Command: `python bench/postgres_instances.py --rounds {args.rounds} --chains {args.chains} "
        f"--seconds {args.seconds}` ({time.strftime('%Y-%m-%d')}; {os.cpu_count()} cores; PostgreSQL, the fake"
        " provider, every recall and the load generator on this one machine).",
        "",
        "Per turn (two-turn Gemini Interactions chains in emulate mode, recording on, c=1):",
        "",
        "| store | p50 ms per turn | CPU ms per turn (recall) | × SQLite's p50 |",
        "|---|---|---|---|",
        f"| SQLite | {1000 * sqlite_p50:.2f} | {1000 * sqlite_cpu:.2f} | 1.00 |",
        f"| PostgreSQL | {1000 * pg_p50:.2f} | {1000 * pg_cpu:.2f} | {pg_p50 / sqlite_p50:.2f} |",
        "",
        "Throughput (chains/s at c=32; with several instances a chain's follow-up goes to the next one):",
        "",
        "| target | chains/s (median of rounds) | × one PostgreSQL instance |",
        "|---|---|---|",
    ]
    one = statistics.median(rates["postgres ×1"])
    for name, values in rates.items():
        lines.append(f"| {name} | {statistics.median(values):,.0f} | {statistics.median(values) / one:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chains", type=int, default=200, help="sequential chains per store per round")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of c=32 load per target per round")
    parser.add_argument("--write", type=Path, help="put the tables into this Markdown file (docs/PERFORMANCE.md)")
    args = parser.parse_args()
    table = asyncio.run(run(args))
    print(table)
    if args.write:
        write_section(args.write, table, (MARK_START, MARK_END), "PostgreSQL")


if __name__ == "__main__":
    main()
