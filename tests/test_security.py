"""Security: where recall listens, the proxy token, owner isolation, credentials and files.

Every front API row (tests/support/front_routes.py) over every upstream it is
tested over: the token and owner checks cover create, get, delete, cancel and
chaining; credentials are looked for in every byte of the database and the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import stat
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from proxy.cli.main import main
from proxy.config import Config, Upstream

from .support import store_checks
from .support.front_routes import FrontRoute, pair_id, route_upstream_pairs
from .support.front_routes import Upstream as RouteUpstream
from .support.loop_thread import LoopThread
from .support.recall_process import RecallProcess, write_config
from .support.rigs import Rig, RigFactory

PAIRS = route_upstream_pairs()
TOKEN = "proxy-token-Xq81"


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


# -- where recall listens --------------------------------------------------------------


def test_loopback_is_the_default(tmp_path: Path) -> None:
    assert Config().host == "127.0.0.1"
    recall = RecallProcess(None, tmp_path / "r.db", tmp_path / "log").start()
    try:
        assert recall.url.startswith("http://127.0.0.1:")
        port = int(recall.url.rsplit(":", 1)[1])
        if (address := non_loopback_address()) is not None:
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=2).close()
    finally:
        assert recall.terminate() == 0


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_non_loopback_host_without_tokens_is_refused(host: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--host", host, "--db", str(tmp_path / "r.db")])
    assert result.exit_code == 2
    assert "refusing to listen" in result.output and "tokens" in result.output and "--insecure" in result.output
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("how", ["--insecure", "tokens"])
def test_non_loopback_host_starts_with_tokens_or_insecure(how: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "recall.toml", {}, **({"tokens": [TOKEN]} if how == "tokens" else {}))
    args = ["--host", "0.0.0.0", *(["--insecure"] if how == "--insecure" else [])]
    recall = RecallProcess(config, tmp_path / "r.db", tmp_path / "log", *args).start()
    assert "listening on http://0.0.0.0:" in recall.log()
    assert recall.terminate() == 0


# -- the proxy token ---------------------------------------------------------------------


def _every_operation(rig: Rig, interaction_id: str, item_id: str) -> list[tuple[str, object]]:
    route = rig.route
    answers = [("create", rig.create("hello")), ("chain", rig.create("again", interaction_id))]
    for name, method, template in route.item_operations():
        answers.append((name, rig.http.request(method, rig.url(template.format(id=item_id)),
                                               headers=rig.headers())))
    return answers


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_proxy_token_is_required_and_never_forwarded(rig_factory: RigFactory, route: FrontRoute,
                                                    upstream: RouteUpstream) -> None:
    rig = rig_factory(route, upstream, tokens=[TOKEN, "second-token"])
    first = rig.turn("Hi, my name is Ada.")
    assert first.status_code == 200
    interaction_id, item_id = route.read_id(first.json()), route.item_id(first.json())
    seen = len(rig.upstream_requests())
    before = rig.counts()
    for token in (None, "wrong", TOKEN[:-1], TOKEN.upper(), "x" + TOKEN):
        rig.token = token
        for operation, answer in _every_operation(rig, interaction_id, item_id):
            route.check_error(answer, 401)  # type: ignore[arg-type]
            assert "x-recall-token" in route.error_message(answer.json()).lower(), operation  # type: ignore[attr-defined]
    assert len(rig.upstream_requests()) == seen, "a request without the token reached the provider"
    assert rig.counts() == before
    rig.token = "second-token"  # any configured token works
    second = rig.turn("What is my name?", interaction_id)
    assert second.status_code == 200 and "Ada" in route.reply_text(second.json())
    for request in rig.upstream_requests():
        assert not any(name.lower().startswith("x-recall") for name in request.headers), request.headers
    assert TOKEN.encode() not in rig.recall.db_bytes()


# -- owner isolation ----------------------------------------------------------------------


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_another_key_sees_nothing_on_any_path(rig_factory: RigFactory, loop_thread: LoopThread, route: FrontRoute,
                                              upstream: RouteUpstream) -> None:
    rig = rig_factory(route, upstream)
    first = rig.turn("Hi, my name is Ada. Remember the word heliotrope.", key="key-A")
    targets = [(route.read_id(first.json()), route.item_id(first.json()))]
    running = None
    if route.background_fields is not None and upstream.state == "emulate":
        # Held by the provider until released: a run still in progress while the others try it.
        rig.fake.hold = asyncio.Event()
        created = rig.create("a slow one", key="key-A", **route.background_fields).json()
        running = route.read_id(created)
        targets.append((running, route.item_id(created)))
    seen = len(rig.upstream_requests())
    for other in ("key-B", None):  # another key, and no key at all
        for interaction_id, item_id in targets:
            for _, method, template in route.item_operations():
                answer = rig.http.request(method, rig.url(template.format(id=item_id)), headers=rig.headers(other))
                route.check_error(answer, 404)
                assert "heliotrope" not in answer.text
            if route.item_path is not None:
                follow = rig.http.get(rig.url(route.item(item_id)), params={"stream": "true"},
                                      headers=rig.headers(other))
                route.check_error(follow, 404)
            chained = rig.create("What is my name?", interaction_id, key=other)
            route.check_error(chained, route.previous_not_found_status)
    # Nothing the others sent reached the provider (the held run's own calls, with key-A, go on meanwhile).
    strays = [r for r in rig.upstream_requests()[seen:]
              if "key-A" not in " ".join(r.headers.values()) or "What is my name?" in str(r.body)]
    assert strays == [], "a foreign id was sent to the provider"
    if running is not None:
        assert rig.recall.query("SELECT status FROM interactions WHERE id = ?", running) == [("in_progress",)]
        loop_thread.loop.call_soon_threadsafe(rig.fake.hold.set)
        deadline = time.monotonic() + 10
        while rig.recall.query("SELECT status FROM interactions WHERE id = ?", running)[0][0] == "in_progress":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert rig.recall.query("SELECT status FROM interactions WHERE id = ?", running) == [("completed",)]
    # The owner still has everything: nothing was deleted or cancelled by the others.
    if route.item_path is not None:
        assert rig.get(targets[0][1], key="key-A").status_code == 200
    mine = rig.turn("What is my name?", targets[0][0], key="key-A")
    assert mine.status_code == 200 and "Ada" in route.reply_text(mine.json())


# -- credentials: never stored, never logged ------------------------------------------------

SECRETS = {
    "x-goog-api-key": "AIzaSecretGoogKey0001",
    "authorization": "Bearer sk-SecretBearer0002",
    "x-api-key": "sk-ant-SecretApiKey0003",
    "cookie": "session=SecretCookie0004",
}
QUERY_SECRETS = {"key": "AIzaSecretQueryKey0005", "api_key": "SecretQueryApiKey0006"}
BODY_MARKER = "Body-Marker-Zanzibar-0007"
RECALL_LOGGERS = ("recall", "proxy", "aiohttp", "asyncio", "aiosqlite")


@pytest.mark.parametrize(("route", "upstream"), PAIRS, ids=pair_id)
def test_credentials_are_never_stored_or_logged(rig_factory: RigFactory, route: FrontRoute,
                                                upstream: RouteUpstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig = rig_factory(route, upstream, tokens=[TOKEN])
    rig.extra_headers = dict(SECRETS)
    query = "?" + "&".join(f"{k}={v}" for k, v in QUERY_SECRETS.items())
    body = route.body(f"My secret marker is {BODY_MARKER}.")
    created = rig.http.post(rig.url(route.create_path) + query, json=body, headers=rig.headers(None))
    assert created.is_success
    item_id = route.item_id(created.json())
    assert rig.stream(f"stream {BODY_MARKER}", key=None)[0] == 200
    sent = 2 if route.stream_fields is not None else 3  # a task run streams by a create and a read of its events
    if route.item_path is not None:
        rig.http.get(rig.url(route.item(item_id)) + query, headers=rig.headers(None))
        sent += 1
    rig.http.post(rig.url(route.create_path) + query, content=b"{broken " + BODY_MARKER.encode(),
                  headers=rig.headers(None))
    rig.http.get(rig.url("/v1beta/unmodelled") + query, headers=rig.headers(None))
    rig.faulty.fault = "status_503"
    rig.http.post(rig.url(route.create_path) + query, json=body, headers=rig.headers(None))
    rig.faulty.fault = None
    sent += 3
    if route.item_path is not None and route.deletable:
        rig.http.delete(rig.url(route.item(item_id)) + query, headers=rig.headers(None))
        sent += 1
    time.sleep(0.2)  # let the last audit rows land
    secrets = [*(v.split(" ")[-1].split("=")[-1] for v in SECRETS.values()), *QUERY_SECRETS.values()]
    # The provider did get the app's credentials (they are the app's to send)...
    assert any(secret in value for r in rig.upstream_requests() for value in r.headers.values() for secret in secrets)
    # ...but not one byte of them, nor of the proxy token, is in recall's files or log.
    stored = rig.recall.db_bytes()
    # What recall's process logs (this test's own HTTP client logs its URLs, which is its business).
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records if r.name.startswith(RECALL_LOGGERS))
    for secret in [*secrets, TOKEN]:
        assert secret.encode() not in stored, secret
        assert secret not in logged, secret
    # One request-log line per request, with the path but never a body.
    lines = [r.getMessage() for r in caplog.records if r.name == "recall.access"]
    assert len(lines) == sent, lines
    # The fields after the latency (model=, cache=, id=, error="…") are recall's own words, never a body.
    assert all(re.fullmatch(r"(GET|POST|DELETE) /up/\S+ (\d{3}|-) \d+\.\dms( \w+=\S+)*( error=\".*\")?", line)
               for line in lines), lines
    assert any(re.match(rf"POST /up{re.escape(route.create_path)} 20[02] ", line) for line in lines)  # Parallel: 202
    assert BODY_MARKER not in logged


# -- files ---------------------------------------------------------------------------------


def test_database_wal_and_directory_are_private(rig_factory: RigFactory, recall_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from .support.front_routes import FRONT_ROUTES

    previous = os.umask(0)  # the most permissive umask: recall's own modes must do the work
    try:
        recall = recall_factory({"up": Upstream("up", "http://127.0.0.1:9", "gemini", state="emulate")},
                                db_name="fresh/dir/recall.db")
    finally:
        os.umask(previous)
    route = FRONT_ROUTES[0]
    import httpx

    httpx.post(f"{recall.url}/up{route.create_path}", json=route.body("x"))  # a write, so the WAL exists
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(recall.db_path) + suffix)
        assert path.exists(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    # Every directory recall made, not only the last one (mkdir -p leaves parents to the umask).
    for directory in (recall.db_path.parent, recall.db_path.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, (directory, oct(directory.stat().st_mode))
    assert store_checks.integrity(recall.db_path) == "ok"
    # A cassette export holds the same conversations: 0600 whatever the umask, also over an older, wider file.
    cassette = tmp_path / "out.jsonl"
    cassette.write_text("")
    cassette.chmod(0o666)
    previous = os.umask(0)
    try:
        result = CliRunner().invoke(main, ["cassette", "export", "--db", str(recall.db_path), "-o", str(cassette)])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(cassette.stat().st_mode) == 0o600, oct(cassette.stat().st_mode)
