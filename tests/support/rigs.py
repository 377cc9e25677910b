"""A rig: one front API over one upstream, with a fake provider behind a fault injector.

    app (httpx) -> recall (in-process, real socket) -> FaultyUpstream -> fake provider

Registered as a pytest plugin (tests/conftest.py), so tests ask for `rig_factory`
and build rigs from the rows of tests/support/front_routes.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from proxy.config import Upstream as UpstreamConfig

from . import store_checks
from .faulty_upstream import FaultyUpstream
from .front_routes import FrontRoute, Upstream
from .loop_thread import LoopThread

MOUNT = "up"


@dataclass
class Rig:
    route: FrontRoute
    upstream: Upstream
    recall: Any  # tests.conftest.Recall
    fake: Any
    faulty: FaultyUpstream
    http: httpx.Client
    token: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def native(self) -> bool:
        return self.upstream.state == "native"

    def url(self, path: str) -> str:
        return f"{self.recall.url}/{MOUNT}{path}"

    def headers(self, key: str | None = "key-A", headers: dict[str, str] | None = None) -> dict[str, str]:
        out = dict(self.route.key_headers(key)) if key else {}
        if self.token:
            out["X-Recall-Token"] = self.token
        return {**out, **self.extra_headers, **(headers or {})}

    def create(self, text: str, previous: str | None = None, *, key: str | None = "key-A",
               headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
        """The create alone (for an asynchronous API, its answer is the run just queued)."""
        return self.http.post(self.url(self.route.create_path), json=self.route.body(text, previous, **extra),
                              headers=self.headers(key, headers))

    def turn(self, text: str, previous: str | None = None, *, key: str | None = "key-A",
             headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
        """A whole turn: the answer with the reply in it, or the error that came instead."""
        return take_turn(self.http, self.url, self.route, self.route.body(text, previous, **extra),
                         self.headers(key, headers))

    def post_raw(self, body: bytes, *, key: str | None = "key-A", headers: dict[str, str] | None = None,
                 path: str | None = None) -> httpx.Response:
        return self.http.post(self.url(path or self.route.create_path), content=body,
                              headers={"content-type": "application/json", **self.headers(key, headers)})

    def get(self, interaction_id: str, *, key: str | None = "key-A") -> httpx.Response:
        return self.http.get(self.url(self.route.item(interaction_id)), headers=self.headers(key))

    def delete(self, interaction_id: str, *, key: str | None = "key-A") -> httpx.Response:
        return self.http.delete(self.url(self.route.item(interaction_id)), headers=self.headers(key))

    def cancel(self, interaction_id: str, *, key: str | None = "key-A") -> httpx.Response:
        return self.http.post(self.url(self.route.cancel(interaction_id)), headers=self.headers(key))

    def stream(self, text: str, previous: str | None = None, *, key: str | None = "key-A",
               **extra: Any) -> tuple[int, bytes]:
        return stream_turn(self.http, self.url, self.route, text, previous, self.headers(key), **extra)

    def raw(self, method: str, path: str, body: bytes = b"") -> httpx.Response:
        """A request sent byte for byte over a socket: the path exactly as given, no
        client-side normalisation (httpx would resolve `..` itself)."""
        host, port = self.recall.url.removeprefix("http://").split(":")
        head = [f"{method} /{MOUNT}{path} HTTP/1.1", f"Host: {host}", "Connection: close",
                f"Content-Length: {len(body)}", "Content-Type: application/json",
                *(f"{k}: {v}" for k, v in self.headers().items())]
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        head_bytes, _, content = received.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
        if any(k.lower() == "transfer-encoding" for k, _ in headers):
            content = dechunk(content)
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        return httpx.Response(int(lines[0].split()[1]), headers=headers, content=content)

    def counts(self) -> dict[str, int]:
        return store_checks.counts(self.recall.db_path)

    def problems(self, **kwargs: Any) -> list[str]:
        return store_checks.problems(self.recall.db_path, **kwargs)

    def upstream_requests(self) -> list[Any]:
        return self.fake.requests


def take_turn(http: httpx.Client, url: Callable[[str], str], route: FrontRoute, body: dict[str, Any],
              headers: dict[str, str]) -> httpx.Response:
    """A whole turn of `route`'s API: the create, and for an asynchronous API the read of
    its result; the answer that holds the reply, or the error that came instead."""
    created = http.post(url(route.create_path), json=body, headers=headers)
    if route.result_path is None or not created.is_success:
        return created
    return http.get(url(route.result_path.format(id=route.item_id(created.json()))), headers=headers)


def stream_turn(http: httpx.Client, url: Callable[[str], str], route: FrontRoute, text: str, previous: str | None,
                headers: dict[str, str], **extra: Any) -> tuple[int, bytes]:
    """A streamed turn: a create that streams, or a create and then its events; the status and raw bytes."""
    if route.stream_fields is not None:
        body = route.body(text, previous, **route.stream_fields, **extra)
        with http.stream("POST", url(route.create_path), json=body, headers=headers) as answer:
            return answer.status_code, answer.read()
    assert route.events_path is not None, f"{route.name} does not stream"
    created = http.post(url(route.create_path), json=route.body(text, previous, **extra), headers=headers)
    if not created.is_success:
        return created.status_code, created.content
    with http.stream("GET", url(route.events_path.format(id=route.item_id(created.json()))),
                     headers=headers) as answer:
        return answer.status_code, answer.read()


def dechunk(body: bytes) -> bytes:
    """An HTTP/1.1 chunked body as the bytes it carries (read in place: bodies run to megabytes)."""
    out, at = bytearray(), 0
    while at < len(body):
        line_end = body.index(b"\r\n", at)
        size = int(body[at:line_end].split(b";")[0], 16)
        if size == 0:
            break
        out += body[line_end + 2:line_end + 2 + size]
        at = line_end + 2 + size + 2
    return bytes(out)


RigFactory = Callable[..., Rig]


@pytest.fixture
def rig_factory(loop_thread: LoopThread, recall_factory: Any) -> Iterator[RigFactory]:
    servers: list[Any] = []
    clients: list[httpx.Client] = []

    def make(route: FrontRoute, upstream: Upstream, *, upstream_url: str | None = None, timeout_s: float = 10.0,
             http_timeout: float = 20.0, **settings: Any) -> Rig:
        fake = upstream.fake()
        loop_thread.run(fake.start())
        servers.append(fake)
        faulty = FaultyUpstream(fake.url)
        loop_thread.run(faulty.start())
        servers.append(faulty)
        mounted = UpstreamConfig(MOUNT, upstream_url or faulty.url, upstream.api, state=upstream.state,
                                 timeout_s=timeout_s)
        recall = recall_factory({MOUNT: mounted}, **settings)
        http = httpx.Client(timeout=http_timeout)
        clients.append(http)
        tokens = settings.get("tokens")
        return Rig(route, upstream, recall, fake, faulty, http, token=tokens[0] if tokens else None)

    yield make
    for http in clients:
        http.close()
    for server in reversed(servers):
        loop_thread.run(server.stop())
