"""pytest plugin: the `recall_proxy` fixture runs a test's LLM traffic through recall.

The fixture starts recall in-process on a free port, in the mode `--recall-mode`
(or RECALL_MODE) gives (default: replay), serving the test's cassette, and
points the official SDKs at it through their base-URL environment variables.
In auto and live modes the traffic recorded during the test is appended to the
cassette when the test ends, so the next run replays it offline with no key.

    def test_app(recall_proxy):
        client = openai.OpenAI()          # OPENAI_BASE_URL points at recall
        ...

The cassette is `cassettes/<test module>/<test name>.jsonl` beside the test
file, or the path given by `@pytest.mark.recall(cassette="...")` (relative to
the test file). The ini option `recall_config` names a recall config file
(upstreams, ignore_fields) for the fixture.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .cache import AUTO, LIVE, REPLAY
from .cassette import export_cassette
from .codecs import SDK_BASE_URLS
from .config import MODES, load_config

T = TypeVar("T")

# Environment variables through which each SDK finds its base URL, and the
# path under recall that serves it (the codecs say, codecs/__init__.py).
BASE_URL_VARIABLES = {variable: f"{mount}{suffix}" for mount, variable, suffix in SDK_BASE_URLS}
_SUFFIXES = {mount: suffix for mount, _, suffix in SDK_BASE_URLS}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recall", "recall: record and replay LLM traffic")
    group.addoption("--recall-mode", choices=MODES, default=None,
                    help="replay (default): cassettes only, no network; auto: replay hits, record misses; "
                         "live: forward and record everything. Also RECALL_MODE.")
    parser.addini("recall_config", "recall config file (upstreams, ignore_fields) for the recall_proxy fixture")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "recall(cassette=PATH): the cassette the recall_proxy fixture uses")


@dataclass
class RecallProxy:
    url: str
    mode: str
    cassette: Path

    def base_url(self, upstream: str) -> str:
        """The base URL an SDK should use for one upstream (OpenAI's SDK wants /v1 in it)."""
        return f"{self.url}/{upstream}{_SUFFIXES.get(upstream, '')}"


class _ServerThread:
    """recall on an event loop of its own, so sync SDK calls in the test can reach it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="recall-proxy", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def _cassette_path(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("recall")
    here = Path(request.node.path).parent
    if marker is not None and marker.kwargs.get("cassette"):
        return here / marker.kwargs["cassette"]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return here / "cassettes" / Path(request.node.path).stem / f"{name}.jsonl"


@pytest.fixture
def recall_proxy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[RecallProxy]:
    from .server import start

    mode = request.config.getoption("--recall-mode") or os.environ.get("RECALL_MODE") or REPLAY
    if mode not in MODES:
        raise pytest.UsageError(f"RECALL_MODE must be one of {', '.join(MODES)}; got {mode!r}")
    ini_config = request.config.getini("recall_config")
    config = load_config(str(request.config.rootpath / ini_config) if ini_config else None)
    config.host, config.port, config.mode = "127.0.0.1", 0, mode
    cassette = _cassette_path(request)
    if mode != LIVE and cassette.exists():
        config.cassettes = [str(cassette)]
    db_path = tmp_path_factory.mktemp("recall") / "recall.db"
    server = _ServerThread()
    try:
        runner, port = server.run(start(config, db_path))
    except BaseException:
        server.stop()
        raise
    proxy = RecallProxy(f"http://127.0.0.1:{port}", mode, cassette)
    for variable, path in BASE_URL_VARIABLES.items():
        monkeypatch.setenv(variable, f"{proxy.url}/{path}")
    try:
        yield proxy
    finally:
        server.run(runner.cleanup())
        server.stop()
        if mode in (AUTO, LIVE):
            _append_new_traffic(db_path, cassette)


def _append_new_traffic(db_path: Path, cassette: Path) -> None:
    """Add what this test recorded (not what it replayed) to the end of its cassette."""
    if not db_path.exists():
        return
    cassette.parent.mkdir(parents=True, exist_ok=True)
    existed = cassette.exists()
    db = sqlite3.connect(db_path)
    try:
        with cassette.open("a", encoding="utf-8") as out:
            export_cassette(db, out, only_new=True, header=not existed)
    finally:
        db.close()
