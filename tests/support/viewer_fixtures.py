"""Fixtures for the viewer's tests (loaded by tests/conftest.py as a plugin).

`viewer_site`: one recall for the whole session, filled through the real
google-genai SDK (support.viewer_data); tests only read from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.config import Config, Upstream
from proxy.http.app import start

from .contract.tap import check_recall
from .fake_gemini import FakeGemini
from .loop_thread import LoopThread
from .viewer_data import ViewerData, fill

# The fake's pause between streamed events, so that a stream's timeline has gaps to show.
STREAM_DELAY_S = 0.005


@dataclass
class ViewerSite:
    url: str  # recall's root: the viewer is at url + "/_recall/"
    db_path: Path
    data: ViewerData
    fake: FakeGemini

    def api(self, path: str, *, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}/_recall/api{path}", params=params, headers=headers)


def gemini_upstreams(fake: FakeGemini) -> dict[str, Upstream]:
    return {
        "gemini": Upstream("gemini", fake.url, "gemini", state="emulate"),
        "gemgen": Upstream("gemgen", fake.url, "gemini-generate"),
    }


@pytest.fixture(scope="session")
def viewer_site(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewerSite]:
    fake = FakeGemini(stream_delay=STREAM_DELAY_S)
    loop_thread.run(fake.start())
    config = Config(host="127.0.0.1", port=0)
    config.upstreams.update(gemini_upstreams(fake))
    db_path = tmp_path_factory.mktemp("viewer") / "recall.db"
    runner, port = loop_thread.run(start(config, db_path, check_recall(config)))
    url = f"http://127.0.0.1:{port}"
    try:
        yield ViewerSite(url=url, db_path=db_path, data=fill(url), fake=fake)
    finally:
        loop_thread.run(runner.cleanup())
        loop_thread.run(fake.stop())
