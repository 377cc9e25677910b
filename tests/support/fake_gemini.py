"""A fake Gemini provider on loopback: Interactions and generateContent.

Stateless by default, like a zero-data-retention project: it refuses
`previous_interaction_id` and `store` other than false, and answers from the
whole history each request carries. `stateful=True` makes it keep
interactions itself, for native-mode tests.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .brain import answer


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGemini:
    stateful: bool = False
    requests: list[Seen] = field(default_factory=list)
    interactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    histories: dict[str, list[str]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- inspection ----------------------------------------------------------

    def last_body(self) -> Any:
        return self.requests[-1].body

    # -- handlers --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = await request.json() if raw else None
        except ValueError:
            body = raw
        self.requests.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
        path = request.path
        if ":generateContent" in path:
            return self._generate(body)
        parts = path.strip("/").split("/")
        if parts and parts[-1] == "interactions" and request.method == "POST":
            return self._create(body)
        if len(parts) >= 2 and parts[-2] == "interactions":
            return self._by_id(request.method, parts[-1])
        return _error(404, "not_found", f"fake gemini has no route {request.method} {path}")

    def _create(self, body: dict[str, Any]) -> web.Response:
        previous = body.get("previous_interaction_id")
        if not self.stateful:
            if previous:
                return _error(400, "invalid_request", "previous_interaction_id is not supported: this project has zero data retention")
            if body.get("store") is not False:
                return _error(400, "invalid_request", "store must be false: this project has zero data retention")
        history: list[str] = []
        if previous:
            if previous not in self.histories:
                return _error(404, "not_found", f"interaction {previous} not found")
            history = list(self.histories[previous])
        history.extend(_user_texts_of_input(body.get("input")))
        text = answer(history)
        interaction_id = f"v1_fake{next(self._ids)}"
        reply = {
            "id": interaction_id,
            "object": "interaction",
            "status": "completed",
            "model": body.get("model"),
            "created": "2026-01-01T00:00:00Z",
            "updated": "2026-01-01T00:00:01Z",
            "steps": [{"type": "model_output", "content": [{"type": "text", "text": text}]}],
            "usage": {"total_input_tokens": 10 * len(history), "total_output_tokens": 7, "total_tokens": 10 * len(history) + 7},
        }
        if previous:
            reply["previous_interaction_id"] = previous
        if self.stateful and body.get("store", True):
            self.interactions[interaction_id] = reply
            self.histories[interaction_id] = [*history]
        return web.json_response(reply)

    def _by_id(self, method: str, interaction_id: str) -> web.Response:
        if not self.stateful or interaction_id not in self.interactions:
            return _error(404, "not_found", f"interaction {interaction_id} not found")
        if method == "DELETE":
            del self.interactions[interaction_id]
            return web.json_response({})
        return web.json_response(self.interactions[interaction_id])

    def _generate(self, body: dict[str, Any]) -> web.Response:
        texts = [
            part["text"]
            for content in body.get("contents", [])
            if content.get("role") == "user"
            for part in content.get("parts", [])
            if "text" in part
        ]
        return web.json_response({
            "candidates": [{"content": {"role": "model", "parts": [{"text": answer(texts)}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 5 * len(texts), "candidatesTokenCount": 6,
                              "totalTokenCount": 5 * len(texts) + 6},
            "modelVersion": "gemini-fake-001",
            "responseId": f"gc{next(self._ids)}",
        })


def _user_texts_of_input(value: Any) -> list[str]:
    """The user messages in an Interactions `input`, whatever its shape."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [value.get("text", "")] if value.get("type", "text") == "text" else []
    texts: list[str] = []
    for item in value or []:
        if item.get("type") == "user_input" or item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                texts.append(content)
            else:
                texts.append("".join(c.get("text", "") for c in content or [] if c.get("type", "text") == "text"))
        elif item.get("type") == "text":
            texts.append(item.get("text", ""))
    return texts


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
