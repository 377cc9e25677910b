"""Load: 200 concurrent chains x 10 turns through one recall process on loopback.

Every turn must arrive at the provider with its whole history (the fake checks
it and refuses otherwise), no error may reach a client (no SQLITE_BUSY, no
timeouts), and the file must hold every turn an app was told exists.

Behind the `slow` marker: `pytest -m slow` (.ci/run runs it after the fast suite).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest

from proxy.config import Upstream as UpstreamConfig

from .support import figures, store_checks
from .support.front_routes import FRONT_ROUTES, FrontRoute, emulated, pair_id
from .support.load import Report, drive, new_chains, verify
from .support.loop_thread import LoopThread
from .support.recall_process import RecallProcess, write_config

pytestmark = pytest.mark.slow

CHAINS, TURNS = 200, 10


def _errors_in_log(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if re.search(r" (ERROR|CRITICAL) |Traceback|database is locked|SQLITE_BUSY", line)]


@pytest.mark.parametrize("route", FRONT_ROUTES, ids=pair_id)
def test_200_concurrent_chains_of_10_turns(route: FrontRoute, loop_thread: LoopThread, tmp_path: Path) -> None:
    upstream = emulated(route)[0]
    fake = upstream.fake()
    loop_thread.run(fake.start())
    config = write_config(tmp_path / "recall.toml",
                          {"up": UpstreamConfig("up", fake.url, upstream.api, state=upstream.state)})
    db = tmp_path / "recall.db"
    recall = RecallProcess(config, db, tmp_path / "recall.log").start()
    chains, report = new_chains(CHAINS), Report()

    async def load() -> None:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
            # Every fifth turn is streamed: streams and plain turns share the writer.
            await drive(session, recall.url, route, chains, TURNS, report, stream_every=5)

    try:
        asyncio.run(load())
        print(f"\n{route.name} load: {report.summary()}")
        assert report.errors == [], report.errors[:5]
        assert fake.history_mismatches == [], fake.history_mismatches[:5]
        assert report.completed == CHAINS * TURNS
        assert all(chain.turn == TURNS for chain in chains)
    finally:
        assert recall.terminate() == 0
        loop_thread.run(fake.stop())
    assert verify(db, chains) == []
    assert store_checks.counts(db)["interactions"] == CHAINS * TURNS  # no lost write, no extra one
    assert store_checks.problems(db) == []
    assert _errors_in_log(recall.log()) == []
    figures.add("load: chains", CHAINS)
    figures.add("load: turns completed", report.completed)
    figures.add("load: requests", report.requests)
    figures.add("load: errors reaching a client", len(report.errors))
    figures.add("load: history mismatches at the provider", len(fake.history_mismatches))
