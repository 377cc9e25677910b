"""A fake Parallel on loopback: the Task API, the Chat API and the Responses API.

Stateless by default, like a zero-data-retention account: it refuses
`previous_interaction_id` and answers from the context its input carries
(the last line of a text input is the question, the lines before it the
context; a chat's earlier messages). `stateful=True` keeps interactions
itself, for native-mode tests: task runs and chat turns share one set of
interaction ids, so a chain may go from one to the other (the launch
material's mixed threads). Runs go queued -> running -> completed over
`delay` seconds (the slow mode); `fail=True` ends them failed. Task calls
need an `x-api-key`; chat takes it or `Authorization: Bearer` (the openai SDK).
Chat is served at `/v1beta/chat/completions` and `/chat/completions` only; the
Responses API at `/v1/responses` (tests/support/fake_parallel_responses.py).

Like every fake provider it refuses a `chain C turn N` message that arrives
without exactly its chain's earlier turns (reading a folded input's `User:`
turns, the folding rule of the README), and lets a run take longer when its
question asks for `[pause Ns]` (brain.history_problem, brain.requested_pause).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import fake_parallel_responses
from .brain import requested_pause, research_answer
from .fake_openai import message_text, openai_error
from .serving import FakeProvider, Seen, sse_frame, sse_response, word_pieces

BASIS_URL = "https://example.org/fake-almanac"
CHAT_PATHS = ("/v1beta/chat/completions", "/chat/completions")


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
class FakeParallel(FakeProvider):
    name = "fake Parallel"
    api = "parallel"
    stateful: bool = False
    delay: float = 0.0
    fail: bool = False
    runs: dict[str, FakeRun] = field(default_factory=dict)
    # What a stateful Parallel remembers of each interaction (task run or chat turn): its chain as text.
    memory: dict[str, str] = field(default_factory=dict)
    # And the user messages of each interaction's chain, its own last.
    user_memory: dict[str, list[str]] = field(default_factory=dict)
    # The Responses API's memory: each response's conversation as {role, content} messages.
    response_memory: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # `hold`, once set to an unset event: no run is done until it is set. `stream_delay`: seconds
    # between the events of a run's event stream, which count in `streams_finished` when they end whole.
    # Set on stop: long-polls and event streams held open end at once.
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self) -> None:
        self._stopping.set()
        await super().stop()

    # -- inspection ----------------------------------------------------------

    def creates(self) -> list[Seen]:
        """Task run creates."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/tasks/runs"]

    def chats(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "POST" and r.path in CHAT_PATHS]

    def last_input(self) -> Any:
        return self.creates()[-1].body["input"]

    # -- handlers --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        openai_shaped = request.path in (*CHAT_PATHS, fake_parallel_responses.PATH) and request.method == "POST"
        if openai_shaped and not (request.headers.get("x-api-key")
                                  or request.headers.get("authorization", "").startswith("Bearer ")):
            return openai_error(401, "an x-api-key or Authorization: Bearer header is required")
        if request.path in CHAT_PATHS and request.method == "POST":
            return await self._chat(request, body)
        if request.path == fake_parallel_responses.PATH and request.method == "POST":
            return await self._responses_create(request, body)
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
        refused = self._refusal(body.get("previous_interaction_id"), _error)
        if refused is not None:
            return refused
        previous = body.get("previous_interaction_id")
        context = self.memory.get(previous or "", "")
        question, context = _question_and_context(body["input"], context)
        earlier = self.user_memory.get(previous, []) if previous else _folded_user_texts(body["input"])
        user_texts = [*earlier, question]
        if problem := self._history_mismatch(user_texts):
            return _error(400, problem)
        n = next(self._ids)
        now = time.monotonic()
        run = FakeRun(f"trun_fake{n}", f"itr_fake{n}", body, now, _output(body, question, context, user_texts),
                      context, user_texts, now + self.delay + requested_pause(user_texts))
        self.runs[run.run_id] = run
        self.user_memory[run.interaction_id] = user_texts
        if self.stateful:
            content = run.output["content"]
            answer = content if isinstance(content, str) else json.dumps(content)
            asked = body["input"] if isinstance(body["input"], str) else json.dumps(body["input"])
            self.memory[run.interaction_id] = f"{context}\n{asked}\n{answer}".strip()
        # Parallel's API reference: a task-run create answers 202 Accepted with the queued run.
        return web.json_response(self._run_object(run, "queued"), status=202)

    def _refusal(self, previous: Any, error: Any) -> web.Response | None:
        if previous and not self.stateful:
            return error(400, "previous_interaction_id: interactions are not available for zero data retention")
        if previous and previous not in self.memory:
            return error(404, f"interaction {previous} not found")
        return None

    # -- the Responses API -------------------------------------------------------

    async def _responses_create(self, request: web.Request, body: Any) -> web.StreamResponse:
        refused, response, pause = fake_parallel_responses.create(self, body)
        if refused is not None or response is None:
            return refused or openai_error(500, "no answer")
        if not body.get("stream"):
            await asyncio.sleep(pause)
            return web.json_response(response)
        return await self._write_stream(request, fake_parallel_responses.stream_frames(response), pause=pause)

    # -- the Chat API ------------------------------------------------------------

    async def _chat(self, request: web.Request, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list):
            return openai_error(400, "model and messages are required")
        refused = self._refusal(body.get("previous_interaction_id"), openai_error)
        if refused is not None:
            return refused
        messages = body["messages"]
        texts = [message_text(m) for m in messages if m.get("role") in ("user", "assistant")]
        question = texts[-1] if texts else ""
        remembered = self.memory.get(body.get("previous_interaction_id") or "", "")
        context = "\n".join([remembered, *texts[:-1]]).strip()
        asked = [message_text(m) for m in messages if m.get("role") == "user"]
        user_texts = [*self.user_memory.get(body.get("previous_interaction_id") or "", []), *asked]
        answer = research_answer(question, context, user_texts)
        n = next(self._ids)
        interaction_id = f"itr_chat{n}"
        self.user_memory[interaction_id] = user_texts
        if self.stateful:
            self.memory[interaction_id] = f"{context}\n{question}\n{answer}".strip()
        basis = [] if body["model"] == "speed" else [  # the research models add basis
            {"field": "output", "reasoning": "Looked it up.", "confidence": "high",
             "citations": [{"url": BASIS_URL, "title": "Fake almanac", "excerpts": [answer]}]}]
        completion = {
            "id": f"chatcmpl-par{n}", "object": "chat.completion", "created": 1760000000, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer, "refusal": None}}],
            "usage": {"prompt_tokens": 9 * len(messages), "completion_tokens": 5, "total_tokens": 9 * len(messages) + 5},
            "interaction_id": interaction_id, "basis": basis,
        }
        if not body.get("stream"):
            return web.json_response(completion)
        return await self._chat_stream(request, completion, bool((body.get("stream_options") or {}).get("include_usage")))

    async def _chat_stream(self, request: web.Request, completion: dict[str, Any],
                           include_usage: bool) -> web.StreamResponse:
        """Chunks with `interaction_id` on the first and the last one, `basis` on the last."""
        base = {k: completion[k] for k in ("id", "created", "model")}
        base["object"] = "chat.completion.chunk"
        marks = {"interaction_id": completion["interaction_id"]}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            return sse_frame({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                                   "logprobs": None}], **extra})

        frames = [chunk({"role": "assistant", "content": ""}, **marks)]
        frames += [chunk({"content": piece}) for piece in word_pieces(completion["choices"][0]["message"]["content"])]
        last = {**marks, "basis": completion["basis"]}
        if include_usage:
            frames.append(chunk({}, "stop"))
            frames.append(sse_frame({**base, "choices": [], "usage": completion["usage"], **last}))
        else:
            frames.append(chunk({}, "stop", **last))
        response = sse_response()
        await response.prepare(request)
        for data in [*frames, b"data: [DONE]\n\n"]:
            await response.write(data)
        await response.write_eof()
        return response

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
        response = sse_response()
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
    return sse_frame(payload, payload["type"])


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"ref_id": "ref_fake", "message": message}}, status=status)
