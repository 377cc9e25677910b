"""A misbehaving provider: a reverse proxy on loopback in front of any fake provider.

It passes requests through to the fake untouched until a fault is armed, and
then misbehaves the way real networks and providers do. Being generic (bytes
in, bytes out), it serves every upstream API: a new fake provider gets every
fault without a line of its own.

Faults (set `fault`, optionally `after_events`):
- "status_503": answers 503 with a provider-style JSON error, the fake untouched;
- "other_status": answers `status` (a 204, a redirect: what no provider answers a create with), empty;
- "invalid_json": answers 200 application/json whose body is not JSON;
- "reset_body": sends the fake's headers and half its body, then resets the connection;
- "hang": sends nothing until `hang_s` has passed (for timeout_s);
- "reset_stream", "truncate_stream", "bad_event", "stall_stream": an SSE answer
  passes `after_events` events, then resets / ends cleanly / sends an event
  that is not JSON and goes on / stops sending but keeps the connection open.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .contract import contract_for
from .serving import serve_on_loopback

OVERLOADED_MESSAGE = "the fake provider is overloaded"
# A provider that is overloaded says so in its own error shape (each one its contract's error
# model, tests/support/contract): relayed byte for byte, it must still be what the app's SDK reads.
_OVERLOADED_BY_PROVIDER: dict[str, dict[str, Any]] = {
    "OpenAI": {"error": {"message": OVERLOADED_MESSAGE, "type": "server_error", "param": None, "code": None}},
    "Parallel Chat (OpenAI Chat Completions)": {"error": {"message": OVERLOADED_MESSAGE, "type": "server_error",
                                                          "param": None, "code": None}},
    "Anthropic": {"type": "error", "error": {"type": "overloaded_error", "message": OVERLOADED_MESSAGE}},
    "Parallel": {"type": "error", "error": {"ref_id": "ref_fault", "message": OVERLOADED_MESSAGE}},
    "Gemini Interactions": {"error": {"code": "overloaded", "message": OVERLOADED_MESSAGE}},
    "Gemini generateContent": {"error": {"code": 503, "message": OVERLOADED_MESSAGE, "status": "UNAVAILABLE"}},
}


def overloaded_body(path: str) -> bytes:
    """The 503 body the provider whose API `path` belongs to sends when it is overloaded."""
    contract = contract_for(path)
    shape = _OVERLOADED_BY_PROVIDER.get(contract.provider if contract else "Gemini Interactions")
    return json.dumps(shape or _OVERLOADED_BY_PROVIDER["Gemini Interactions"]).encode()

NOT_JSON_BODY = b'{"id": "v1_broken", "steps": [{"type": "model_output", "content": [{"te'
STREAM_FAULTS = ("reset_stream", "truncate_stream", "bad_event", "stall_stream")
BODY_FAULTS = ("status_503", "other_status", "invalid_json", "reset_body", "hang")
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding", "date", "server"})


@dataclass
class FaultyUpstream:
    target: str
    fault: str | None = None
    after_events: int = 2
    hang_s: float = 30.0
    status: int = 204
    url: str = ""
    faults_served: int = 0
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> str:
        # Transparent until a fault is armed: any path, body and request line the fake takes passes
        # through, so the fake, not this proxy, answers them. Its faults are off contract on purpose.
        self._runner, self.url = await serve_on_loopback(self._handle, "faulty upstream", checked=False,
                                                         max_body=1 << 30, shutdown_timeout=0.1)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self.url

    async def stop(self) -> None:
        self._released.set()  # hanging answers end now, not at hang_s
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _hang(self) -> None:
        try:
            await asyncio.wait_for(self._released.wait(), self.hang_s)
        except TimeoutError:
            pass

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self.fault
        if fault == "status_503":
            self.faults_served += 1
            return web.Response(status=503, body=overloaded_body(request.path), content_type="application/json")
        if fault == "other_status":
            self.faults_served += 1
            location = {"Location": self.target + request.raw_path} if 300 <= self.status < 400 else {}
            return web.Response(status=self.status, headers=location)
        if fault == "invalid_json":
            self.faults_served += 1
            return web.Response(status=200, body=NOT_JSON_BODY, content_type="application/json")
        if fault == "hang":
            self.faults_served += 1
            await self._hang()
            return web.Response(status=503, body=overloaded_body(request.path), content_type="application/json")
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, self.target + request.raw_path, headers=headers,
                                         data=body or None) as upstream:
            out = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    out.headers.add(name, value)
            if fault == "reset_body":
                payload = await upstream.read()
                self.faults_served += 1
                out.content_length = len(payload)
                await out.prepare(request)
                await out.write(payload[: len(payload) // 2])
                await asyncio.sleep(0.05)  # let the half reach the client before the reset
                assert request.transport is not None
                request.transport.abort()
                return out
            await out.prepare(request)
            streaming = upstream.content_type == "text/event-stream" and fault in STREAM_FAULTS
            if not streaming:
                async for chunk in upstream.content.iter_any():
                    await out.write(chunk)
                await out.write_eof()
                return out
            return await self._misbehave_in_stream(request, upstream, out, fault)

    async def _misbehave_in_stream(self, request: web.Request, upstream: aiohttp.ClientResponse,
                                   out: web.StreamResponse, fault: str | None) -> web.StreamResponse:
        buffer, passed = b"", 0
        async for chunk in upstream.content.iter_any():
            buffer += chunk
            while (end := _EVENT_END.search(buffer)) is not None:
                event, buffer = buffer[: end.end()], buffer[end.end():]
                if passed == self.after_events:
                    self.faults_served += 1
                    if fault == "reset_stream":
                        await asyncio.sleep(0.05)
                        assert request.transport is not None
                        request.transport.abort()
                        return out
                    if fault == "truncate_stream":
                        await out.write_eof()
                        return out
                    if fault == "stall_stream":
                        await self._hang()
                        return out
                    if fault == "bad_event":
                        await out.write(b"data: {this is not json\n\n")
                await out.write(event)
                passed += 1
        await out.write(buffer)
        await out.write_eof()
        return out
