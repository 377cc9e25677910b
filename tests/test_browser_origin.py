"""No web page can use recall (issue 16, item 3).

With `api_key_env` set, recall adds the operator's key to whatever reaches it: a page using
DNS rebinding (its own name pointed at 127.0.0.1, so `Host: evil.example`), or a cross-site
"simple" POST (`Content-Type: text/plain`, no preflight), must be refused before anything is
sent; preflights are answered by recall and never relayed; the origins the operator names in
`[server] cors_origins` get the CORS headers the SDKs' browser builds need.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from proxy.config import Upstream

from .support.front_routes import FrontRoute, pair_id, route_upstream_pairs
from .support.front_routes import Upstream as RouteUpstream
from .support.loop_thread import LoopThread
from .support.rigs import RigFactory
from .support.serving import FakeServer, running, start_on_loopback

EVIL = "https://evil.example"
APP = "http://localhost:3000"
OPERATOR_KEY = "operator-key-Secret0707"


def hostile_headers(port: str) -> list[dict[str, str]]:
    return [
        {"Host": "evil.example"},                                   # DNS rebinding
        {"Host": f"evil.example:{port}"},
        {"Host": "127.0.0.1.evil.example"},
        {"Origin": EVIL, "content-type": "text/plain"},             # a simple cross-site POST, no preflight
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},                                         # a sandboxed frame, a file:// page
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": APP, "Sec-Fetch-Site": "same-site"},             # another port of this machine: another origin
    ]


@pytest.mark.parametrize(("route", "upstream"), route_upstream_pairs(), ids=pair_id)
def test_pages_of_other_origins_are_refused_in_the_front_shape(rig_factory: RigFactory, route: FrontRoute,
                                                              upstream: RouteUpstream,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recall.access")
    rig = rig_factory(route, upstream)
    port = rig.recall.url.rsplit(":", 1)[1]
    before = rig.counts()
    body = orjson.dumps(route.body("Spend the operator's key."))
    hostile = hostile_headers(port)
    for headers in hostile:
        answer = rig.post_raw(body, headers=headers)
        route.check_error(answer, 403)
        assert "access-control-allow-origin" not in answer.headers, headers
    preflight = rig.http.options(rig.url(route.create_path), headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    assert rig.upstream_requests() == [], "a refused request reached the provider"
    assert rig.counts() == before, "a refused request was written"
    lines = [r.getMessage() for r in caplog.records if r.name == "recall.access"]
    refused = [line for line in lines if " 403 " in line]
    assert len(refused) == len(lines) == len(hostile) + 1, lines  # one line each, saying why
    assert all("allowed_hosts" in line or "cors_origins" in line for line in refused), refused
    # This machine's programs, by any loopback name, are answered as before.
    for host in ("127.0.0.1", f"localhost:{port}", "127.0.0.2", f"[::1]:{port}", "LOCALHOST"):
        answer = rig.post_raw(body, headers={"Host": host})
        assert answer.is_success, (host, answer.status_code, answer.text)
    answer = rig.post_raw(body, headers={"Origin": rig.recall.url, "Sec-Fetch-Site": "same-origin"})
    assert answer.is_success, answer.text  # recall's own page (the viewer)


@dataclass
class PermissiveProvider(FakeServer):
    """A provider that answers anything, with a permissive CORS header, and keeps what it was sent."""

    name = "permissive provider"
    checked = False  # off contract on purpose: it answers any path with one body and a permissive CORS header
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.headers)))
        return web.json_response({"object": "list", "data": []}, headers={
            "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"})


@pytest.fixture
def provider(loop_thread: LoopThread) -> Iterator[PermissiveProvider]:
    yield from running(loop_thread, PermissiveProvider())


@pytest.fixture
def operator_recall(recall_factory: Any, provider: PermissiveProvider, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EDGE_OPERATOR_KEY", OPERATOR_KEY)
    return recall_factory({"op": Upstream("op", provider.url, "openai", api_key_env="EDGE_OPERATOR_KEY")},
                          cors_origins=[APP], allowed_hosts=["recall.internal"])


def client(recall: Any, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(api_key="the-page-has-no-key", base_url=f"{recall.url}/op/v1", max_retries=0,
                         default_headers=headers)


def test_a_page_never_spends_the_operators_key(operator_recall: Any, provider: PermissiveProvider) -> None:
    for headers in ({"Host": "evil.example"}, {"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client(operator_recall, **headers).models.list()
        assert "allowed_hosts" in str(refused.value) or "cors_origins" in str(refused.value)
    simple = httpx.post(f"{operator_recall.url}/op/v1/responses", content=b'{"model": "m", "input": "hi"}',
                        headers={"Content-Type": "text/plain", "Origin": EVIL})
    assert simple.status_code == 403 and simple.json()["error"]["code"] == "cross_origin_refused"
    preflight = httpx.options(f"{operator_recall.url}/op/v1/responses", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert provider.requests == [], "the operator's key was sent for a web page"


def test_an_allowed_origin_gets_what_browser_sdks_need(operator_recall: Any, provider: PermissiveProvider) -> None:
    asked = ("authorization, content-type, x-stainless-os, x-stainless-lang, x-stainless-package-version,"
             " x-stainless-runtime, x-stainless-retry-count, anthropic-dangerous-direct-browser-access")
    preflight = httpx.options(f"{operator_recall.url}/op/v1/responses", headers={
        "Origin": APP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": asked,
        "Access-Control-Request-Private-Network": "true"})
    assert preflight.status_code == 204, preflight.text
    assert preflight.headers["access-control-allow-origin"] == APP
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == asked
    assert preflight.headers["access-control-allow-private-network"] == "true"
    assert provider.requests == [], "a preflight was relayed"
    listed = client(operator_recall, Origin=APP, **{"Sec-Fetch-Site": "same-site"}).models.with_raw_response.list()
    # recall's own CORS answer, never the provider's `*`.
    assert listed.headers.get_list("access-control-allow-origin") == [APP]
    assert listed.headers["vary"] == "Origin"
    assert [(m, p) for m, p, _ in provider.requests] == [("GET", "/v1/models")]
    assert provider.requests[0][2]["Authorization"] == f"Bearer {OPERATOR_KEY}"
    # A name the operator allowed, with or without a port.
    for host in ("recall.internal", "recall.internal:8642"):
        assert httpx.get(f"{operator_recall.url}/op/v1/models", headers={"Host": host}).status_code == 200
    # A program (no browser marks) gets no CORS headers at all, the provider's included.
    plain = httpx.get(f"{operator_recall.url}/op/v1/models")
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


def test_recall_own_endpoints_check_host_too(operator_recall: Any) -> None:
    assert httpx.get(f"{operator_recall.url}/_recall/health").status_code == 200
    refused = httpx.get(f"{operator_recall.url}/_recall/health", headers={"Host": "evil.example"})
    assert refused.status_code == 403 and "allowed_hosts" in refused.json()["error"]["message"]


def test_recall_serve_flags(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from proxy.cli.main import main

    from .support.recall_process import RecallProcess

    bad = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "r.db"), "--cors-origin", "*"])
    assert bad.exit_code == 2 and "cors_origins" in bad.output and not (tmp_path / "r.db").exists()
    recall = RecallProcess(None, tmp_path / "r.db", tmp_path / "log", "--cors-origin", APP,
                           "--allowed-host", "recall.internal").start()
    try:
        preflight = httpx.options(f"{recall.url}/openai/v1/responses",
                                  headers={"Origin": APP, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == APP
        assert httpx.get(f"{recall.url}/_recall/health", headers={"Host": "recall.internal"}).status_code == 200
        assert httpx.get(f"{recall.url}/_recall/health", headers={"Host": "other.internal"}).status_code == 403
        assert "not 'other.internal'" in recall.log()  # the one log line says why
    finally:
        assert recall.terminate() == 0


def test_the_standalone_viewer_follows_the_same_rule(tmp_path: Any, loop_thread: LoopThread) -> None:
    from proxy.config import Config
    from proxy.store.sqlite import open_sync
    from proxy.viewer.app import create_viewer_app

    (tmp_path / "r.db").touch()
    open_sync(tmp_path / "r.db").close()
    runner, url = loop_thread.run(start_on_loopback(create_viewer_app(Config(), tmp_path / "r.db")))
    try:
        assert httpx.get(f"{url}/_recall/api/info").status_code == 200
        cross = httpx.get(f"{url}/_recall/api/info", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403 and cross.json()["error"]["code"] == "cross_origin_refused"
    finally:
        loop_thread.run(runner.cleanup())


@pytest.mark.parametrize(("key", "value", "says"), [
    ("cors_origins", ["*"], "any web page"),
    ("cors_origins", ["localhost:3000"], "scheme://host[:port]"),
    ("cors_origins", ["http://app.example/path"], "scheme://host[:port]"),
    ("allowed_hosts", ["http://recall.internal/"], "not a host name"),
    ("allowed_hosts", "recall.internal", "must be a list"),
    ("max_connections", -1, "0 (sized from the open-files limit)"),
])
def test_bad_server_keys_say_what_to_write(key: str, value: Any, says: str) -> None:
    from proxy.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as bad:
        parse_config({"server": {key: value}}, "recall.toml")
    assert f"[server] {key}" in str(bad.value) and says in str(bad.value)
