"""Crash safety: SIGKILL a recall process in the middle of concurrent chains, restart it, repeat.

After every kill: `PRAGMA integrity_check` is ok; every turn any app was told
exists is in the file, completed, with exactly its chain's earlier turns as
its ancestors; every turn whose id an app saw begin (a stream, a task run) is
there (completed, or failed if the kill cut it); nothing is left in progress
after the restart; and the chains go on through the restarted recall with
their whole history (the fake provider refuses any turn that arrives without it).

Behind the `slow` marker: `pytest -m slow` (.ci/run runs it after the fast suite).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from proxy.config import Upstream as UpstreamConfig

from .support import figures, store_checks
from .support.front_routes import FRONT_ROUTES, FrontRoute, emulated, pair_id
from .support.load import Chain, Report, drive, new_chains, verify
from .support.loop_thread import LoopThread
from .support.recall_process import RecallProcess, write_config

pytestmark = pytest.mark.slow

CHAINS = 100
KILLS = 10
TURNS_BETWEEN_KILLS = 250
TURNS_AFTER = 3


async def _until_killed(recall: RecallProcess, route: FrontRoute, chains: list[Chain], report: Report) -> None:
    """Drive every chain until TURNS_BETWEEN_KILLS more turns are done, then SIGKILL recall mid-load."""
    stop = asyncio.Event()
    goal = report.completed + TURNS_BETWEEN_KILLS
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        running = asyncio.create_task(drive(session, recall.url, route, chains, 10_000, report, stream_every=4,
                                            stop=stop))
        while report.completed < goal and not running.done():
            await asyncio.sleep(0.005)
        stop.set()  # from here on, a broken request is the kill's doing, not an error
        recall.kill()
        await running


async def _go_on(recall: RecallProcess, route: FrontRoute, chains: list[Chain], report: Report) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await drive(session, recall.url, route, chains, TURNS_AFTER, report, stream_every=2)


@pytest.mark.parametrize("route", FRONT_ROUTES, ids=pair_id)
def test_sigkill_mid_load_loses_no_acknowledged_turn(route: FrontRoute, loop_thread: LoopThread,
                                                     tmp_path: Path) -> None:
    upstream = emulated(route)[0]
    fake = upstream.fake()
    loop_thread.run(fake.start())
    config = write_config(tmp_path / "recall.toml",
                          {"up": UpstreamConfig("up", fake.url, upstream.api, state=upstream.state)})
    db = tmp_path / "recall.db"
    recall = RecallProcess(config, db, tmp_path / "recall.log").start()
    chains, report = new_chains(CHAINS, keys=8), Report()
    try:
        for kill in range(1, KILLS + 1):
            asyncio.run(_until_killed(recall, route, chains, report))
            assert report.errors == [], report.errors[:5]
            # The file as the kill left it, before anything opens it again.
            assert store_checks.integrity(db) == "ok"
            recall.start()
            # The restart marked whatever the kill interrupted as failed; every acknowledged turn is there.
            assert store_checks.problems(db) == [], f"after kill {kill}"
            assert verify(db, chains) == [], f"after kill {kill}"
            figures.add("crash: kills survived")
        before = report.completed
        asyncio.run(_go_on(recall, route, chains, report))
        assert report.errors == [], report.errors[:5]
        assert report.completed - before == CHAINS * TURNS_AFTER
        assert fake.history_mismatches == []
        print(f"\n{route.name} crash: {KILLS} kills, {report.summary()}")
    finally:
        recall.stop()
        loop_thread.run(fake.stop())
    assert verify(db, chains) == []
    assert store_checks.problems(db) == []
    unfinished = sum(len(chain.unfinished) for chain in chains)
    figures.add("crash: turns acknowledged", sum(chain.turn for chain in chains))
    figures.add("crash: turns begun but cut by a kill (present, completed or failed)", unfinished)
    figures.add("crash: requests cut by kills", report.cut)
    figures.add("crash: acknowledged turns lost", 0)  # verify() above would have failed otherwise
