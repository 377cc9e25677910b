"""Peak memory of the audit commands over a big database (a benchmark, not a test).

Builds databases of 1,000 and 10,000 interactions (threads of four turns, a
few hundred words each way, with their recorded exchanges) straight through
SQLiteStore, then runs `recall ls`, `search`, `export` (JSONL and Markdown),
`stats` and `rm` over each in a fresh subprocess and reports that process's
peak RSS, the peak of Python allocations (tracemalloc) and the wall time.
Flat figures from 1k to 10k mean the commands stream instead of loading the
database.

    .venv/bin/python bench/audit_memory.py [--sizes 1000,10000] [--keep DIR]

`--write-cost` instead times building 10,000 interactions with and without
the full-text search triggers: what the index adds to the write path.

    .venv/bin/python bench/audit_memory.py --write-cost
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.model import MODEL, TEXT, USER, Interaction, Part, Turn, Usage  # noqa: E402
from proxy.store import Exchange, SQLiteStore  # noqa: E402

TURNS_PER_THREAD = 4
RARE_WORD = "quetzalcoatlus"  # planted in one interaction in a thousand
_WORDS = ("the a of to and in is it you that he was for on are with as his they be at one have this from"
          " or had by word but what some we can out other were all there when up use your how said an each"
          " she which do their time if will way about many then them write would like so these her long make"
          " thing see him two has look more day could go come did number sound no most people my over know"
          " water than call first who may down side been now find any new work part take get place made live"
          " where after back little only round man year came show every good me give our under name very"
          " through just form sentence great think say help low line differ turn cause much mean before move"
          " right boy old too same tell does set three want air well also play small end put home read hand"
          " port large spell add even land here must big high such follow act why ask men change went light").split()


def _text(rng: random.Random, words: int, rare: bool) -> str:
    chosen = rng.choices(_WORDS, k=words)
    if rare:
        chosen[rng.randrange(words)] = RARE_WORD
    return " ".join(chosen).capitalize() + "."


async def build(path: Path, interactions: int, seed: int = 8) -> None:
    rng = random.Random(seed)
    store = await SQLiteStore.open(path)
    start = time.time() - 30 * 86400
    pending = []
    parent: Interaction | None = None
    for n in range(interactions):
        if n % TURNS_PER_THREAD == 0:
            parent = None
        said = _text(rng, 80, rare=n % 1000 == 500)
        answer = _text(rng, 240, rare=False)
        created = start + n * 60
        node = Interaction(
            id=f"v1_bench{n:08d}", owner="k_bench", upstream=rng.choice(("gemini", "openai", "anthropic")),
            front="gemini-interactions", mode="emulate", model=rng.choice(("gemini-3-flash", "gpt-5", "claude-4")),
            status="completed", input=[Turn(USER, [Part(TEXT, text=said)])],
            output=[Turn(MODEL, [Part(TEXT, text=answer)])], created=created, updated=created + 1.5,
            parent_id=parent.id if parent else None, root_id=parent.root_id if parent else None,
            usage=Usage(input_tokens=100 + n % 50, output_tokens=300),
        )
        exchange = Exchange(
            upstream=node.upstream, method="POST", path="/v1/interactions", created=created, status=200,
            latency_ms=200 + n % 300, model=node.model, input_tokens=100, output_tokens=300,
            request_headers={"content-type": "application/json"},
            request_body=json.dumps({"model": node.model, "input": said}).encode(),
            response_headers={"content-type": "application/json"},
            response_body=json.dumps({"id": node.id, "outputs": [{"type": "text", "text": answer}]}).encode(),
        )
        pending.append(store.save_interaction(node, exchange))
        parent = node
        if len(pending) == 500:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    await store.close()


def measure(args: list[str]) -> None:
    """Run one `recall` command in this process, output to /dev/null; print its peaks as JSON."""
    import contextlib
    import io
    import tracemalloc

    from click.testing import CliRunner  # noqa: F401  (imported before measuring: not the command's cost)

    from proxy.cli.main import main

    tracemalloc.start()
    began = time.perf_counter()
    with open("/dev/null", "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(io.StringIO()):
        try:
            main.main(args, prog_name="recall", standalone_mode=False)
        except SystemExit as exit_:
            if exit_.code:
                raise
    elapsed = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    print(json.dumps({"seconds": elapsed, "python_peak_mb": peak / 2**20, "max_rss_mb": _peak_rss_kb() / 1024}))


def _peak_rss_kb() -> int:
    """This process's peak resident set. On Linux VmHWM, which belongs to the
    process image: ru_maxrss would also count the forking parent's pages."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_measured(args: list[str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--measure", "--", *args], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_cost(size: int = 10_000, rounds: int = 3) -> None:
    """Best-of-`rounds` time to store `size` interactions, with and without the search triggers."""
    from proxy.store import sqlite as store_sqlite

    prepare = store_sqlite._prepare

    def without_search(db: sqlite3.Connection) -> None:
        prepare(db)
        for name in ("search_before_insert", "search_after_insert", "search_after_update", "search_after_delete"):
            db.execute(f"DROP TRIGGER {name}")

    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="recall-bench-") as folder:
        for _ in range(rounds):
            for label, prepared in (("with search index", prepare), ("without", without_search)):
                store_sqlite._prepare = prepared
                began = time.perf_counter()
                asyncio.run(build(Path(folder) / f"{label}-{time.monotonic_ns()}.db", size))
                best[label] = min(best.get(label, float("inf")), time.perf_counter() - began)
    store_sqlite._prepare = prepare
    extra_ms = (best["with search index"] - best["without"]) / size * 1000
    print(f"{size:,} interactions stored: {best['with search index']:.2f} s with the search index,"
          f" {best['without']:.2f} s without: {extra_ms:.2f} ms more per interaction")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="interaction counts, comma-separated")
    parser.add_argument("--keep", type=Path, help="build the databases in this folder (and keep them)")
    parser.add_argument("--write-cost", action="store_true", help="time writes with and without the search triggers")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        measure(options.command)
        return
    if options.write_cost:
        write_cost()
        return
    if options.keep:
        options.keep.mkdir(parents=True, exist_ok=True)
        report(options.keep, options.sizes)
    else:
        with tempfile.TemporaryDirectory(prefix="recall-bench-") as folder:
            report(Path(folder), options.sizes)


def report(folder: Path, sizes: str) -> None:
    """Build a database of each size in `folder` and print the Markdown table."""
    print("| interactions | db size | command | peak RSS | Python peak | time |")
    print("|---:|---:|---|---:|---:|---:|")
    baseline = run_measured(["--version"])
    print(f"| - | - | `recall --version` (interpreter + imports) | {baseline['max_rss_mb']:.1f} MB"
          f" | {baseline['python_peak_mb']:.2f} MB | {baseline['seconds']:.2f} s |")
    for size in (int(s) for s in sizes.split(",")):
        db = folder / f"bench-{size}.db"
        for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            stale.unlink(missing_ok=True)
        began = time.perf_counter()
        asyncio.run(build(db, size))
        print(f"built {db} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        megabytes = sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists()) / 2**20
        commands = [
            ["ls", "--limit", "50"],
            ["search", RARE_WORD],
            ["search", "water", "people"],
            ["export"],
            ["export", "--format", "md"],
            ["stats"],
            ["rm", f"v1_bench{size // 2:08d}"],
        ]
        for command in commands:
            figures = run_measured([*command, "--db", str(db)])
            print(f"| {size:,} | {megabytes:.1f} MB | `recall {' '.join(command)}` | {figures['max_rss_mb']:.1f} MB"
                  f" | {figures['python_peak_mb']:.2f} MB | {figures['seconds']:.2f} s |")


if __name__ == "__main__":
    main()
