"""What recall costs per request, side by side with a minimal relay (run by hand).

Starts a fast fake provider, the minimal aiohttp relay (the floor) and recall
three ways (native relay with recording, emulate with recording, replay hits),
each in its own process, then measures them interleaved, round by round:
added latency at concurrency 1, requests/s at concurrency 32, CPU per request
of the proxy process, streamed first-byte and per-chunk overhead, and two-turn
chains (a create, then a follow-up chained by the id it returned: in emulate mode
recall rebuilds the history for the second turn) at concurrency 1 and 32. Then the
store on its own: history rebuild time and database bytes per turn against
chain depth, and replay hit latency among 100,000 recordings.

    python bench/proxy_overhead.py [--rounds 5] [--requests 200] [--seconds 3] [--write docs/PERFORMANCE.md]

`--baseline DIR` also starts the recall of another tree (a `git worktree` of an earlier
commit) as two more targets, interleaved with the rest: a before/after measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.auth import fingerprint  # noqa: E402
from proxy.model import COMPLETED, MODEL, USER, Interaction, Part, Turn, Usage  # noqa: E402
from proxy.pipeline.state import history  # noqa: E402
from proxy.store.sqlite import SQLiteStore, copy_database  # noqa: E402

BODY = orjson.dumps({"model": "bench-model", "input": "Hello, how are you?"})
STREAM_BODY = orjson.dumps({"model": "bench-model", "input": "Hello, stream please.", "stream": True})
HEADERS = {"x-goog-api-key": "bench-key", "content-type": "application/json"}
TICKS = os.sysconf("SC_CLK_TCK")
MARK_START, MARK_END = "<!-- proxy-overhead:start -->", "<!-- proxy-overhead:end -->"
# How long after a start the first turn of a warmed run comes ([storage] warm_chains reads in the background).
WARM_SETTLE_S = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Target:
    name: str
    url: str  # the interactions endpoint
    pid: int | None = None  # the proxy process, for CPU
    latencies: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    cpu: float = 0.0
    cpu_requests: int = 0
    first_byte: list[float] = field(default_factory=list)
    stream_total: list[float] = field(default_factory=list)
    # Two-turn chains: seconds per chain at c=1, chains/s at c=32, CPU over the c=1 chains.
    chain_latencies: list[float] = field(default_factory=list)
    chain_throughput: list[float] = field(default_factory=list)
    chain_cpu: float = 0.0
    chain_count: int = 0


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        # `python -m proxy` in `cwd` runs the recall of that tree (a baseline's, with --baseline).
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)


async def wait_up(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        try:
            async with session.get(url) as answer:
                await answer.read()
                return
        except aiohttp.ClientError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def recall_args(workdir: Path, name: str, provider: str, state: str, mode: str, port: int,
                event_loop: str | None = None) -> list[str]:
    config = workdir / f"{name}.toml"
    # No [server] key unless asked: a baseline tree from before event_loop would refuse it.
    server = f'[server]\nevent_loop = "{event_loop}"\n' if event_loop else ""
    config.write_text(f'{server}[upstreams.bench]\nurl = "{provider}"\napi = "gemini"\nstate = "{state}"\n')
    return ["-m", "proxy", "serve", "--config", str(config), "--db", str(workdir / f"{name}.db"),
            "--port", str(port), "--mode", mode]


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> bytes:
    async with session.post(url, data=body, headers=HEADERS) as answer:
        data = await answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{url}: {answer.status} {data[:200]!r}")
        return data


async def chain(session: aiohttp.ClientSession, url: str) -> None:
    """A two-turn Gemini Interactions chain: a create, then a follow-up chained by its id."""
    first = orjson.loads(await post(session, url, BODY))
    await post(session, url, orjson.dumps({"model": "bench-model", "input": "And then?",
                                           "previous_interaction_id": first["id"]}))


async def measure_chains(session: aiohttp.ClientSession, target: Target, count: int, seconds: float,
                         workers: int) -> None:
    before = cpu_seconds(target.pid) if target.pid else 0.0
    for _ in range(count):
        started = time.perf_counter()
        await chain(session, target.url)
        target.chain_latencies.append(time.perf_counter() - started)
    if target.pid:
        target.chain_cpu += cpu_seconds(target.pid) - before
        target.chain_count += count
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await chain(session, target.url)
            done += 1

    before = cpu_seconds(target.pid) if target.pid else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    target.chain_throughput.append(done / (time.perf_counter() - started))
    if target.pid:  # CPU per chain over both phases: /proc counts in 10 ms ticks, so the more chains the better
        target.chain_cpu += cpu_seconds(target.pid) - before
        target.chain_count += done


async def measure_latency(session: aiohttp.ClientSession, target: Target, count: int) -> None:
    before = cpu_seconds(target.pid) if target.pid else 0.0
    for _ in range(count):
        started = time.perf_counter()
        await post(session, target.url, BODY)
        target.latencies.append(time.perf_counter() - started)
    if target.pid:
        target.cpu += cpu_seconds(target.pid) - before
        target.cpu_requests += count


async def measure_throughput(session: aiohttp.ClientSession, target: Target, seconds: float, workers: int) -> None:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await post(session, target.url, BODY)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    target.throughput.append(done / (time.perf_counter() - started))


async def measure_stream(session: aiohttp.ClientSession, target: Target, count: int) -> None:
    for _ in range(count):
        started = time.perf_counter()
        first = None
        async with session.post(target.url, data=STREAM_BODY, headers=HEADERS) as answer:
            async for _chunk in answer.content.iter_any():
                if first is None:
                    first = time.perf_counter() - started
        target.first_byte.append(first or 0.0)
        target.stream_total.append(time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def build_chain(path: Path, depth: int) -> str:
    """A chain of `depth` typical turns written straight through the store; returns its last id."""
    store = await SQLiteStore.open(path)
    parent = None
    now = time.time()
    text = "A user message of a typical length, about twenty words, asking the model something specific."
    reply = "A model reply of a typical length, around forty words, " + "that answers the question well " * 6
    for n in range(depth):
        node = Interaction(
            id=f"v1_chain{n:06d}", owner=fingerprint("bench-key"), upstream="bench", front="gemini-interactions",
            mode="emulate", model="bench-model", status=COMPLETED,
            input=[Turn(USER, [Part("text", text=text)])], output=[Turn(MODEL, [Part("text", text=reply)])],
            created=now, updated=now, parent_id=parent, usage=Usage(5, 40, total_tokens=45),
        )
        await store.save_interaction(node)
        parent = node.id
    await store.close()
    assert parent is not None
    return parent


async def first_turns(path: Path, last: str, provider: str, procs: Processes, session: aiohttp.ClientSession,
                      warm_chains: int, port: int) -> list[float]:
    """Seconds per follow-up of `last` through a recall just started on `path`: the first, then 20 more."""
    config = path.with_suffix(".toml")
    config.write_text(f'[storage]\nwarm_chains = {warm_chains}\n'
                      f'[upstreams.bench]\nurl = "{provider}"\napi = "gemini"\nstate = "emulate"\n')
    proc = procs.start("-m", "proxy", "serve", "--config", str(config), "--db", str(path), "--port", str(port))
    await wait_up(session, f"http://127.0.0.1:{port}/_recall/health")
    if warm_chains:
        await asyncio.sleep(WARM_SETTLE_S)
    body = orjson.dumps({"model": "bench-model", "input": "And then?", "previous_interaction_id": last})
    turn_times = []
    for _ in range(21):  # forks of the same node: the history is `depth` turns each time
        started = time.perf_counter()
        await post(session, f"http://127.0.0.1:{port}/bench/v1/interactions", body)
        turn_times.append(time.perf_counter() - started)
    proc.terminate()
    proc.wait(10)
    return turn_times


async def rebuild_figures(workdir: Path, depths: list[int], provider: str, procs: Processes,
                          session: aiohttp.ClientSession, next_port: Callable[[], int] = free_port) -> list[tuple[int, float, float, float, float, float, float]]:
    """Per depth: rebuild ms cold (one recursive query plus decoding) and warm (the chain cache), medians,
    a follow-up turn's ms through recall at that depth (the first after a start with the chain cache
    cold, then the p50 of the next 20; and the first after a start that warmed it), and database
    bytes per turn."""
    rows = []
    for depth in depths:
        path = workdir / f"chain-{depth}.db"
        last = await build_chain(path, depth)
        cold_times, warm_times = [], []
        for _ in range(5):  # a fresh store each time: its chain cache is empty (bench/chain_rebuild.py: CPU, best of N)
            store = await SQLiteStore.open(path)
            for times in (cold_times, warm_times):
                started = time.perf_counter()
                turns = history(await store.chain(last))
                times.append(time.perf_counter() - started)
                assert len(turns) == 2 * depth
            await store.close()
        size = sum(p.stat().st_size for p in workdir.glob(f"chain-{depth}.db*"))
        # The warmed start gets the chain as built: the cold start's forks would be its threads' newest nodes.
        copy_database(path, workdir / f"chain-{depth}-warmed.db")
        cold = await first_turns(path, last, provider, procs, session, warm_chains=0, port=next_port())
        warmed = await first_turns(workdir / f"chain-{depth}-warmed.db", last, provider, procs, session,
                                   warm_chains=32, port=next_port())
        rows.append((depth, statistics.median(cold_times) * 1000, statistics.median(warm_times) * 1000, cold[0] * 1000,
                     statistics.median(cold[1:]) * 1000, warmed[0] * 1000, size / depth))
    return rows


def seed_recordings(db_path: Path, count: int) -> None:
    """`count` recorded exchanges with distinct replay keys, beside the benchmark's own."""
    with sqlite3.connect(db_path) as db:
        db.executemany(
            "INSERT INTO exchanges (upstream, method, path, status, stored, request_body, response_body,"
            " created_at, cache_key, cache) VALUES ('bench', 'POST', '/v1/interactions', 200, 1, ?, ?, ?, ?, 'live')",
            ((b'{"model": "m", "input": "other %d"}' % n, b'{"id": "v1_x"}', time.time(), f"seed{n:08d}")
             for n in range(count)),
        )


async def run_chains(args: argparse.Namespace) -> str:
    """The chain table alone (--only-chains)."""
    workdir = Path(tempfile.mkdtemp(prefix="recall-bench-"))
    procs = Processes()
    try:
        ports = itertools.count(args.port_base).__next__ if args.port_base else free_port
        port = ports()
        procs.start("bench/fake_provider.py", "--port", str(port), "--chunks", str(args.chunks))
        async with aiohttp.ClientSession() as session:
            rebuild = await rebuild_figures(workdir, args.depths, f"http://127.0.0.1:{port}", procs, session, ports)
    finally:
        procs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return (f"Command: `python bench/proxy_overhead.py --only-chains --depths {' '.join(map(str, args.depths))}`"
            f" ({time.strftime('%Y-%m-%d')}; {os.cpu_count()} cores)\n\n{chain_table(rebuild)}")


async def run(args: argparse.Namespace) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="recall-bench-"))
    procs = Processes()
    try:
        ports = {name: free_port() for name in ("provider", "relay", "native", "emulate", "replay",
                                                 "native-baseline", "emulate-baseline", "replay-baseline",
                                                 "relay-uvloop", "emulate-asyncio")}
        provider = f"http://127.0.0.1:{ports['provider']}"
        procs.start("bench/fake_provider.py", "--port", str(ports["provider"]), "--chunks", str(args.chunks))
        relay = procs.start("bench/minimal_relay.py", "--port", str(ports["relay"]), "--upstream", provider)
        native = procs.start(*recall_args(workdir, "native", provider, "native", "live", ports["native"]))
        emulate = procs.start(*recall_args(workdir, "emulate", provider, "emulate", "live", ports["emulate"]))
        loops: list[Target] = []
        if args.loops:  # the same relay on uvloop, and recall on asyncio's loop: each loop's share of the ratios
            relay_uv = procs.start("bench/minimal_relay.py", "--port", str(ports["relay-uvloop"]), "--upstream",
                                   provider, "--uvloop")
            emulate_asyncio = procs.start(*recall_args(workdir, "emulate-asyncio", provider, "emulate", "live",
                                                       ports["emulate-asyncio"], event_loop="asyncio"))
            loops = [Target("minimal relay on uvloop", f"http://127.0.0.1:{ports['relay-uvloop']}/v1/interactions",
                            relay_uv.pid),
                     Target("recall emulate (recording) on asyncio's loop",
                            f"http://127.0.0.1:{ports['emulate-asyncio']}/bench/v1/interactions", emulate_asyncio.pid)]
        baseline: list[Target] = []
        if args.baseline:
            for state in ("native", "emulate"):
                name = f"{state}-baseline"
                proc = procs.start(*recall_args(workdir, name, provider, state, "live", ports[name]), cwd=args.baseline)
                baseline.append(Target(f"recall {state} (recording), baseline", f"http://127.0.0.1:{ports[name]}"
                                       "/bench/v1/interactions", proc.pid))
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            for name in ("native", "emulate", *(("native-baseline", "emulate-baseline") if args.baseline else ()),
                         *(("emulate-asyncio",) if args.loops else ())):
                await wait_up(session, f"http://127.0.0.1:{ports[name]}/_recall/health")
            await asyncio.sleep(0.5)
            # Record the benchmark's request once, then replay it from a database that
            # also holds many other recordings.
            await post(session, f"http://127.0.0.1:{ports['emulate']}/bench/v1/interactions", BODY)
            copy_database(workdir / "emulate.db", workdir / "replay.db")
            seed_recordings(workdir / "replay.db", args.recordings)
            replay = procs.start(*recall_args(workdir, "replay", provider, "emulate", "replay", ports["replay"]))
            await wait_up(session, f"http://127.0.0.1:{ports['replay']}/_recall/health")
            replays = [Target(f"recall replay hit ({args.recordings:,} recordings)",
                              f"http://127.0.0.1:{ports['replay']}/bench/v1/interactions", replay.pid)]
            if args.baseline:
                # The same recordings (a replay key does not depend on recall's version), in a file
                # of the baseline's own schema: a recall refuses a file migrated past what it knows.
                await post(session, f"http://127.0.0.1:{ports['emulate-baseline']}/bench/v1/interactions", BODY)
                copy_database(workdir / "emulate-baseline.db", workdir / "replay-baseline.db")
                seed_recordings(workdir / "replay-baseline.db", args.recordings)
                proc = procs.start(*recall_args(workdir, "replay-baseline", provider, "emulate", "replay",
                                                ports["replay-baseline"]), cwd=args.baseline)
                await wait_up(session, f"http://127.0.0.1:{ports['replay-baseline']}/_recall/health")
                replays.append(Target(f"recall replay hit ({args.recordings:,} recordings), baseline",
                                      f"http://127.0.0.1:{ports['replay-baseline']}/bench/v1/interactions", proc.pid))
            targets = [
                Target("direct to the provider", f"{provider}/v1/interactions"),
                Target("minimal relay", f"http://127.0.0.1:{ports['relay']}/v1/interactions", relay.pid),
                Target("recall native (recording)", f"http://127.0.0.1:{ports['native']}/bench/v1/interactions", native.pid),
                Target("recall emulate (recording)", f"http://127.0.0.1:{ports['emulate']}/bench/v1/interactions", emulate.pid),
                *loops,
                *baseline,
                *replays,
            ]
            for target in targets:  # warm up: connections, caches, the JIT-less interpreter's first paths
                for _ in range(50):
                    await post(session, target.url, BODY)
            for _ in range(args.rounds):
                for target in targets:
                    await measure_latency(session, target, args.requests)
                for target in targets:
                    await measure_throughput(session, target, args.seconds, 32)
                for target in targets[:-len(replays)]:  # a replay hit is not streamed
                    await measure_stream(session, target, max(5, args.requests // 10))
                for target in targets[:-len(replays)]:  # nor chained (its follow-up was never recorded)
                    await measure_chains(session, target, max(10, args.requests // 4), args.seconds, 32)
            rebuild = await rebuild_figures(workdir, args.depths, provider, procs, session)
    finally:
        procs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return report(targets, rebuild, args)


def report(targets: list[Target], rebuild: list[tuple[int, float, float, float, float, float, float]],
           args: argparse.Namespace) -> str:
    direct, relay = targets[0], targets[1]
    base50, base99 = pct(direct.latencies, 0.5), pct(direct.latencies, 0.99)
    relay_added = pct(relay.latencies, 0.5) - base50
    relay_rps = statistics.median(relay.throughput)
    lines = [
        f"Command: `python bench/proxy_overhead.py --rounds {args.rounds} --requests {args.requests} "
        f"--seconds {args.seconds}{' --loops' if args.loops else ''}"
        f"{' --baseline ' + str(args.baseline) if args.baseline else ''}`"
        f" ({time.strftime('%Y-%m-%d')}; {os.cpu_count()} cores; targets interleaved"
        f" round by round; the fake provider and the load generator share the machine).",
        "",
        "| target | p50 ms | p99 ms | added p50 ms | added p99 ms | × relay's added p50 | req/s at c=32 | "
        "share of relay's req/s | CPU ms/request |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        p50, p99 = pct(t.latencies, 0.5), pct(t.latencies, 0.99)
        added = p50 - base50
        rps = statistics.median(t.throughput)
        ratio = "" if t is direct else f"{added / relay_added:.2f}"
        share = "" if t is direct else f"{rps / relay_rps:.0%}"
        cpu = f"{1000 * t.cpu / t.cpu_requests:.2f}" if t.cpu_requests else ""
        lines.append(f"| {t.name} | {1000 * p50:.2f} | {1000 * p99:.2f} | {'' if t is direct else f'{1000 * added:.2f}'} "
                     f"| {'' if t is direct else f'{1000 * (p99 - base99):.2f}'} | {ratio} | {rps:,.0f} | {share} | {cpu} |")
    lines += ["", f"Streams of {args.chunks} events (median of {len(direct.first_byte)}):", "",
              "| target | first byte ms | added first byte ms | × relay's | whole stream ms | added per event µs |",
              "|---|---|---|---|---|---|"]
    fb0, total0 = statistics.median(direct.first_byte), statistics.median(direct.stream_total)
    relay_fb = statistics.median(relay.first_byte) - fb0
    for t in (t for t in targets if t.first_byte):
        fb, total = statistics.median(t.first_byte), statistics.median(t.stream_total)
        lines.append(f"| {t.name} | {1000 * fb:.2f} | {'' if t is direct else f'{1000 * (fb - fb0):.2f}'} | "
                     f"{'' if t is direct else f'{(fb - fb0) / relay_fb:.2f}'} | {1000 * total:.2f} | "
                     f"{'' if t is direct else f'{1e6 * (total - total0) / args.chunks:.1f}'} |")
    lines += ["", "Two-turn chains (a create, then a follow-up chained by its id; recall emulate rebuilds the"
              " history for the second; CPU per chain over the chains of both phases), "
              f"{len(direct.chain_latencies)} at c=1 and {args.seconds:g} s at c=32 per target per round:", "",
              "| target | chain p50 ms | added p50 ms | × relay's added | chains/s at c=32 | share of relay's |"
              " CPU ms/chain | × relay's CPU |", "|---|---|---|---|---|---|---|---|"]
    chain0 = pct(direct.chain_latencies, 0.5)
    relay_chain_added = pct(relay.chain_latencies, 0.5) - chain0
    relay_chains = statistics.median(relay.chain_throughput)
    relay_chain_cpu = relay.chain_cpu / relay.chain_count if relay.chain_count else 0.0
    for t in (t for t in targets if t.chain_latencies):
        p50 = pct(t.chain_latencies, 0.5)
        cps = statistics.median(t.chain_throughput)
        cpu = t.chain_cpu / t.chain_count if t.chain_count else 0.0
        lines.append(f"| {t.name} | {1000 * p50:.2f} | {'' if t is direct else f'{1000 * (p50 - chain0):.2f}'} | "
                     f"{'' if t is direct else f'{(p50 - chain0) / relay_chain_added:.2f}'} | {cps:,.0f} | "
                     f"{'' if t is direct else f'{cps / relay_chains:.0%}'} | {f'{1000 * cpu:.2f}' if cpu else ''} | "
                     f"{f'{cpu / relay_chain_cpu:.2f}' if cpu and relay_chain_cpu else ''} |")
    return "\n".join([*lines, "", chain_table(rebuild)])


def chain_table(rebuild: list[tuple[int, float, float, float, float, float, float]]) -> str:
    lines = ["Chains built straight through the store, then continued through recall (emulate mode, the whole"
             " history sent upstream each turn). *Rebuild*: `SQLiteStore.chain` + `history` in the bench's process,"
             " median of 5 fresh stores, cold (one recursive query plus decoding) and warm (the chain cache);"
             " *first turn*: a follow-up's total"
             " time through recall, the first after a start with `[storage] warm_chains = 0` (cold) and the"
             f" first {WARM_SETTLE_S:g} s after a start that warms the cache (warmed, the default); *next turns*:"
             " the p50 of the 20 after the cold first; *bytes per turn*: the database file over the depth, and"
             " the growth per turn from the previous depth:", "",
             "| depth | rebuild cold ms | rebuild warm ms | first turn ms, cold | first turn ms, warmed |"
             " next turns p50 ms | cold rebuild / cold first turn | warm rebuild / warmed first turn |"
             " warm / next turn | db bytes per turn | growth per added turn |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    previous: tuple[int, float] | None = None
    for depth, cold, warm, first, following, warmed_first, per_turn in rebuild:
        growth = "" if previous is None else f"{(per_turn * depth - previous[1]) / (depth - previous[0]):,.0f}"
        lines.append(f"| {depth:,} | {cold:.2f} | {warm:.3f} | {first:.2f} | {warmed_first:.2f} | {following:.2f} |"
                     f" {cold / first:.1%} | {warm / warmed_first:.1%} | {warm / following:.1%} | {per_turn:,.0f} |"
                     f" {growth} |")
        previous = (depth, per_turn * depth)
    return "\n".join(lines)


def write_section(path: Path, table: str, marks: tuple[str, str] = (MARK_START, MARK_END),
                  heading: str = "Proxy overhead") -> None:
    """Put `table` between `marks` in the Markdown file `path` (a new `heading` section if they are not there)."""
    start, end = marks
    text = path.read_text() if path.exists() else "# Performance\n"
    section = f"{start}\n{table}\n{end}"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per target per round")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of c=32 load per target per round")
    parser.add_argument("--chunks", type=int, default=100, help="events per streamed reply")
    parser.add_argument("--recordings", type=int, default=100_000, help="other recordings in the replay database")
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 100, 1_000, 10_000])
    parser.add_argument("--loops", action="store_true", help="also measure the relay on uvloop and recall emulate"
                        " on asyncio's loop (recall serve picks uvloop where it is installed)")
    parser.add_argument("--baseline", type=Path, help="also measure the recall of this tree (a worktree of an"
                        " earlier commit), interleaved with the others: a before/after in one run")
    parser.add_argument("--write", type=Path, help="put the tables into this Markdown file (docs/PERFORMANCE.md)")
    parser.add_argument("--only-chains", action="store_true", help="only the chain depth table (no relay targets)")
    parser.add_argument("--port-base", type=int, help="--only-chains: the first of the ports used (the fake provider's, then each recall's; else free ones)")
    args = parser.parse_args()
    table = asyncio.run(run_chains(args) if args.only_chains else run(args))
    print(table)
    if args.write and not args.only_chains:
        write_section(args.write, table)


if __name__ == "__main__":
    main()
