"""What every fake server in tests/support/ and the tests shares, written once.

- start_on_loopback: an aiohttp app on a free loopback port (the fakes, the viewer under test).
- serve_on_loopback: one handler for every path, each answer checked against the contract of
  the provider API its path belongs to (tests/support/contract).
- FakeServer: a server a test starts and stops (`running` does both around one test), at `url`.
- FakeProvider: the base of the fake providers: the requests it received (`Seen`), the
  conversations it refused for an incomplete history, and an SSE answer written at the pace a
  test sets (`stream_delay`, `hold`), which a fault may cut into.
- sse_frame and word_pieces: one event of a stream, and a text as the pieces a fake streams.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from aiohttp import web

from .brain import history_problem
from .contract.tap import contract_tap
from .loop_thread import LoopThread

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def start_on_loopback(app: web.Application, **runner_options: Any) -> tuple[web.AppRunner, str]:
    """`app` on a free port of 127.0.0.1: the runner (cleanup() stops it) and the base URL."""
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def serve_on_loopback(handler: Handler, name: str, *, checked: bool = True, max_body: int = 64 * 1024 * 1024,
                            shutdown_timeout: float = 0.5, api: str | None = None) -> tuple[web.AppRunner, str]:
    """Every request to `handler`, on a free loopback port: the runner and the base URL.

    Every answer is checked against the contract of the provider API its path belongs to
    (tests/support/contract): a fake must answer what the provider documents. `name` says
    which fake, in the violations reported, and `api` which provider it plays where a path alone
    does not tell (Parallel serves OpenAI's `/v1/responses`). `checked=False` is for a provider that misbehaves
    in every answer on purpose (a test of how recall bears it), never for a fake that plays one.
    The default `max_body` is recall's own limit, which is what tests exercise."""
    app = web.Application(client_max_size=max_body)
    # [\s\S]: a path may hold an encoded newline; it is the fake's to answer, in its provider's shape.
    app.router.add_route("*", r"/{tail:[\s\S]*}", handler)
    if checked:
        app.on_response_prepare.append(contract_tap(name, lambda request: request.path, api_of=lambda request: api))
    # Paused answers end with the test. Request lines up to 64 KiB reach the handler, as they reach
    # recall: a long id is then a 404 in the provider's shape, not aiohttp's text/plain 400.
    return await start_on_loopback(app, shutdown_timeout=shutdown_timeout, max_line_size=65536,
                                   max_field_size=65536)


@dataclass
class Seen:
    """One request a fake received; `body` is its JSON, else its bytes (None when empty); `raw`
    its body byte for byte."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


class Step(enum.Enum):
    """What a stream fault does at a frame: write it as usual, leave it out, or end the answer there."""

    WRITE = "write"
    SKIP = "skip"
    END = "end"


# Called before each frame is written (its index, the answer so far).
StreamFault = Callable[[int, web.StreamResponse], Awaitable[Step]]


def sse_response() -> web.StreamResponse:
    return web.StreamResponse(headers={"Content-Type": "text/event-stream"})


def sse_frame(payload: Any, event: str | None = None, *, end: bytes = b"\n\n") -> bytes:
    """One server-sent event: its `event:` line when named, then `data:` with `payload` as JSON."""
    named = f"event: {event}\n".encode() if event else b""
    return named + b"data: " + json.dumps(payload).encode() + end


def word_pieces(text: str) -> list[str]:
    """`text` as a fake streams it: word by word, each but the last with the space after it."""
    words = text.split(" ")
    return [word + (" " if n < len(words) - 1 else "") for n, word in enumerate(words)]


@dataclass(kw_only=True)
class FakeServer:
    """A server on loopback that a test starts and stops, at `url` once started.

    A subclass names itself (`name`, in contract violations) and answers every path in `_handle`."""

    name: ClassVar[str]
    # Whether its answers are checked against the providers' contracts (serve_on_loopback), and
    # the upstream `api` it plays where a path alone does not say which provider's contract holds.
    checked: ClassVar[bool] = True
    api: ClassVar[str | None] = None
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        self._runner, self.url = await serve_on_loopback(self._handle, self.name, checked=self.checked, api=self.api)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError


Server = TypeVar("Server", bound=FakeServer)


def running(loop_thread: LoopThread, server: Server) -> Iterator[Server]:
    """`server` started for one test and stopped after it (a fixture yields from this)."""
    loop_thread.run(server.start())
    yield server
    loop_thread.run(server.stop())


@dataclass(kw_only=True)
class FakeProvider(FakeServer):
    """What every fake provider has (front_routes.py says what a test table needs of one)."""

    requests: list[Seen] = field(default_factory=list)
    # Stream controls: seconds between events; an event that, once set, lets a stream go on
    # after its first event. A fake may give `hold` more to hold (a whole answer, a task run).
    stream_delay: float = 0.0
    hold: asyncio.Event | None = None
    streams_finished: int = 0
    # The conversations whose history was incomplete (brain.history_problem), refused with a 400.
    history_mismatches: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def last_body(self) -> Any:
        return self.requests[-1].body

    async def _record(self, request: web.Request) -> Any:
        """Read `request`, keep it in `requests`, and return its body (as Seen holds it)."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body, raw))
        return body

    def _history_mismatch(self, user_texts: list[str]) -> str | None:
        """Why a conversation arrived without exactly its earlier turns (kept in history_mismatches),
        or None; the fake refuses it with a 400 in its provider's shape."""
        problem = history_problem(user_texts)
        if problem is not None:
            self.history_mismatches.append(problem)
        return problem

    async def _write_stream(self, request: web.Request, frames: Sequence[bytes], *, pause: float = 0.0,
                            response: web.StreamResponse | None = None,
                            fault: StreamFault | None = None) -> web.StreamResponse:
        """`frames` as one SSE answer, at the pace the test set: after the first frame it waits while
        `hold` is unset, after each it sleeps `stream_delay` + `pause` (a `[pause Ns]` the conversation
        asked for). `fault` may cut in before any frame; an answer that ends whole counts in
        `streams_finished`."""
        response = response or sse_response()
        await response.prepare(request)
        for n, frame in enumerate(frames):
            step = Step.WRITE if fault is None else await fault(n, response)
            if step is Step.END:
                return response
            if step is Step.SKIP:
                continue
            await response.write(frame)
            if n == 0 and self.hold is not None:
                await self.hold.wait()
            if delay := self.stream_delay + pause:
                await asyncio.sleep(delay)
        await response.write_eof()
        self.streams_finished += 1
        return response
