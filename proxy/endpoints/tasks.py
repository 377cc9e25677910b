"""Parallel's task runs: the reads around a run (its state, result, input and events).

A create is a turn like any other (pipeline/turn.py): in emulate mode it answers
`queued` at once with recall's ids, and the run goes on as a background task
that asks the upstream once, whole; its events (state changes) are recorded for
`…/events`, which endpoints/follow.py serves live or afterwards.

Native mode: every call goes to Parallel as it is; recall records the runs,
results and events it relays, and keeps the chain as nodes (id = Parallel's
interaction id, with its run id). A relayed events stream that breaks off is
a read that failed, not the run: it ends in an `error` event, and the run's
node is left for the next read to settle.

What is the Task API's own (its result's long-poll, its state events) the
codec says (`TaskRunCodec`); this module only holds the reads' logic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

import aiohttp
import orjson
from aiohttp import web

from ..errors import ApiError, not_found, succeeded
from ..model import CANCELLED, FAILED, IN_PROGRESS, Interaction, ModelReply
from ..pipeline.answers import JSON, json_response, stored_header
from ..pipeline.call import Call
from ..pipeline.events import Sink
from ..pipeline.log_note import note_interaction
from ..pipeline.relay import open_relayed, relay, relay_response
from ..pipeline.services import Services
from ..sse import SSE_CONTENT_TYPE, StreamLimit, frame, iter_events
from .follow import follow

# 408s answered in a row for one run before the next long-poll holds until the run ends.
_MAX_NOT_READY = 2
# Bound on the 408 counters kept for runs whose result was never fetched again.
_MAX_COUNTERS = 10_000


class TaskRunCodec(Protocol):
    """What these reads need of the front API's codec beyond every codec's own (the Task API's)."""

    def render(self, it: Interaction, *, include_input: bool = False, status: str | None = None) -> dict[str, Any]: ...
    def render_result(self, it: Interaction) -> dict[str, Any]: ...
    def render_input(self, it: Interaction) -> dict[str, Any]: ...
    def error_body(self, err: ApiError) -> dict[str, Any]: ...
    def parse_reply(self, body: Any) -> ModelReply: ...
    def result_hold_s(self, query: Mapping[str, str], headers: Mapping[str, str]) -> float: ...
    def run_state_of(self, event: Any) -> ModelReply | None: ...


def _codec(call: Call) -> TaskRunCodec:
    # The route table sends only the Task API's paths here.
    return cast(TaskRunCodec, call.route.codec)


class NotReadyStreaks:
    """How many 408s in a row each run's result has had: the SDK's `execute()` crashes on
    a third (spec 0.5), so a third long-poll holds until the run ends."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def count(self, run_id: str) -> int:
        """Count one more 408 for this run's result; the count so far, this one included."""
        count = self._counts.pop(run_id, 0) + 1
        self._counts[run_id] = count
        while len(self._counts) > _MAX_COUNTERS:
            del self._counts[next(iter(self._counts))]
        return count

    def end(self, run_id: str) -> None:
        """The run's result was answered: the 408 streak is over."""
        self._counts.pop(run_id, None)


# -- reads ---------------------------------------------------------------------


def _missing(run_id: str) -> ApiError:
    return not_found(f"task run '{run_id}' was not found")


async def _resolve(call: Call, services: Services) -> Interaction | None:
    """The run recall answers for itself, or None when the call goes to Parallel
    (native mode). An unknown run, or another key's, is a 404."""
    run_id = call.route.resource_id or ""
    found = services.runs.unstored(run_id) or await services.store.get_interaction_by_run(run_id)
    if found is not None and found.owner != call.owner:
        raise _missing(run_id)
    if found is not None and found.mode != "native":
        return found
    if call.native:
        return None
    raise _missing(run_id)


async def get(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    node = await _resolve(call, services)
    if node is None:
        return await relay(request, call, services, on_relayed=_remember_json(call, services))
    return json_response(_codec(call).render(node))


async def input_of(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    node = await _resolve(call, services)
    if node is None:
        return await relay(request, call, services)
    return json_response(_codec(call).render_input(node))


async def events(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    node = await _resolve(call, services)
    if node is None:
        return await _relay_events(request, call, services)
    return await follow(request, call, services, node)


async def _relay_events(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    """Native mode: Parallel's events of a run, passed on event by event as they come.

    A stream that breaks, stalls past timeout_s, holds an event that is not JSON or
    ends before the run's final state ends instead in an `error` event of the Task
    API, and cleanly: the SDK yields it, where a cut connection would raise mid-way
    and a broken event crash its decoder. Only the read failed: the run goes on at
    Parallel, and its node stays as it was until a read says how it ended."""
    response = await open_relayed(call, services)
    if not succeeded(response.status) or response.content_type != SSE_CONTENT_TYPE:
        return await relay_response(request, call, services, response)
    sink = Sink(request, call.recording)
    await sink.open()
    limit = services.config.max_body_mb * 1024 * 1024
    passed = bytearray()
    final: ModelReply | None = None
    problem: str | None = None
    try:
        async with response:
            async for _, received in iter_events(response.content, **call.upstream.stream_limits):
                for event in received:
                    if event.malformed:
                        problem = "sent an event that is not valid JSON"
                        break
                    final = _codec(call).run_state_of(event.json()) or final
                    await sink.send(event.raw)
                    passed += event.raw[: max(limit - len(passed), 0)]
                if problem:
                    break
    except StreamLimit as exc:
        problem = f"was stopped: {exc}"
    except TimeoutError:
        problem = f"sent nothing for {call.upstream.timeout_s:g} s ([upstreams.{call.upstream.name}] timeout_s)"
    except aiohttp.ClientError as exc:
        problem = f"broke off ({exc or type(exc).__name__})"
    if problem is None and (final is None or final.status == IN_PROGRESS):
        problem = "ended before the run did"
    if problem is not None:
        err = ApiError(502, "upstream_stream_broken", f"upstream '{call.upstream.name}': the run's event stream"
                       f" {problem}; the run may still be going: read its result or its events again")
        closing = frame(orjson.dumps(_codec(call).error_body(err)), "error")
        await sink.send(closing)
        passed += closing
    exchange = call.exchange(200, {"content-type": SSE_CONTENT_TYPE}, bytes(passed))
    exchange.error = problem
    if final is not None and call.recording:
        await _update_native(call, services, final)
    await services.record(exchange, content=call.recording)
    # Ended after the commit: an app that has read the end finds the run as it ended.
    await sink.close()
    return sink.response


async def result(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    """The long-poll of spec 2.6: hold until the run ends or the hold time passes, then 408;
    never a third 408 in a row for one run (the SDK's `execute()` crashes on it)."""
    node = await _resolve(call, services)
    if node is None:
        return await relay(request, call, services, on_relayed=_remember_json(call, services))
    codec = _codec(call)
    run_id = node.run_id or node.id
    hold = codec.result_hold_s(call.query, call.headers)
    node = await _settled(services, node, hold)
    if node.status == IN_PROGRESS:
        if services.held(NotReadyStreaks).count(run_id) <= _MAX_NOT_READY:
            err = ApiError(408, "run_not_finished",
                           f"task run '{run_id}' is still running after {hold:g} s; ask for its result again")
            return await _answer(call, services, node, err.status, codec.error_body(err))
        node = await _settled(services, node, None)
    services.held(NotReadyStreaks).end(run_id)
    if node.status == IN_PROGRESS:
        err = ApiError(422, "run_lost", f"task run '{run_id}' is not running in this recall any more; start it again")
        return await _answer(call, services, node, err.status, codec.error_body(err), retry=False)
    if node.status in (FAILED, CANCELLED):
        word = "failed" if node.status == FAILED else "was cancelled"
        err = ApiError(422, "run_failed", f"task run '{run_id}' {word}: {node.error or 'no reason given'}")
        return await _answer(call, services, node, err.status, codec.error_body(err), retry=False)
    return await _answer(call, services, node, 200, codec.render_result(node))


async def _settled(services: Services, node: Interaction, hold: float | None) -> Interaction:
    """The run once it has ended, or as it is after `hold` seconds (None: no limit)."""
    loop = asyncio.get_running_loop()
    deadline = None if hold is None else loop.time() + hold
    while node.status == IN_PROGRESS:
        if not services.runs.running(node.id) and not await services.store.running_elsewhere(node.id):
            return await _reload(services, node)
        remaining = 60.0 if deadline is None else deadline - loop.time()
        if remaining <= 0:
            break
        await services.runs.changed(node.id, timeout=remaining)
        node = await _reload(services, node)
    return node


async def _reload(services: Services, node: Interaction) -> Interaction:
    if services.runs.unstored(node.run_id or "") is node:
        return node  # the run updates it in place
    return await services.store.get_interaction(node.id) or node


async def _answer(call: Call, services: Services, node: Interaction, status: int, payload: dict[str, Any],
                  *, retry: bool = True) -> web.Response:
    """A result answer, recorded with the run (content only for a stored run)."""
    body = orjson.dumps(payload)
    stored = call.recording and services.runs.unstored(node.run_id or "") is None
    headers = stored_header(stored)
    if not retry:
        headers["x-should-retry"] = "false"
    exchange = call.exchange(status, {"content-type": JSON, **headers}, body)
    exchange.interaction_id, exchange.model, exchange.error = node.id, node.model, node.error
    await services.record(exchange, content=stored)
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


# -- native mode: what recall learns from what it relays ------------------------------


def _remember_json(call: Call, services: Services) -> Callable[[int, bytes], Awaitable[None]]:
    """Keep a relayed TaskRun or result in the run's node."""

    async def remember(status: int, body: bytes) -> None:
        if not succeeded(status) or not call.recording:
            return
        try:
            reply = _codec(call).parse_reply(orjson.loads(body))
        except (orjson.JSONDecodeError, ApiError):
            return
        await _update_native(call, services, reply)

    return remember


async def _update_native(call: Call, services: Services, reply: ModelReply) -> None:
    node = await services.store.get_interaction_by_run(reply.run_id or "")
    if node is None or node.owner != call.owner or node.mode != "native":
        return  # a run started without recall: nothing of it to keep
    node.status, node.error, node.updated = reply.status, reply.error, time.time()
    if reply.output:
        node.output = reply.output
    note_interaction(node.id, node.model)
    await services.store.save_interaction(node)
