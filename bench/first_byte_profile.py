"""What recall does per streamed request, counted (run by hand).

Starts bench/fake_provider.py in a process of its own and a recall (native or
emulate, recording on) on a thread of this process with its own event loop, sends
N streamed Gemini Interactions creates one after another, and profiles recall's
loop thread with cProfile: function calls per request and the functions with the
most own time (the SQLite threads are not in it). Call counts do not drift with
the machine's load, so this is the instrument for "what runs per request"; the
first-byte times it prints are for orientation only (the ratios to the minimal
relay come from bench/proxy_overhead.py). With `--chunks 0` the provider's stream
is five events, so what is counted is mostly what a stream costs before and
around its first event.

    python bench/first_byte_profile.py [--mode emulate|native] [--requests 2000] [--chunks 0] [--top 30]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.config import Config, Upstream  # noqa: E402
from proxy.http.app import start  # noqa: E402

STREAM_BODY = orjson.dumps({"model": "bench-model", "input": "Hello, stream please.", "stream": True})
HEADERS = {"x-goog-api-key": "bench-key", "content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RecallThread:
    """A recall on a thread of its own, with its own event loop (the one profiled)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, work):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(60)

    def call(self, fn) -> None:  # type: ignore[no-untyped-def]
        """Run `fn` on the loop's thread (cProfile profiles the thread that enables it)."""
        done = threading.Event()

        def wrapped() -> None:
            fn()
            done.set()

        self.loop.call_soon_threadsafe(wrapped)
        done.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def wait_up(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        try:
            async with session.post(url, data=b"{}") as answer:
                await answer.read()
                return
        except aiohttp.ClientError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def main(args: argparse.Namespace) -> None:
    provider_port = free_port()
    provider = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_provider.py"), "--port",
                                 str(provider_port), "--chunks", str(args.chunks)])
    recall = RecallThread()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            config = Config(host="127.0.0.1", port=0)
            config.upstreams = {"bench": Upstream("bench", f"http://127.0.0.1:{provider_port}", "gemini",
                                                  state=args.mode)}
            runner, port = recall.run(start(config, Path(scratch) / "recall.db"))
            url = f"http://127.0.0.1:{port}/bench/v1/interactions"
            profile = cProfile.Profile()
            firsts: list[float] = []
            async with aiohttp.ClientSession() as session:
                await wait_up(session, f"http://127.0.0.1:{provider_port}/v1/interactions")

                async def one() -> None:
                    started = time.perf_counter()
                    async with session.post(url, data=STREAM_BODY, headers=HEADERS) as answer:
                        assert answer.status == 200, await answer.read()
                        first = True
                        async for _chunk in answer.content.iter_any():
                            if first:
                                firsts.append(time.perf_counter() - started)
                                first = False

                for _ in range(50):  # warm: connections, the SQLite page cache
                    await one()
                firsts.clear()
                recall.call(profile.enable)
                for _ in range(args.requests):
                    await one()
                recall.call(profile.disable)
            recall.run(runner.cleanup())
    finally:
        recall.stop()
        provider.terminate()
        provider.wait(10)
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    print(f"recall {args.mode}, streams of {args.chunks} deltas: "
          f"{stats.total_calls / args.requests:,.0f} function calls per request on recall's loop; "  # type: ignore[attr-defined]
          f"first byte p50 {statistics.median(firsts) * 1000:.2f} ms (profiled)")
    stats.sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["emulate", "native"], default="emulate")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=0)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="pstats sort key: tottime, cumulative, ncalls")
    asyncio.run(main(parser.parse_args()))
