"""Running out of file descriptors (issue 16, item 10): 503, never 500.

recall runs as a process with a low open-files limit (RLIMIT_NOFILE); many apps call it at
once through a slow provider. Every answer is a success or a 503 in the front API's shape
(which SDKs retry), never a 500 or a 502; recall keeps answering after the burst.
"""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.config import Upstream

from .support.recall_process import RecallProcess, write_config

LIMIT = 64      # open files the recall process may have
CALLERS = 60    # apps calling at once, each holding a connection for about a second


def _low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


async def _burst(url: str) -> list[tuple[int, Any]]:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "[pause 1s] hello"}]}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> tuple[int, Any]:
            async with session.post(f"{url}/up/v1/chat/completions", json=body,
                                    headers={"Authorization": "Bearer key-A"}) as answer:
                return answer.status, await answer.json(content_type=None)

        return await asyncio.gather(*(one() for _ in range(CALLERS)))


@pytest.mark.parametrize("max_connections", [0, 8])  # 0: sized from the open-files limit
def test_out_of_file_descriptors_is_503(tmp_path: Path, fake_openai: Any, max_connections: int) -> None:
    config = write_config(tmp_path / "recall.toml", {"up": Upstream("up", fake_openai.url, "openai-chat")},
                          max_connections=max_connections)
    recall = RecallProcess(config, tmp_path / "r.db", tmp_path / "log", preexec=_low_limit).start()
    try:
        answers = asyncio.run(_burst(recall.url))
        statuses = sorted(status for status, _ in answers)
        assert set(statuses) <= {200, 503}, (statuses, [a for a in answers if a[0] not in (200, 503)][:3])
        refused = [body for status, body in answers if status == 503]
        assert refused, statuses  # 60 at once cannot all fit in 64 files
        assert all(body["error"]["code"] == "overloaded" and "max_connections" in body["error"]["message"]
                   for body in refused), refused[0]
        assert statuses.count(200) >= 4, statuses  # it went on answering meanwhile
        print(f"\nfile descriptors: limit {LIMIT}, max_connections {max_connections or 'from the limit'}:"
              f" {CALLERS} at once, {statuses.count(200)} answered, {len(refused)} got 503")
        after = asyncio.run(_burst_of_one(recall.url))
        assert after == 200  # and answers again once the burst is over
        assert "Traceback" not in recall.log() and "Too many open files" not in recall.log(), recall.log()[-3000:]
    finally:
        recall.stop()


async def _burst_of_one(url: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/up/v1/chat/completions", headers={"Authorization": "Bearer key-A"},
                                json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}) as a:
            return a.status
