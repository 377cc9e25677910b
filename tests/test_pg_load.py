"""Load on three recall processes sharing one PostgreSQL database, a client round-robining.

200 chains x 10 turns per front API, every follow-up on another instance than its parent:
no error reaches a client, every turn reaches the provider with its whole history, and
the database holds every acknowledged turn. Then one instance is SIGKILLed mid-load: the
others never stop serving, nothing it acknowledged is lost, and its background runs end
failed within the lease. Behind the `slow` marker (.ci/run runs `pytest -m slow`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from proxy.config import Upstream as UpstreamConfig
from proxy.store.run_leases import HEARTBEAT_S, RUN_LEASE_S

from .support.fake_gemini import FakeGemini
from .support.front_routes import FRONT_ROUTES, FrontRoute, emulated
from .support.load import Report, drive, new_chains, verify_with
from .support.loop_thread import LoopThread
from .support.recall_process import RecallProcess, write_config
from .support.stores import Backend

pytestmark = pytest.mark.slow
pytest.importorskip("asyncpg")

CHAINS, TURNS, INSTANCES = 200, 10, 3


def _start(config: Path, pg_url: str, tmp_path: Path) -> list[RecallProcess]:
    # --db takes the URL as it takes a path (RecallProcess passes it on as it is).
    return [RecallProcess(config, pg_url, tmp_path / f"recall-{n}.log").start()  # type: ignore[arg-type]
            for n in range(INSTANCES)]


def _query(pg_url: str) -> Any:
    return lambda sql, *params: asyncio.run(Backend("postgres", pg_url).query(sql, *params))


@pytest.mark.parametrize("route", FRONT_ROUTES, ids=lambda r: r.name)
def test_200_chains_of_10_turns_over_three_instances(route: FrontRoute, loop_thread: LoopThread, tmp_path: Path,
                                                     pg_url: str) -> None:
    upstream = emulated(route)[0]
    fake = upstream.fake()
    loop_thread.run(fake.start())
    config = write_config(tmp_path / "recall.toml",
                          {"up": UpstreamConfig("up", fake.url, upstream.api, state=upstream.state)})
    recalls = _start(config, pg_url, tmp_path)
    chains, report = new_chains(CHAINS), Report()

    async def load() -> None:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
            await drive(session, [r.url for r in recalls], route, chains, TURNS, report, stream_every=5)

    try:
        asyncio.run(load())
        print(f"\n{route.name} over {INSTANCES} instances: {report.summary()}")
        assert report.errors == [], report.errors[:5]
        assert fake.history_mismatches == [], fake.history_mismatches[:5]
        assert report.completed == CHAINS * TURNS
    finally:
        for recall in recalls:
            recall.stop()
        loop_thread.run(fake.stop())
    assert verify_with(_query(pg_url), chains) == []
    assert _query(pg_url)("SELECT count(*) FROM interactions")[0][0] == CHAINS * TURNS


def test_an_instance_killed_mid_load_loses_nothing_and_its_runs_fail_within_the_lease(
        loop_thread: LoopThread, tmp_path: Path, pg_url: str) -> None:
    route = next(r for r in FRONT_ROUTES if r.name == "gemini-interactions")
    fake = FakeGemini()
    loop_thread.run(fake.start())
    config = write_config(tmp_path / "recall.toml", {"up": UpstreamConfig("up", fake.url, "gemini", state="emulate")})
    doomed, *survivors = _start(config, pg_url, tmp_path)
    chains, report = new_chains(60), Report()
    try:
        # Acknowledged turns on the instance to be killed, then background runs it holds.
        async def before() -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                await drive(session, [doomed.url, *[r.url for r in survivors]], route, chains, 3, report)

        asyncio.run(before())
        assert report.errors == [], report.errors[:5]
        fake.hold = asyncio.Event()
        running = [httpx.post(f"{doomed.url}/up/v1beta/interactions", headers={"x-goog-api-key": "k"}, timeout=30,
                              json={"model": "m", "input": f"long run {n}", "background": True}).json()["id"]
                   for n in range(3)]

        async def during() -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                load = asyncio.create_task(drive(session, [r.url for r in survivors], route, chains, 5, report))
                await asyncio.sleep(0.5)
                doomed.kill()
                await load

        asyncio.run(during())
        assert report.errors == [], report.errors[:5]  # the others never stopped serving
        assert fake.history_mismatches == []
        killed_at = time.monotonic()
        deadline = killed_at + RUN_LEASE_S + 2 * HEARTBEAT_S
        statuses: list[str] = []
        while time.monotonic() < deadline:
            statuses = [httpx.get(f"{survivors[0].url}/up/v1beta/interactions/{run}",
                                  headers={"x-goog-api-key": "k"}, timeout=30).json()["status"] for run in running]
            if all(status == "failed" for status in statuses):
                break
            time.sleep(1)
        assert statuses == ["failed"] * len(running)
        print(f"\nthe killed instance's runs failed {time.monotonic() - killed_at:.1f} s after the kill")
    finally:
        if fake.hold is not None:
            loop_thread.loop.call_soon_threadsafe(fake.hold.set)
        for recall in (doomed, *survivors):
            recall.stop()
        loop_thread.run(fake.stop())
    assert verify_with(_query(pg_url), chains) == []
