"""Concurrent chains through one in-process recall: the fast cousin of the load test.

Catches what only overlap shows, such as a read snapshot held open by
concurrent requests so that a turn committed a moment ago is not found.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from .support import store_checks
from .support.front_routes import FrontRoute, Upstream, pair_id, route_upstream_pairs
from .support.load import Report, drive, new_chains, verify
from .support.rigs import RigFactory


@pytest.mark.parametrize(("route", "upstream"), route_upstream_pairs(emulate_only=True), ids=pair_id)
def test_concurrent_chains_read_their_own_writes(rig_factory: RigFactory, route: FrontRoute,
                                                 upstream: Upstream) -> None:
    rig = rig_factory(route, upstream)
    chains, report = new_chains(40), Report()

    async def load() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await drive(session, rig.recall.url, route, chains, 5, report, stream_every=3)

    asyncio.run(load())
    assert report.errors == [], report.errors[:3]
    assert rig.fake.history_mismatches == []
    assert report.completed == 200
    assert verify(rig.recall.db_path, chains) == []
    assert store_checks.problems(rig.recall.db_path) == []
