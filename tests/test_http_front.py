"""The HTTP front: raw-socket hazards, routing, size limits and error shapes."""

from __future__ import annotations

import socket

import httpx
import pytest

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


def test_duplicate_content_length_is_still_refused(recall: Recall) -> None:
    answer = raw_request(recall, [
        "POST /gemini/v1beta/interactions HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
        "Content-Length: 2", "Content-Length: 3",
    ], b"{}")
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")


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
