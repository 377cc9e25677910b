"""A fake Parallel Task API on loopback.

Stateless by default, like a zero-data-retention account: it refuses
`previous_interaction_id` and answers from the context its input carries
(the last line of a text input is the question, the lines before it the
context). `stateful=True` keeps interactions itself, for native-mode tests.
Runs go queued -> running -> completed over `delay` seconds (the slow mode);
`fail=True` ends them failed. Every call needs an `x-api-key`.

Like every fake provider it refuses a `chain C turn N` message that arrives
without exactly its chain's earlier turns (reading a folded input's `User:`
turns, the folding rule of the README), and lets a run take longer when its
question asks for `[pause Ns]` (brain.history_problem, brain.requested_pause).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .brain import history_problem, requested_pause, research_answer
from .fake_gemini import Seen

BASIS_URL = "https://example.org/fake-almanac"


@dataclass
class FakeRun:
    run_id: str
    interaction_id: str
    body: dict[str, Any]
    created: float
    output: dict[str, Any]
    context: str
    #: The conversation's user messages, this run's question last.
    user_texts: list[str]
    #: When the run is done (its `delay`, plus any pause its question asks for).
    ready_at: float


@dataclass
class FakeParallel:
    stateful: bool = False
    delay: float = 0.0
    fail: bool = False
    requests: list[Seen] = field(default_factory=list)
    runs: dict[str, FakeRun] = field(default_factory=dict)
    url: str = ""
    # Once set to an unset event, no run is done until it is set.
    hold: asyncio.Event | None = None
    # Seconds between the events of a run's event stream; event streams that ended whole.
    stream_delay: float = 0.0
    streams_finished: int = 0
    # The creates whose history was incomplete (brain.history_problem), refused with a 400.
    history_mismatches: list[str] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    # Set on stop: long-polls and event streams held open end at once.
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # recall's own limit is what tests exercise
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- inspection ----------------------------------------------------------

    def creates(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "POST"]

    def last_input(self) -> Any:
        return self.creates()[-1].body["input"]

    # -- handlers --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
        if not request.headers.get("x-api-key"):
            return _error(401, "x-api-key header is required")
        parts = request.path.strip("/").split("/")
        if parts[:3] != ["v1", "tasks", "runs"]:
            return _error(404, f"fake parallel has no route {request.method} {request.path}")
        if len(parts) == 3 and request.method == "POST":
            try:
                return self._create(body)
            except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
                # Like the real provider: a request it cannot read is an error answer, never a crash.
                return _error(422, f"fake parallel cannot read this request: {exc!r}")
        run = self.runs.get(parts[3]) if len(parts) > 3 else None
        if run is None or request.method != "GET":
            return _error(404, f"run {parts[3:4]} not found")
        sub = parts[4] if len(parts) > 4 else None
        if sub is None:
            return web.json_response(self._run_object(run))
        if sub == "result":
            return await self._result(run, request.query.get("timeout"))
        if sub == "input":
            return web.json_response(run.body)
        if sub == "events":
            return await self._events(request, run)
        return _error(404, f"fake parallel has no route {request.path}")

    def _create(self, body: dict[str, Any]) -> web.Response:
        if not isinstance(body, dict) or "input" not in body or not body.get("processor"):
            return _error(422, "input and processor are required")
        previous = body.get("previous_interaction_id")
        if previous and not self.stateful:
            return _error(400, "previous_interaction_id: interactions are not available for zero data retention")
        if previous and previous not in {r.interaction_id for r in self.runs.values()}:
            return _error(404, f"interaction {previous} not found")
        context = self._context_of(previous) if previous else ""
        question, context = _question_and_context(body["input"], context)
        earlier = self._run_of(previous).user_texts if previous else _folded_user_texts(body["input"])
        user_texts = [*earlier, question]
        if problem := history_problem(user_texts):
            self.history_mismatches.append(problem)
            return _error(400, problem)
        n = next(self._ids)
        now = time.monotonic()
        run = FakeRun(f"trun_fake{n}", f"itr_fake{n}", body, now, _output(body, question, context, user_texts),
                      context, user_texts, now + self.delay + requested_pause(user_texts))
        self.runs[run.run_id] = run
        return web.json_response(self._run_object(run, "queued"))

    def _run_of(self, interaction_id: str) -> FakeRun:
        return next(r for r in self.runs.values() if r.interaction_id == interaction_id)

    def _context_of(self, interaction_id: str) -> str:
        """What a stateful provider remembers of a chain: every earlier input and answer."""
        run = self._run_of(interaction_id)
        content = run.output["content"]
        answer = content if isinstance(content, str) else json.dumps(content)
        question = run.body["input"] if isinstance(run.body["input"], str) else json.dumps(run.body["input"])
        return f"{run.context}\n{question}\n{answer}".strip()

    def _done(self, run: FakeRun) -> bool:
        return time.monotonic() >= run.ready_at and (self.hold is None or self.hold.is_set())

    def _status(self, run: FakeRun) -> str:
        if self._done(run):
            return "failed" if self.fail else "completed"
        return "queued" if time.monotonic() < (run.created + run.ready_at) / 2 else "running"

    def _run_object(self, run: FakeRun, status: str | None = None) -> dict[str, Any]:
        status = status or self._status(run)
        error = {"ref_id": "ref_fake", "message": "the fake research agent gave up"} if status == "failed" else None
        return {"run_id": run.run_id, "interaction_id": run.interaction_id, "status": status,
                "is_active": status in ("queued", "running"), "processor": run.body["processor"],
                "created_at": "2026-01-01T00:00:00Z", "modified_at": "2026-01-01T00:00:01Z",
                "metadata": run.body.get("metadata"), "warnings": None, "error": error, "taskgroup_id": None}

    async def _wait(self, run: FakeRun, limit: float) -> bool:
        """Hold until the run is done or `limit` seconds pass; whether it is done."""
        deadline = time.monotonic() + limit
        while not self._done(run) and not self._stopping.is_set():
            # A held run is looked at again every 20 ms; otherwise the wait ends when the run does.
            step = 0.02 if time.monotonic() >= run.ready_at else run.ready_at - time.monotonic()
            step = min(step, deadline - time.monotonic())
            if step <= 0:
                break
            try:
                await asyncio.wait_for(self._stopping.wait(), step)
            except TimeoutError:
                pass
        return self._done(run) and not self._stopping.is_set()

    async def _result(self, run: FakeRun, timeout: str | None) -> web.Response:
        if not await self._wait(run, float(timeout) if timeout else 600.0):
            return _error(408, f"run {run.run_id} is still active")
        if self.fail:
            return _error(422, f"run {run.run_id} failed: the fake research agent gave up")
        return web.json_response({"run": self._run_object(run), "output": run.output})

    async def _events(self, request: web.Request, run: FakeRun) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_event({"type": "task_run.state", "run": self._run_object(run, "queued")}))
        await asyncio.sleep(self.stream_delay)
        await response.write(_event({"type": "task_run.progress_msg.plan", "message": "Reading the almanac"}))
        await asyncio.sleep(self.stream_delay)
        await self._wait(run, 600.0)
        final = self._run_object(run)
        await response.write(_event({"type": "task_run.state", "run": final,
                                     "output": run.output if final["status"] == "completed" else None}))
        await response.write_eof()
        self.streams_finished += 1
        return response


def _question_and_context(value: Any, remembered: str) -> tuple[str, str]:
    """The question and what the provider knows besides it: a text input's last line is
    the question; an object input is the question whole."""
    if isinstance(value, str):
        *before, last = value.strip().split("\n")
        return last, "\n".join([remembered, *before]).strip()
    return json.dumps(value), "\n".join([remembered, json.dumps(value)]).strip()


def _folded_user_texts(value: Any) -> list[str]:
    """The earlier user messages recall folded into a text input: its `User: …` blocks."""
    if not isinstance(value, str):
        return []
    *before, _ = value.strip().split("\n")
    return [block.removeprefix("User: ") for block in "\n".join(before).split("\n\n") if block.startswith("User: ")]


def _output(body: dict[str, Any], question: str, context: str, user_texts: list[str]) -> dict[str, Any]:
    schema = (body.get("task_spec") or {}).get("output_schema")
    kind = "auto" if schema is None else "text" if isinstance(schema, str) else schema.get(
        "type", "json" if "json_schema" in schema else "text")
    answer = research_answer(question, context, user_texts)
    citation = {"url": BASIS_URL, "title": "Fake almanac", "excerpts": [answer]}
    if kind == "text":
        return {"type": "text", "content": answer,
                "basis": [{"field": "output", "reasoning": "Looked it up.", "confidence": "high", "citations": [citation]}]}
    properties = schema["json_schema"].get("properties", {}) if kind == "json" else {"answer": {"type": "string"}}
    content: dict[str, Any] = {}
    for name, prop in properties.items():
        kind_of = prop.get("type") if isinstance(prop, dict) else None
        # Numbers say how much context arrived, so a test can tell.
        content[name] = len(context) if kind_of in ("integer", "number") else f"{name}: {answer}"
    output: dict[str, Any] = {"type": "json", "content": content,
                              "basis": [{"field": name, "reasoning": "Looked it up.", "confidence": "medium",
                                         "citations": [citation]} for name in content]}
    if kind == "auto":
        output["output_schema"] = {"type": "object", "properties": properties}
    return output


def _event(payload: dict[str, Any]) -> bytes:
    return b"event: " + payload["type"].encode() + b"\ndata: " + json.dumps(payload).encode() + b"\n\n"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"ref_id": "ref_fake", "message": message}}, status=status)
