"""Provider faults, for every front API over every upstream it is tested over.

Each fault is played by tests/support/faulty_upstream.py in front of the fake
provider. After each one the app has a clear answer in its own API's shape and
the store holds whole records only: failed interactions marked failed with a
reason, nothing half-written (tests/support/store_checks.py).

An asynchronous API in emulate mode (Parallel's task runs) answers its create
before the provider is asked: a fault then fails the run, and the app learns
of it from the run's result, events and state, each in its API's shape.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from .support.faulty_upstream import STREAM_FAULTS, overloaded_body
from .support.front_routes import (
    FRONT_ROUTES,
    FrontRoute,
    Upstream,
    emulated,
    pair_id,
    route_upstream_pairs,
    sse_events,
)
from .support.rigs import Rig, RigFactory, dechunk

PAIRS = route_upstream_pairs()
# Streams a fault can break: the provider's own, relayed or read by recall (a task run in
# emulate mode asks its upstream whole).
STREAMING = route_upstream_pairs(where=lambda r, u: r.streams and (u.relays or r.emulated_runs_stream))
# Background runs that read a stream from the upstream.
BACKGROUND = route_upstream_pairs(emulate_only=True,
                                  where=lambda r, u: bool(r.background_fields) and r.emulated_runs_stream)


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


TEXT = "hello there"


def deferred(rig: Rig, kind: str) -> bool:
    """A create answered (queued, or in progress) before the provider is asked, so that a
    provider fault fails the run rather than the create: an asynchronous API's in emulate
    mode, and any background create (the hosted APIs answer it at once)."""
    return (rig.route.result_path is not None or kind == "background") and not rig.upstream.relays


def relayed(upstream: Upstream, kind: str) -> bool:
    """Whether this kind of create goes to the provider as it is, its answer coming back as it came."""
    return upstream.state == "native" or (upstream.relays_new_turns and kind in ("plain", "stream"))


@dataclass(frozen=True)
class Snapshot:
    """What the store held before a fault: its nodes, its successful exchanges and its events."""

    ids: frozenset[str]
    succeeded: int
    events: int
    failed_with_content: int


_FAILED_WITH_CONTENT = ("SELECT count(*) FROM exchanges WHERE status >= 400"
                        " AND (request_body IS NOT NULL OR response_body IS NOT NULL)")


def snapshot(rig: Rig) -> Snapshot:
    with sqlite3.connect(rig.recall.db_path) as db:
        ids = frozenset(row[0] for row in db.execute("SELECT id FROM interactions"))
        succeeded = db.execute("SELECT count(*) FROM exchanges WHERE status < 400").fetchone()[0]
        events = db.execute("SELECT count(*) FROM stream_events").fetchone()[0]
        failed_with_content = db.execute(_FAILED_WITH_CONTENT).fetchone()[0]
    return Snapshot(ids, succeeded, events, failed_with_content)


def assert_no_turn_stored(rig: Rig, before: Snapshot, *, failed_runs: int = 0) -> None:
    """No new node but `failed_runs` (an asynchronous API's runs, each failed with its reason),
    no event and no successful exchange but theirs; an audit row of a failed call says it
    failed and keeps no bodies (a create that made no turn, relayed or not, is metadata; a
    failed run's reads are the run's record)."""
    with sqlite3.connect(rig.recall.db_path) as db:
        new = [row for row in db.execute("SELECT id, status, error FROM interactions") if row[0] not in before.ids]
        runs = [row[0] for row in new]
        marks = ",".join("?" * len(runs))
        events = db.execute(f"SELECT count(*) FROM stream_events WHERE interaction_id NOT IN ({marks})",
                            runs).fetchone()[0]
        succeeded = db.execute(f"SELECT count(*) FROM exchanges WHERE status < 400 AND"
                               f" coalesce(interaction_id, '') NOT IN ({marks})", runs).fetchone()[0]
        failed_with_content = db.execute(f"{_FAILED_WITH_CONTENT} AND coalesce(interaction_id, '') NOT IN ({marks})",
                                         runs).fetchone()[0]
    assert len(new) == failed_runs and all(status == "failed" and error for _, status, error in new), new
    assert events == before.events
    assert succeeded == before.succeeded
    assert failed_with_content == before.failed_with_content
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


def create_kinds(route: FrontRoute, upstream: Upstream, *, chained: bool = True) -> list[str]:
    """The ways to create a turn this pair supports: plain, streamed, background, and chained
    where a chained turn takes another way than a first one (a stateless API's first turn is relayed)."""
    kinds = ["plain"]
    if route.streams:
        kinds.append("stream")
    if route.background_fields and upstream.state == "emulate":
        kinds.append("background")
    if chained and upstream.relays_new_turns:
        kinds.append("chained")
    return kinds


def earlier_turn(rig: Rig, kinds: list[str]) -> str | None:
    """A turn to chain onto, made before any fault is armed (only the chained kind needs one)."""
    if "chained" not in kinds:
        return None
    answer = rig.turn("Hi, my name is Ada.")
    assert answer.status_code == 200, answer.text
    return rig.route.read_id(answer.json())


def create_as(rig: Rig, kind: str, previous: str | None = None, text: str = TEXT) -> httpx.Response:
    """The app's answer to a create of this kind (for an asynchronous API's turn, its result or events)."""
    route = rig.route
    if kind == "stream":
        if route.stream_fields is not None:
            return rig.http.post(rig.url(route.create_path), headers=rig.headers(),
                                 json=route.body(text, None, **route.stream_fields))
        assert route.events_path is not None
        created = rig.create(text)
        if not created.is_success:
            return created
        return rig.http.get(rig.url(route.events_path.format(id=route.item_id(created.json()))),
                            headers=rig.headers())
    if kind == "background":
        assert route.background_fields is not None
        return rig.create(text, **route.background_fields)
    if kind == "chained":
        assert previous is not None
        return rig.turn(text, previous)
    return rig.turn(text)


def told(rig: Rig, kind: str, answer: httpx.Response, status: int) -> str:
    """What the app was told of a fault, checked to be in its API's shape: at once with
    `status`, or for a deferred run in its result, events or state (the run stored failed)."""
    route = rig.route
    if not deferred(rig, kind):
        route.check_error(answer, status)
        message = route.error_message(answer.json())
    elif kind == "plain":
        route.check_error(answer, route.failed_result_status)
        message = route.error_message(answer.json())
    elif kind == "stream":
        assert answer.status_code == 200, answer.text
        message = route.stream_error(answer.content) or ""
    else:
        assert answer.is_success, answer.text
        state, message = wait_settled(rig, route.read_id(answer.json()))
        assert state == "failed", state
        assert route.read_status(rig.get(route.item_id(answer.json())).json()) == "failed"
    assert message, kind
    return message


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_connection_refused_is_502(rig_factory: RigFactory, route: FrontRoute, upstream: Upstream) -> None:
    rig = rig_factory(route, upstream, upstream_url=closed_port_url())
    before, runs = snapshot(rig), 0
    for kind in create_kinds(route, upstream, chained=False):  # no earlier turn can exist
        assert "unreachable" in told(rig, kind, create_as(rig, kind), 502)
        runs += deferred(rig, kind)
    assert_no_turn_stored(rig, before, failed_runs=runs)


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_provider_timeout_is_504_within_timeout_s(rig_factory: RigFactory, route: FrontRoute,
                                                   upstream: Upstream) -> None:
    rig = rig_factory(route, upstream, timeout_s=0.25)
    kinds = create_kinds(route, upstream)
    previous = earlier_turn(rig, kinds)
    rig.faulty.fault, rig.faulty.hang_s = "hang", 5
    before, runs = snapshot(rig), 0
    for kind in kinds:
        started = time.monotonic()
        assert "timeout_s" in told(rig, kind, create_as(rig, kind, previous), 504)
        runs += deferred(rig, kind)
        assert time.monotonic() - started < 3, "the timeout did not cut the wait"
    assert_no_turn_stored(rig, before, failed_runs=runs)


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_reset_mid_body_is_502(rig_factory: RigFactory, route: FrontRoute, upstream: Upstream) -> None:
    rig = rig_factory(route, upstream)
    kinds = [kind for kind in create_kinds(route, upstream) if kind in ("plain", "chained")]
    previous = earlier_turn(rig, kinds)
    rig.faulty.fault = "reset_body"
    before, runs = snapshot(rig), 0
    for kind in kinds:
        told(rig, kind, create_as(rig, kind, previous), 502)
        runs += deferred(rig, kind)
    assert rig.faulty.faults_served == len(kinds)
    assert_no_turn_stored(rig, before, failed_runs=runs)


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_5xx_is_relayed_as_it_came(rig_factory: RigFactory, route: FrontRoute, upstream: Upstream) -> None:
    rig = rig_factory(route, upstream)
    kinds = create_kinds(route, upstream)
    previous = earlier_turn(rig, kinds)
    rig.faulty.fault = "status_503"
    before, runs = snapshot(rig), 0
    for kind in kinds:
        answer = create_as(rig, kind, previous)
        if relayed(upstream, kind):
            assert answer.status_code == 503, kind
            assert answer.content == overloaded_body(rig.route.create_path)  # byte for byte
            assert answer.headers.get("x-recall-stored", "false") == "false"
        else:
            # A translated call: re-wrapped in the front API's shape, the provider's status and words kept.
            assert "the fake provider is overloaded" in told(rig, kind, answer, 503)
            runs += deferred(rig, kind)
    assert_no_turn_stored(rig, before, failed_runs=runs)


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_invalid_json_from_the_provider_is_a_clear_502(rig_factory: RigFactory, route: FrontRoute,
                                                        upstream: Upstream) -> None:
    rig = rig_factory(route, upstream)
    kinds = create_kinds(route, upstream)
    previous = earlier_turn(rig, kinds)
    rig.faulty.fault = "invalid_json"
    before, runs = snapshot(rig), 0
    for kind in kinds:
        message = told(rig, kind, create_as(rig, kind, previous), 502)
        assert "'up'" in message and ("JSON" in message or "event stream" in message), message
        runs += deferred(rig, kind)
    assert_no_turn_stored(rig, before, failed_runs=runs)


@pytest.mark.parametrize("fault", STREAM_FAULTS)
@pytest.mark.parametrize(("route", "upstream"), STREAMING, ids=pair_id)
def test_stream_broken_mid_way_ends_in_an_error_event_and_a_failed_record(
    rig_factory: RigFactory, route: FrontRoute, upstream: Upstream, fault: str
) -> None:
    rig = rig_factory(route, upstream, timeout_s=0.3)
    rig.faulty.fault, rig.faulty.hang_s = fault, 3
    status, raw = rig.stream("alpha beta gamma delta epsilon")
    assert status == 200
    assert route.stream_error(raw), raw[-400:]
    interaction_id = route.stream_id(raw)
    assert interaction_id
    if route.events_path is not None:
        assert_only_the_read_broke(rig, interaction_id, raw)
        return
    state, error = wait_settled(rig, interaction_id)
    assert state == "failed" and error, (state, error)
    assert rig.problems() == []
    if upstream.state == "emulate" and route.item_path is not None:
        got = rig.get(interaction_id)
        assert got.status_code == 200 and route.read_status(got.json()) == "failed"


def assert_only_the_read_broke(rig: Rig, interaction_id: str, raw: bytes) -> None:
    """A relayed read of a run's events broke, not the run, which goes on at the provider:
    the app's stream ended cleanly on an error event in its API's shape, the run is
    not marked failed, and the next read tells how it ended."""
    route = rig.route
    last = sse_events(raw)[-1]
    assert last["type"] == "error" and last["error"]["ref_id"] and last["error"]["message"], last
    state, _ = stored_status(rig, interaction_id)
    assert state == "in_progress"
    assert rig.problems(running_allowed=True) == []
    rig.faulty.fault = None
    assert route.result_path is not None
    run_id = rig.recall.query("SELECT run_id FROM interactions WHERE id = ?", interaction_id)[0][0]
    result = rig.http.get(rig.url(route.result_path.format(id=run_id)), headers=rig.headers())
    assert result.status_code == 200 and route.reply_text(result.json())
    assert stored_status(rig, interaction_id) == ("completed", None)
    assert rig.problems() == []


@pytest.mark.parametrize("fault", ["reset_stream", "truncate_stream", "stall_stream"])
@pytest.mark.parametrize(("route", "upstream"), BACKGROUND, ids=pair_id)
def test_background_run_broken_mid_way_is_marked_failed(
    rig_factory: RigFactory, route: FrontRoute, upstream: Upstream, fault: str
) -> None:
    rig = rig_factory(route, upstream, timeout_s=0.3)
    rig.faulty.fault, rig.faulty.hang_s = fault, 3
    answer = rig.create("alpha beta gamma delta epsilon", **route.background_fields)
    assert answer.status_code == 200
    state, error = wait_settled(rig, route.read_id(answer.json()))
    assert state == "failed" and error
    got = rig.get(route.item_id(answer.json()))
    assert route.read_status(got.json()) == "failed"
    assert rig.problems() == []


@pytest.mark.parametrize(("route", "upstream"), route_upstream_pairs(emulate_only=True), ids=pair_id)
def test_after_faults_the_same_recall_serves_whole_chains(rig_factory: RigFactory, route: FrontRoute,
                                                         upstream: Upstream) -> None:
    """Faults leave nothing behind that breaks the next requests: a chain built after them works."""
    rig = rig_factory(route, upstream, timeout_s=0.3)
    for fault in ("status_503", "invalid_json", "reset_body", "reset_stream"):
        rig.faulty.fault = fault
        if fault == "reset_stream" and route.streams:
            try:
                rig.stream("broken")
            except httpx.TransportError:
                pass  # an app's connection may break with the provider's
        else:
            rig.turn("broken")
    rig.faulty.fault = None
    first = rig.turn("Hi, my name is Ada.")
    second = rig.turn("What is my name?", route.read_id(first.json()))
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


@pytest.mark.parametrize(("route", "upstream"), [(r, emulated(r)[0]) for r in FRONT_ROUTES if r.stream_fields],
                         ids=pair_id)
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
                answer = rig.turn(f"request {n}.{turn}", previous, key=f"key-{n}")
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
        # The stalled stream really was stalled meanwhile: recall was still writing it (a relayed
        # stream's node is only written at its end).
        if not upstream.relays:
            assert rig.recall.query("SELECT count(*) FROM interactions WHERE status = 'in_progress'") == [(1,)]
    finally:
        uploading.close()
    # Once the app reads, the stalled stream completes and is stored whole.
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # a reader at full speed now
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
