"""Streams are bounded (issue 16, item 10): a provider that trickles forever, after its app
left or not, must not hold a connection, a task and an in-progress node indefinitely.

`[upstreams.X] stream_idle_s` (no event for that long; keep-alive comments are not events)
and `stream_max_s` (that long in all) end the node as failed, with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from proxy.config import Upstream

from .support.loop_thread import LoopThread
from .support.serving import FakeServer, running, sse_response


def _chunk(text: str) -> bytes:
    chunk = {"id": "chatcmpl-trickle", "object": "chat.completion.chunk", "created": 0, "model": "trickle-model",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


@dataclass
class TricklingProvider(FakeServer):
    """A Chat Completions server whose streams never end: after one real chunk, a keep-alive
    comment (`comments`) or another one-letter chunk (`events`) every 0.1 s, for ever."""

    name = "trickling provider"
    checked = False  # off contract on purpose: its streams never end
    mode: str = "comments"
    streams_open: int = 0
    streams_closed: int = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = sse_response()
        await response.prepare(request)
        self.streams_open += 1
        try:
            await response.write(_chunk("Hel"))
            while True:
                await asyncio.sleep(0.1)
                await response.write(b": keep-alive\n\n" if self.mode == "comments" else _chunk("l"))
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_closed += 1
            raise


@pytest.fixture
def trickling(loop_thread: LoopThread) -> Iterator[TricklingProvider]:
    yield from running(loop_thread, TricklingProvider())


def wait_for_node(recall: Any, node_id: str, within: float) -> tuple[str, str | None]:
    deadline = time.monotonic() + within
    while True:
        rows = recall.query("SELECT status, error FROM interactions WHERE id = ?", node_id)
        if rows and rows[0][0] != "in_progress":
            return rows[0]
        assert time.monotonic() < deadline, f"{node_id} still {rows} after {within} s"
        time.sleep(0.05)


@pytest.mark.parametrize(("mode", "limits", "key"), [
    ("comments", {"stream_idle_s": 1.0, "stream_max_s": 60.0}, "stream_idle_s"),
    ("events", {"stream_idle_s": 1.0, "stream_max_s": 1.5}, "stream_max_s"),
])
def test_a_stream_that_never_ends_after_its_app_left(recall_factory: Any, trickling: TricklingProvider,
                                                    mode: str, limits: dict[str, float], key: str) -> None:
    trickling.mode = mode
    recall = recall_factory({"slow": Upstream("slow", trickling.url, "openai-chat", **limits)})
    client = openai.OpenAI(api_key="k", base_url=f"{recall.url}/slow/v1", max_retries=0)
    started = time.monotonic()
    stream = client.responses.create(model="trickle-model", input="Say hello.", stream=True)
    node_id = None
    for event in stream:
        if event.type == "response.created":
            node_id = event.response.id
        if event.type == "response.output_text.delta":
            break
    stream.close()  # the app leaves; the provider goes on trickling
    assert node_id is not None
    status, error = wait_for_node(recall, node_id, within=limits["stream_idle_s"] + limits["stream_max_s"] + 5)
    assert status == "failed" and error is not None and key in error, (status, error)
    elapsed = time.monotonic() - started
    assert elapsed < (limits["stream_idle_s"] if key == "stream_idle_s" else limits["stream_max_s"]) + 3
    # The provider's connection was closed, not left open.
    deadline = time.monotonic() + 5
    while trickling.streams_closed < trickling.streams_open:
        assert time.monotonic() < deadline, "recall still holds the provider's stream"
        time.sleep(0.05)
    # What the provider sent before the limit is kept.
    assert "Hel" in str(recall.query("SELECT output FROM interactions WHERE id = ?", node_id)[0][0])


def test_an_app_that_stays_gets_the_end_of_its_stream(recall_factory: Any, trickling: TricklingProvider) -> None:
    trickling.mode = "events"
    recall = recall_factory({"slow": Upstream("slow", trickling.url, "openai-chat", stream_max_s=1.0)})
    started = time.monotonic()
    with httpx.stream("POST", f"{recall.url}/slow/v1/responses", timeout=30,
                      json={"model": "trickle-model", "input": "Say hello.", "stream": True}) as answer:
        body = answer.read().decode()
    assert time.monotonic() - started < 5
    assert answer.status_code == 200 and "stream_max_s" in body, body[-500:]


def test_limits_are_checked_in_the_config() -> None:
    from proxy.config import ConfigError, parse_config

    config = parse_config({"upstreams": {"openai": {"stream_idle_s": 30, "stream_max_s": 900}}})
    assert config.upstreams["openai"].stream_limits == {"idle_s": 30, "max_s": 900, "upstream": "openai"}
    assert parse_config({}).upstreams["openai"].stream_limits["idle_s"] == 600.0  # timeout_s by default
    with pytest.raises(ConfigError, match="stream_max_s"):
        parse_config({"upstreams": {"openai": {"stream_max_s": 0}}})


async def _read_all(feed: list[tuple[float, bytes]], *, consumer_delay: float = 0.0, **limits: Any) -> tuple[int, str]:
    """Events read from a provider that sends `feed` (delay, bytes) then ends; and the limit hit, if one was."""
    from unittest import mock

    from aiohttp import StreamReader

    from proxy.sse import StreamLimit, iter_events

    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())

    async def provider() -> None:
        for delay, data in feed:
            await asyncio.sleep(delay)
            reader.feed_data(data)
        reader.feed_eof()

    task = asyncio.ensure_future(provider())
    seen = 0
    try:
        async for _, events in iter_events(reader, upstream="up", **limits):
            seen += sum(1 for e in events if e.data)
            await asyncio.sleep(consumer_delay)
    except StreamLimit as exc:
        return seen, str(exc)
    finally:
        task.cancel()
    return seen, ""


def test_only_the_providers_silence_counts_as_idle() -> None:
    event, comment = b"data: {}\n\n", b": keep-alive\n\n"
    # Keep-alive comments every 0.1 s do not keep a stream alive past stream_idle_s.
    seen, hit = asyncio.run(_read_all([(0, event)] + [(0.1, comment)] * 20, idle_s=0.5))
    assert seen == 1 and "stream_idle_s" in hit
    # Events do: 20 events 0.1 s apart end normally under the same idle limit.
    assert asyncio.run(_read_all([(0.1, event)] * 20, idle_s=0.5)) == (20, "")
    # An app that reads slowly (0.3 s per event here) is not the provider being idle.
    assert asyncio.run(_read_all([(0.05, event)] * 5, idle_s=0.2, consumer_delay=0.3)) == (5, "")
    # stream_max_s counts everything.
    seen, hit = asyncio.run(_read_all([(0.1, event)] * 50, idle_s=5, max_s=0.5))
    assert 2 <= seen < 50 and "stream_max_s" in hit
