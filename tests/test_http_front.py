"""The HTTP front: raw-socket hazards, routing, size limits and error shapes."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from proxy.http.compat import needs_folding

from .conftest import Recall


def raw_request(recall: Recall, lines: list[str], body: bytes = b"") -> bytes:
    host, port = recall.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_two_user_agent_headers_are_accepted(recall: Recall) -> None:
    body = b'{"model": "m", "input": "hi"}'
    answer = raw_request(recall, [
        "POST /gemini/v1beta/interactions HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
        "User-Agent: google-genai-sdk/1.56.0 gl-python/3.11.7", "User-Agent: httpx",
        "x-goog-api-key: k", "Content-Type: application/json", f"Content-Length: {len(body)}",
    ], body)
    assert answer.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("user_agents", [["User-Agent: a"], ["User-Agent: a", "User-Agent: b"]])
def test_duplicate_content_length_is_still_refused(recall: Recall, user_agents: list[str]) -> None:
    # By aiohttp's C parser (one User-Agent) and by the folding one (two).
    answer = raw_request(recall, [
        "POST /gemini/v1beta/interactions HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *user_agents,
        "Content-Length: 2", "Content-Length: 3",
    ], b"{}")
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")


def kept_alive_requests(recall: Recall, heads: list[list[bytes]], body: bytes) -> list[bytes]:
    """Each request (its head given as the chunks it is sent in) on one connection; each one's status line."""
    host, port = recall.url.removeprefix("http://").split(":")
    statuses = []
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        for chunks in heads:
            for n, chunk in enumerate(chunks):
                if n:
                    time.sleep(0.05)  # a chunk of its own
                sock.sendall(chunk)
            sock.sendall(body)
            statuses.append(reader.readline().strip())
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
    return statuses


BODY = b'{"model": "m", "input": "hi"}'


def head(*user_agents: str) -> bytes:
    return "\r\n".join(["POST /gemini/v1beta/interactions HTTP/1.1", "Host: 127.0.0.1", *user_agents,
                         "x-goog-api-key: k", "Content-Type: application/json",
                         f"Content-Length: {len(BODY)}"]).encode() + b"\r\n\r\n"


def test_the_parser_is_chosen_by_a_connections_first_request(recall: Recall) -> None:
    """aiohttp's C parser unless the first head repeats User-Agent (or is not whole in its first chunk)."""
    twice = head("User-Agent: google-genai-sdk/1.56.0", "User-Agent: httpx")
    assert kept_alive_requests(recall, [[twice], [twice]], BODY) == [b"HTTP/1.1 200 OK"] * 2
    split = [twice[:40], twice[40:]]  # the first chunk does not hold the whole head: folded, to be safe
    assert kept_alive_requests(recall, [split, [twice]], BODY) == [b"HTTP/1.1 200 OK"] * 2
    # A connection that began with one User-Agent has the C parser, which refuses a repeated one
    # (no SDK changes its headers between requests of a connection).
    once = head("User-Agent: httpx")
    first, second = kept_alive_requests(recall, [[once], [twice]], BODY)
    assert first == b"HTTP/1.1 200 OK" and second.endswith(b" 400 Bad Request")


@pytest.mark.parametrize(("chunk", "folding"), [
    (head("User-Agent: a"), False),
    (head("User-Agent: a", "user-agent: b"), True),
    (head("User-Agent: a")[:-2], True),  # the head goes on in a later chunk
    (head("User-Agent: a") + b"\r\nUser-Agent: in the body\r\n", False),
    (head(), False),
])
def test_needs_folding(chunk: bytes, folding: bool) -> None:
    assert needs_folding(chunk) is folding


def test_health(recall: Recall) -> None:
    answer = httpx.get(f"{recall.url}/_recall/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_unknown_upstream_names_the_configured_ones(recall: Recall) -> None:
    answer = httpx.post(f"{recall.url}/nowhere/v1/interactions", json={})
    assert answer.status_code == 404
    assert "/gemini" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'{"input": "hi"}', "model"),
        (b'{"model": "m"}', "input"),
        (b'{"model": "m", "input": 42}', "input: expected a string"),
        (b'{"model": "m", "input": "hi", "store": "yes"}', "store: expected true or false"),
        (b'{"model": "m", "input": [{"type": "user_input", "content": "x"}]}', "content: expected a list"),
        (b'{"model": "m", "input": [{"role": "tool", "content": "x"}]}', "role"),
        (b'{"model": "m", "input": "hi", "tools": {"a": 1}}', "tools: expected a list"),
        (b'\xff\xfe{"model"}', "not valid JSON"),
    ],
)
def test_bad_create_bodies_are_400_in_googles_shape(recall: Recall, body: bytes, fragment: str) -> None:
    answer = httpx.post(f"{recall.base('gemini')}/v1/interactions", content=body,
                        headers={"content-type": "application/json", "x-goog-api-key": "k"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert fragment in error["message"]
    assert recall.query("SELECT count(*) FROM interactions") == [(0,)]


def test_oversized_body_is_413_in_the_front_shape(recall_factory, fake_gemini) -> None:  # type: ignore[no-untyped-def]
    from proxy.config import Upstream

    recall = recall_factory({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")}, max_body_mb=1)
    big = b'{"model": "m", "input": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    answer = httpx.post(f"{recall.base('gemini')}/v1/interactions", content=big,
                        headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert "max_body_mb" in answer.json()["error"]["message"]
    assert fake_gemini.requests == []


def test_get_unknown_id_is_404(recall: Recall) -> None:
    answer = httpx.get(f"{recall.base('gemini')}/v1/interactions/v1_nope", params={"stream": "false"})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_unmodelled_paths_are_relayed_and_recorded(recall: Recall, fake_gemini) -> None:  # type: ignore[no-untyped-def]
    answer = httpx.post(f"{recall.base('gemini')}/v1beta/models/m:generateContent?key=secret-in-query",
                        json={"contents": [{"role": "user", "parts": [{"text": "relay me"}]}]})
    assert answer.status_code == 200
    assert "You said: relay me" in answer.text
    assert fake_gemini.requests[-1].query == {"key": "secret-in-query"}
    rows = recall.query("SELECT path, status FROM exchanges")
    assert rows == [("/v1beta/models/m:generateContent", 200)]
    assert b"secret-in-query" not in recall.db_bytes()
