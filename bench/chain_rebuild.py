"""The cold history rebuild on its own, in process (run by hand).

Builds one chain per depth straight through SQLiteStore (bench/proxy_overhead.py's
build_chain), then times `history(await store.chain(last))` on a store opened fresh
for each try (so the chain cache is empty: the first turn of a chain after a start),
and once more on the same store (warm: the chain cache); then on a store opened with
the start's warming on (warm_chains=32), once it has finished (warmed at start). CPU time of the whole
process (time.process_time, which counts the reader's thread too), best of N, so
that the figure is steady on a shared machine; wall time's median beside it.

    python bench/chain_rebuild.py [--depths 10 100 1000 10000] [--tries 15] [--profile 1000]

`--profile DEPTH` prints cProfile's top functions of one cold rebuild at that depth
instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from proxy_overhead import build_chain  # noqa: E402

from proxy.pipeline.state import history  # noqa: E402
from proxy.store.sqlite import SQLiteStore  # noqa: E402


async def rebuild(store: SQLiteStore, last: str, depth: int) -> tuple[float, float]:
    """One rebuild's (CPU seconds, wall seconds)."""
    cpu, wall = time.process_time(), time.perf_counter()
    turns = history(await store.chain(last))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert len(turns) == 2 * depth, f"rebuilt {len(turns)} turns, expected {2 * depth}"
    return cpu, wall


async def measure(path: Path, last: str, depth: int, tries: int) -> tuple[float, float, float, float]:
    """Best CPU ms cold, median wall ms cold, best CPU ms warm, best CPU ms warmed at start."""
    cold_cpu, cold_wall, warm_cpu, started_cpu = [], [], [], []
    for _ in range(tries):
        store = await SQLiteStore.open(path)
        try:
            cpu, wall = await rebuild(store, last, depth)
            cold_cpu.append(cpu)
            cold_wall.append(wall)
            warm_cpu.append((await rebuild(store, last, depth))[0])
        finally:
            await store.close()
        store = await SQLiteStore.open(path, warm_chains=32)
        try:
            assert store.warming is not None
            await store.warming
            started_cpu.append((await rebuild(store, last, depth))[0])
        finally:
            await store.close()
    return (1000 * min(cold_cpu), 1000 * statistics.median(cold_wall), 1000 * min(warm_cpu),
            1000 * min(started_cpu))


async def profile(path: Path, last: str, depth: int) -> str:
    store = await SQLiteStore.open(path)
    try:
        profiler = cProfile.Profile()
        profiler.enable()
        await rebuild(store, last, depth)
        profiler.disable()
    finally:
        await store.close()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    return out.getvalue()


async def run(args: argparse.Namespace) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="recall-chain-rebuild-"))
    try:
        if args.profile:
            path = workdir / "chain.db"
            return await profile(path, await build_chain(path, args.profile), args.profile)
        lines = [f"Command: `python bench/chain_rebuild.py --depths {' '.join(map(str, args.depths))}"
                 f" --tries {args.tries}` ({time.strftime('%Y-%m-%d')}; best CPU of {args.tries} fresh stores)", "",
                 "| depth | cold CPU ms (best) | cold wall ms (median) | warm CPU ms (best) | warmed at start CPU ms (best) |",
                 "|---|---|---|---|---|"]
        for depth in args.depths:
            path = workdir / f"chain-{depth}.db"
            last = await build_chain(path, depth)
            cold, wall, warm, started = await measure(path, last, depth, args.tries)
            lines.append(f"| {depth:,} | {cold:.2f} | {wall:.2f} | {warm:.3f} | {started:.3f} |")
        return "\n".join(lines)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 100, 1_000, 10_000])
    parser.add_argument("--tries", type=int, default=15, help="fresh stores per depth (the best CPU time is kept)")
    parser.add_argument("--profile", type=int, metavar="DEPTH", help="print a cProfile of one cold rebuild instead")
    print(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
