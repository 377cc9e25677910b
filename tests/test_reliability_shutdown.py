"""Graceful shutdown: SIGTERM to a recall process with requests in flight.

recall stops accepting connections at once, lets the requests in flight finish
within `[server] shutdown_grace_s`, flushes its writer, marks the background
interactions it must abandon as failed with a clear reason, and exits 0. What
it could not finish in the grace period is cut, and leaves nothing half-written.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.config import Upstream as UpstreamConfig
from proxy.pipeline.running import SHUT_DOWN

from .support import figures, store_checks
from .support.front_routes import FRONT_ROUTES, FrontRoute, emulated, pair_id
from .support.loop_thread import LoopThread
from .support.recall_process import RecallProcess, write_config
from .support.rigs import stream_turn, take_turn


class Rig:
    def __init__(self, route: FrontRoute, loop_thread: LoopThread, tmp_path: Path, **server: Any) -> None:
        upstream = emulated(route)[0]
        self.route, self.loop_thread = route, loop_thread
        self.fake = upstream.fake()
        loop_thread.run(self.fake.start())
        config = write_config(tmp_path / "recall.toml",
                              {"up": UpstreamConfig("up", self.fake.url, upstream.api, state=upstream.state)}, **server)
        self.db = tmp_path / "recall.db"
        self.recall = RecallProcess(config, self.db, tmp_path / "recall.log").start()
        self.http = httpx.Client(timeout=60)

    def url(self, path: str) -> str:
        return f"{self.recall.url}/up{path}"

    def create(self, text: str, previous: str | None = None, **extra: Any) -> httpx.Response:
        return self.http.post(self.url(self.route.create_path), json=self.route.body(text, previous, **extra),
                              headers=self.route.key_headers("key-A"))

    def turn(self, text: str, previous: str | None = None) -> httpx.Response:
        return take_turn(self.http, self.url, self.route, self.route.body(text, previous),
                         self.route.key_headers("key-A"))

    def stream(self, text: str) -> tuple[int, bytes]:
        return stream_turn(self.http, self.url, self.route, text, None, self.route.key_headers("key-A"))

    def wait_for_provider(self, texts: list[str], timeout: float = 10) -> None:
        """Until the provider has every one of these turns in hand."""
        deadline = time.monotonic() + timeout
        while missing := [t for t in texts if not any(t in str(seen.body) for seen in self.fake.requests)]:
            assert time.monotonic() < deadline, f"{missing} did not reach the provider"
            time.sleep(0.02)
        if self.route.result_path is not None:
            time.sleep(0.3)  # the app's reads of the runs' results follow their creates

    def close(self) -> None:
        self.http.close()
        self.recall.stop()
        self.loop_thread.run(self.fake.stop())


def refuses_connections(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("route", FRONT_ROUTES, ids=pair_id)
def test_sigterm_finishes_requests_in_flight_and_fails_background_runs(
    route: FrontRoute, loop_thread: LoopThread, tmp_path: Path
) -> None:
    rig = Rig(route, loop_thread, tmp_path, shutdown_grace_s=10)
    try:
        background: list[tuple[str, str]] = []  # (interaction id, item id)
        if route.background_fields is not None:
            for n in range(2):
                answer = rig.create(f"background {n} [pause 30s]", **route.background_fields)
                background.append((route.read_id(answer.json()), route.item_id(answer.json())))
        texts = [f"background {n}" for n in range(len(background))]
        with ThreadPoolExecutor(8) as pool:
            plain: list[Future[httpx.Response]] = [pool.submit(rig.turn, f"plain {n} [pause 1s]") for n in range(4)]
            texts += [f"plain {n}" for n in range(4)]
            streams: list[Future[tuple[int, bytes]]] = []
            if route.streams:
                streams = [pool.submit(rig.stream, f"stream {n} [pause 0.12s]") for n in range(4)]
                texts += [f"stream {n}" for n in range(4)]
            rig.wait_for_provider(texts)
            signalled = time.monotonic()
            assert rig.recall.process is not None
            rig.recall.process.send_signal(signal.SIGTERM)
            # New connections are refused at once, while the ones in flight go on.
            deadline = time.monotonic() + 2
            while not refuses_connections(rig.recall.url):
                assert time.monotonic() < deadline, "recall still accepts connections after SIGTERM"
                time.sleep(0.02)
            assert not all(f.done() for f in plain + streams), "the requests in flight ended before the test looked"
            answers = [f.result() for f in plain]
            streamed = [f.result() for f in streams]
        exit_code = rig.recall.process.wait(30)
        took = time.monotonic() - signalled
        assert exit_code == 0
        assert took < 10, f"shutdown took {took:.1f} s"
        # Every request in flight was answered whole.
        completed = []
        for n, answer in enumerate(answers):
            assert answer.status_code == 200, answer.text
            assert route.reply_text(answer.json()).endswith(f"plain {n} [pause 1s]")
            completed.append(route.read_id(answer.json()))
        for n, (status, raw) in enumerate(streamed):
            assert status == 200 and route.stream_error(raw) is None
            assert route.stream_text(raw).endswith(f"stream {n} [pause 0.12s]")
            completed.append(route.stream_id(raw))
        # The writer was flushed before exit: the file has every answered turn, whole;
        # the abandoned background runs are failed with the reason.
        with sqlite3.connect(rig.db) as db:
            for interaction_id in completed:
                assert db.execute("SELECT status FROM interactions WHERE id = ?",
                                  (interaction_id,)).fetchone() == ("completed",)
            for interaction_id, _ in background:
                assert db.execute("SELECT status, error FROM interactions WHERE id = ?",
                                  (interaction_id,)).fetchone() == ("failed", SHUT_DOWN)
        assert store_checks.problems(rig.db) == []
        assert "recall: shutting down" in rig.recall.log()
        # After a restart all of it is served, and conversations go on.
        rig.recall.start()
        for _, item_id in background:
            got = rig.http.get(rig.url(route.item(item_id)), headers=route.key_headers("key-A"))
            assert route.read_status(got.json()) == "failed" and SHUT_DOWN in got.text
        follow = rig.turn("and then?", completed[0])
        assert follow.status_code == 200 and route.reply_text(follow.json()).startswith("[2 user messages]")
        figures.add("shutdown: requests in flight finished", len(completed))
        figures.add("shutdown: background runs marked failed", len(background))
    finally:
        rig.close()


@pytest.mark.parametrize("route", FRONT_ROUTES, ids=pair_id)
def test_requests_longer_than_the_grace_period_are_cut_cleanly(
    route: FrontRoute, loop_thread: LoopThread, tmp_path: Path
) -> None:
    rig = Rig(route, loop_thread, tmp_path, shutdown_grace_s=0.5)
    try:
        before = store_checks.counts(rig.db)
        with ThreadPoolExecutor(4) as pool:
            slow = [pool.submit(rig.turn, f"slow {n} [pause 30s]") for n in range(3)]
            rig.wait_for_provider([f"slow {n}" for n in range(3)])
            signalled = time.monotonic()
            assert rig.recall.process is not None
            rig.recall.process.send_signal(signal.SIGTERM)
            assert rig.recall.process.wait(15) == 0
            took = time.monotonic() - signalled
            for future in slow:
                with pytest.raises(httpx.TransportError):
                    future.result()
        assert took < 5, f"shutdown took {took:.1f} s with a 0.5 s grace period"
        after = store_checks.counts(rig.db)
        if route.result_path is None:
            assert after["interactions"] == before["interactions"]
        else:  # the runs were created, and answered: they end failed, with the reason
            assert store_checks.statuses(rig.db) == {"failed": 3}
            assert {row[0] for row in sqlite3.connect(rig.db).execute("SELECT error FROM interactions")} == {SHUT_DOWN}
        assert store_checks.problems(rig.db) == []
    finally:
        rig.close()
