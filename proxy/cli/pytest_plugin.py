"""pytest plugin: the `recall_proxy` fixture runs a test's LLM traffic through recall.

The fixture starts recall in-process on a free port, serving the test's
cassette, and points the official SDKs at it through their base-URL
environment variables. What it does with the cassette is the record mode, as
in VCR.py and pytest-recording (`--recall-record-mode`, or RECALL_RECORD_MODE):

- `none` (default): replay only, no network; a request not in the cassette fails.
  Every SDK's key variable that is unset gets a placeholder, so CI needs no secrets.
- `once`: record the cassette if it does not exist yet, else behave as `none`.
- `new_episodes`: replay what the cassette has, forward and record the rest (appended).
- `all`: forward everything and write the cassette anew, replacing the old one.

`--recall-mode=replay|auto|live` (RECALL_MODE), the older spelling, means
none, new_episodes and all.

    def test_app(recall_proxy):
        client = openai.OpenAI()          # OPENAI_BASE_URL points at recall
        ...

The cassette is `cassettes/<test module>/<test name>.jsonl` beside the test
file, or the path given by `@pytest.mark.recall(cassette="...")` (relative to
the test file). The ini option `recall_config` names a recall config file
(upstreams, ignore_fields) for the fixture.

pytest loads this module through `recall_pytest_plugin` (the entry point),
which copes with projects that have a `proxy` package of their own.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ..codecs import SDK_BASE_URLS
from ..config import MODES, load_config
from ..pipeline.cache import AUTO, LIVE, REPLAY
from ..replay.cassette import export_cassette
from ..sdk_env import placeholder_keys
from ..store.audit_db import AuditDB

T = TypeVar("T")

# Environment variables through which each SDK finds its base URL, and the
# path under recall that serves it (the codecs say, codecs/__init__.py).
BASE_URL_VARIABLES = {variable: f"{mount}{suffix}" for mount, variable, suffix in SDK_BASE_URLS}
_SUFFIXES = {mount: suffix for mount, _, suffix in SDK_BASE_URLS}

NONE, ONCE, NEW_EPISODES, ALL = "none", "once", "new_episodes", "all"
RECORD_MODES = (NONE, ONCE, NEW_EPISODES, ALL)
# The older --recall-mode values, as record modes.
_RECORD_MODE_OF = {REPLAY: NONE, AUTO: NEW_EPISODES, LIVE: ALL}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recall", "recall: record and replay LLM traffic")
    group.addoption("--recall-record-mode", choices=RECORD_MODES, default=None,
                    help="none (default): replay cassettes only, no network, no keys needed; once: record a "
                         "cassette that does not exist yet; new_episodes: replay hits, record misses; all: "
                         "re-record every cassette. Also RECALL_RECORD_MODE.")
    group.addoption("--recall-mode", choices=MODES, default=None,
                    help="The older spelling: replay = none, auto = new_episodes, live = all. Also RECALL_MODE.")
    parser.addini("recall_config", "recall config file (upstreams, ignore_fields) for the recall_proxy fixture")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "recall(cassette=PATH): the cassette the recall_proxy fixture uses")


def record_mode_of(config: pytest.Config, environ: Mapping[str, str]) -> str:
    """The record mode: the flags win over the environment, the new spelling over the old."""
    candidates: list[tuple[str, str | None, tuple[str, ...]]] = [
        ("--recall-record-mode", config.getoption("--recall-record-mode"), RECORD_MODES),
        ("--recall-mode", config.getoption("--recall-mode"), MODES),
        ("RECALL_RECORD_MODE", environ.get("RECALL_RECORD_MODE"), RECORD_MODES),
        ("RECALL_MODE", environ.get("RECALL_MODE"), MODES)]
    for name, value, allowed in candidates:
        if not value:
            continue
        if value not in allowed:
            raise pytest.UsageError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return _RECORD_MODE_OF.get(value, value) if allowed is MODES else value
    return NONE


@dataclass
class RecallProxy:
    url: str
    mode: str          # what recall itself runs in: replay, auto or live
    cassette: Path
    record_mode: str = NONE

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
        return here / Path(marker.kwargs["cassette"])
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return here / "cassettes" / Path(request.node.path).stem / f"{name}.jsonl"


def _miss_hint(nodeid: str, cassette: Path) -> str:
    """What a replay miss tells the test's author: the exact command that records it, and where."""
    if not cassette.exists():
        return (f"There is no cassette at {cassette}: record it with "
                f"`pytest --recall-record-mode=once {nodeid}` (needs the provider's key).")
    return (f"Add it to {cassette} with `pytest --recall-record-mode=new_episodes {nodeid}`, "
            f"or record that cassette anew with --recall-record-mode=all; or fix the request.")


@pytest.fixture
def recall_proxy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[RecallProxy]:
    from ..http.app import start

    record_mode = record_mode_of(request.config, os.environ)
    cassette = _cassette_path(request)
    if record_mode == ONCE:
        record_mode = NONE if cassette.exists() else ALL
    mode = {NONE: REPLAY, NEW_EPISODES: AUTO, ALL: LIVE}[record_mode]
    ini_config = request.config.getini("recall_config")
    config = load_config(str(request.config.rootpath / ini_config) if ini_config else None)
    config.host, config.port, config.mode = "127.0.0.1", 0, mode
    config.miss_hint = _miss_hint(request.node.nodeid, cassette)
    if mode != LIVE and cassette.exists():
        config.cassettes = [str(cassette)]
    db_path = tmp_path_factory.mktemp("recall") / "recall.db"
    server = _ServerThread()
    try:
        runner, port = server.run(start(config, db_path))
    except BaseException:
        server.stop()
        raise
    proxy = RecallProxy(f"http://127.0.0.1:{port}", mode, cassette, record_mode)
    for variable, path in BASE_URL_VARIABLES.items():
        monkeypatch.setenv(variable, f"{proxy.url}/{path}")
    if mode == REPLAY:  # nothing leaves the machine: the SDKs only need some key to start
        for variable, value in placeholder_keys(os.environ).items():
            monkeypatch.setenv(variable, value)
    try:
        yield proxy
    finally:
        server.run(runner.cleanup())
        server.stop()
        if mode == AUTO:
            _append_new_traffic(db_path, cassette)
        elif mode == LIVE:
            _write_cassette(db_path, cassette)


def _append_new_traffic(db_path: Path, cassette: Path) -> None:
    """Add what this test recorded (not what it replayed) to the end of its cassette."""
    if not db_path.exists():
        return
    cassette.parent.mkdir(parents=True, exist_ok=True)
    existed = cassette.exists()
    audit = AuditDB.open(db_path)
    try:
        with cassette.open("a", encoding="utf-8") as out:
            export_cassette(audit, out, only_new=True, header=not existed)
    finally:
        audit.close()


def _write_cassette(db_path: Path, cassette: Path) -> None:
    """Replace the cassette with this run's recordings: nothing stale is kept (record mode `all`).

    Written beside it and renamed, so an interrupted run leaves the old cassette whole."""
    if not db_path.exists():
        return
    cassette.parent.mkdir(parents=True, exist_ok=True)
    partial = cassette.with_name(cassette.name + ".partial")
    audit = AuditDB.open(db_path)
    try:
        with partial.open("w", encoding="utf-8") as out:
            export_cassette(audit, out)
    finally:
        audit.close()
    partial.replace(cassette)
