"""Provider faults, for every front API over every upstream it is tested over.

Each fault is played by tests/support/faulty_upstream.py in front of the fake
provider. After each one the app has a clear answer in its own API's shape and
the store holds whole records only: failed interactions marked failed with a
reason, nothing half-written (tests/support/store_checks.py).
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from typing import Any

import httpx
import pytest

from .support.faulty_upstream import OVERLOADED_BODY, STREAM_FAULTS
from .support.front_routes import FRONT_ROUTES, FrontRoute, Upstream, pair_id, route_upstream_pairs
from .support.rigs import Rig, RigFactory, dechunk

PAIRS = route_upstream_pairs()
EMULATED = route_upstream_pairs(emulate_only=True)


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_turn_stored(rig: Rig, before: dict[str, int]) -> None:
    """No node and no event; an audit row, if any, records the failed exchange as failed."""
    after = rig.counts()
    assert after["interactions"] == before["interactions"], (before, after)
    assert after["stream_events"] == before["stream_events"], (before, after)
    with sqlite3.connect(rig.recall.db_path) as db:
        succeeded = db.execute("SELECT count(*) FROM exchanges WHERE status < 400").fetchone()[0]
    assert succeeded == 0
    assert rig.problems() == []


def stored_status(rig: Rig, interaction_id: str) -> tuple[str, str | None]:
    rows = rig.recall.query("SELECT status, error FROM interactions WHERE id = ?", interaction_id)
    assert rows, f"{interaction_id} is not in the store"
    return rows[0]


def wait_settled(rig: Rig, interaction_id: str, timeout: float = 10) -> tuple[str, str | None]:
    deadline = time.monotonic() + timeout
    while (found := stored_status(rig, interaction_id))[0] == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def create_kinds(route: FrontRoute, upstream: Upstream) -> list[str]:
    """The ways to create a turn this pair supports: plain, streamed, background."""
    kinds = ["plain"]
    if route.stream_fields is not None:
        kinds.append("stream")
    if route.background_fields is not None and upstream.state == "emulate":
        kinds.append("background")
    return kinds


def create_as(rig: Rig, kind: str, text: str = "hello there") -> Any:
    if kind == "stream":
        assert rig.route.stream_fields is not None
        return rig.http.post(rig.url(rig.route.create_path), headers=rig.headers(),
                             json=rig.route.body(text, None, **rig.route.stream_fields))
    if kind == "background":
        assert rig.route.background_fields is not None
        return rig.create(text, **rig.route.background_fields)
    return rig.create(text)


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_connection_refused_is_502(rig_factory: RigFactory, route: FrontRoute, upstream: Upstream) -> None:
    rig = rig_factory(route, upstream, upstream_url=closed_port_url())
    before = rig.counts()
    for kind in create_kinds(route, upstream):
        answer = create_as(rig, kind)
        route.check_error(answer, 502)
        assert "unreachable" in route.error_message(answer.json()), kind
    assert_no_turn_stored(rig, before)


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_provider_timeout_is_504_within_timeout_s(rig_factory: RigFactory, route: FrontRoute,
                                                   upstream: Upstream) -> None:
    rig = rig_factory(route, upstream, timeout_s=0.25)
    rig.faulty.fault, rig.faulty.hang_s = "hang", 5
    before = rig.counts()
    for kind in create_kinds(route, upstream):
        started = time.monotonic()
        answer = create_as(rig, kind)
        route.check_error(answer, 504)
        assert "timeout_s" in route.error_message(answer.json())
        assert time.monotonic() - started < 3, "the timeout did not cut the wait"
    assert_no_turn_stored(rig, before)


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_reset_mid_body_is_502(rig_factory: RigFactory, route: FrontRoute, upstream: Upstream) -> None:
    rig = rig_factory(route, upstream)
    rig.faulty.fault = "reset_body"
    before = rig.counts()
    answer = rig.create("hello there")
    route.check_error(answer, 502)
    assert rig.faulty.faults_served == 1
    assert_no_turn_stored(rig, before)


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_5xx_is_relayed_as_it_came(rig_factory: RigFactory, route: FrontRoute, upstream: Upstream) -> None:
    rig = rig_factory(route, upstream)
    rig.faulty.fault = "status_503"
    before = rig.counts()
    for kind in create_kinds(route, upstream):
        answer = create_as(rig, kind)
        assert answer.status_code == 503, kind
        if upstream.state == "native" and kind != "background":
            assert answer.content == OVERLOADED_BODY  # byte for byte
        else:
            # A translated call: re-wrapped in the front API's shape, the provider's status and words kept.
            route.check_error(answer, 503)
            assert "the fake provider is overloaded" in route.error_message(answer.json())
    assert_no_turn_stored(rig, before)


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_invalid_json_from_the_provider_is_a_clear_502(rig_factory: RigFactory, route: FrontRoute,
                                                        upstream: Upstream) -> None:
    rig = rig_factory(route, upstream)
    rig.faulty.fault = "invalid_json"
    before = rig.counts()
    for kind in create_kinds(route, upstream):
        answer = create_as(rig, kind)
        route.check_error(answer, 502)
        message = route.error_message(answer.json())
        assert "'up'" in message and ("JSON" in message or "event stream" in message), message
    assert_no_turn_stored(rig, before)


@pytest.mark.parametrize("fault", STREAM_FAULTS)
@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_stream_broken_mid_way_ends_in_an_error_event_and_a_failed_record(
    rig_factory: RigFactory, route: FrontRoute, upstream: Upstream, fault: str
) -> None:
    if route.stream_fields is None:
        pytest.skip(f"{route.name} does not stream")
    rig = rig_factory(route, upstream, timeout_s=0.3)
    rig.faulty.fault, rig.faulty.hang_s = fault, 3
    status, raw = rig.stream("alpha beta gamma delta epsilon")
    assert status == 200
    assert route.stream_error(raw), raw[-400:]
    interaction_id = route.stream_id(raw)
    assert interaction_id
    state, error = wait_settled(rig, interaction_id)
    assert state == "failed" and error, (state, error)
    assert rig.problems() == []
    if upstream.state == "emulate":
        got = rig.get(interaction_id)
        assert got.status_code == 200 and route.read_status(got.json()) == "failed"


@pytest.mark.parametrize("fault", ["reset_stream", "truncate_stream", "stall_stream"])
@pytest.mark.parametrize(("route", "upstream"), EMULATED, ids=pair_id)
def test_background_run_broken_mid_way_is_marked_failed(
    rig_factory: RigFactory, route: FrontRoute, upstream: Upstream, fault: str
) -> None:
    if route.background_fields is None:
        pytest.skip(f"{route.name} has no background runs")
    rig = rig_factory(route, upstream, timeout_s=0.3)
    rig.faulty.fault, rig.faulty.hang_s = fault, 3
    answer = rig.create("alpha beta gamma delta epsilon", **route.background_fields)
    assert answer.status_code == 200
    interaction_id = route.read_id(answer.json())
    state, error = wait_settled(rig, interaction_id)
    assert state == "failed" and error
    got = rig.get(interaction_id)
    assert route.read_status(got.json()) == "failed"
    assert rig.problems() == []


@pytest.mark.parametrize(("route", "upstream"), EMULATED, ids=pair_id)
def test_after_faults_the_same_recall_serves_whole_chains(rig_factory: RigFactory, route: FrontRoute,
                                                         upstream: Upstream) -> None:
    """Faults leave nothing behind that breaks the next requests: a chain built after them works."""
    rig = rig_factory(route, upstream, timeout_s=0.3)
    for fault in ("status_503", "invalid_json", "reset_body", "reset_stream"):
        rig.faulty.fault = fault
        if fault == "reset_stream":
            rig.stream("broken")
        else:
            rig.create("broken")
    rig.faulty.fault = None
    first = rig.create("Hi, my name is Ada.")
    second = rig.create("What is my name?", route.read_id(first.json()))
    assert second.status_code == 200
    assert "Ada" in route.reply_text(second.json())
    assert rig.problems() == []


def _stalled_stream_reader(rig: Rig, words: int) -> socket.socket:
    """Start a streamed create whose app never reads its answer (tiny receive buffer)."""
    route = rig.route
    assert route.stream_fields is not None
    body = __import__("json").dumps(route.body(" ".join(["w" * 999] * words), None, **route.stream_fields)).encode()
    host, port = rig.recall.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    head = [f"POST /up{route.create_path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in rig.headers().items())]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return sock


def _half_sent_request(rig: Rig) -> socket.socket:
    """A request whose app stops sending its body half way (a slow or stuck upload)."""
    host, port = rig.recall.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = [f"POST /up{rig.route.create_path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            "Content-Length: 100000", *(f"{k}: {v}" for k, v in rig.headers().items())]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"model": "m", "input": "')
    return sock


@pytest.mark.parametrize(("route", "upstream"), EMULATED[:1], ids=pair_id)
def test_a_slow_client_does_not_stall_other_requests(rig_factory: RigFactory, route: FrontRoute,
                                                     upstream: Upstream, caplog: pytest.LogCaptureFixture) -> None:
    rig = rig_factory(route, upstream)
    stalled = _stalled_stream_reader(rig, words=6000)
    uploading = _half_sent_request(rig)
    try:
        time.sleep(0.5)  # the stalled stream fills every buffer between recall and the app
        latencies: list[float] = []
        errors: list[str] = []

        def chain(n: int) -> None:
            previous = None
            for turn in range(3):
                started = time.monotonic()
                answer = rig.create(f"request {n}.{turn}", previous, key=f"key-{n}")
                latencies.append(time.monotonic() - started)
                if answer.status_code != 200:
                    errors.append(answer.text)
                    return
                previous = route.read_id(answer.json())

        threads = [threading.Thread(target=chain, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert len(latencies) == 24 and max(latencies) < 2, max(latencies)
        # The stalled stream really was stalled meanwhile: recall was still writing it.
        assert rig.recall.query("SELECT count(*) FROM interactions WHERE status = 'in_progress'") == [(1,)]
    finally:
        uploading.close()
    # Once the app reads, the stalled stream completes and is stored whole.
    stalled.settimeout(20)
    received = b""
    while chunk := stalled.recv(1 << 20):
        received += chunk
        if received.endswith(b"0\r\n\r\n"):
            break
    stalled.close()
    assert received.startswith(b"HTTP/1.1 200"), received[:300]
    interaction_id = route.stream_id(dechunk(received.split(b"\r\n\r\n", 1)[1]))
    assert interaction_id
    assert wait_settled(rig, interaction_id)[0] == "completed"
    assert rig.problems() == []
    # The upload that was abandoned half way is not an error of recall's.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("route", FRONT_ROUTES, ids=pair_id)
def test_a_relayed_answer_broken_mid_body_breaks_the_apps_connection(rig_factory: RigFactory,
                                                                      route: FrontRoute) -> None:
    """An unmodelled path is relayed as it comes; if the provider breaks off, so does the app's
    answer (an SDK then sees a broken connection), never a short body that looks whole."""
    rig = rig_factory(route, route.upstreams[0])
    rig.faulty.fault = "reset_body"
    with pytest.raises(httpx.RemoteProtocolError):
        rig.http.get(rig.url("/v1beta/unmodelled/thing"), headers=rig.headers())
    deadline = time.monotonic() + 5
    while not (rows := rig.recall.query("SELECT error FROM exchanges")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rows and "broke mid-body" in rows[0][0]
