"""What a turn's writes cost the store: CPU per turn, in process (run by hand).

An emulated turn saves its node twice: in progress, before its provider is asked (so that a
crash or a delete finds it), then ended, with its exchange. This saves 2,000 such turns of
typical length into a fresh SQLite file and reports the process's CPU per turn (CPU time, not
wall time: steadier on a shared machine). `--baseline DIR` measures another tree's store the
same way (a `git worktree` of an earlier commit), alternating runs.

    python bench/store_writes.py [--turns 2000] [--runs 3] [--baseline /path/to/worktree]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(turns: int) -> float:
    """CPU seconds per turn of the store in this process's tree (sys.path[0])."""
    import asyncio

    from proxy.model import COMPLETED, IN_PROGRESS, MODEL, USER, Interaction, Part, Turn, Usage
    from proxy.store.sqlite import SQLiteStore

    text = "A user message of a typical length, about twenty words, asking the model something specific."
    reply = "A model reply of a typical length, around forty words, " + "that answers the question well " * 6

    async def run() -> float:
        store = await SQLiteStore.open(Path(tempfile.mkdtemp(prefix="recall-bench-")) / "writes.db")
        try:
            return await write(store)
        finally:
            await store.close()  # its connections' threads would keep the process alive

    async def write(store: SQLiteStore) -> float:
        started = time.process_time()
        for n in range(turns):
            now = time.time()
            it = Interaction(id=f"v1_w{n}", owner="o", upstream="u", front="gemini-interactions", mode="emulate",
                             model="m", status=IN_PROGRESS, input=[Turn(USER, [Part("text", text=text)])],
                             output=[], created=now, updated=now)
            await store.save_interaction(it)
            it.status, it.usage = COMPLETED, Usage(5, 40)
            it.output = [Turn(MODEL, [Part("text", text=reply)])]
            await store.save_interaction(it)
        return (time.process_time() - started) / turns

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(measure(args.turns))
        return
    trees = {"this tree": ROOT, **({"baseline": args.baseline} if args.baseline else {})}
    results: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.runs):
        for name, tree in trees.items():  # each in a process of its own, importing that tree's recall
            out = subprocess.run([sys.executable, str(ROOT / "bench" / "store_writes.py"), "--child", "--turns",
                                  str(args.turns)], cwd=tree, env={"PYTHONPATH": str(tree)}, capture_output=True,
                                 text=True, check=True)
            results[name].append(float(out.stdout.strip()))
    for name, values in results.items():
        print(f"{name}: {1e6 * min(values):.0f} µs CPU per turn (best of {len(values)}; all: "
              f"{', '.join(f'{1e6 * v:.0f}' for v in values)})")


if __name__ == "__main__":
    main()
