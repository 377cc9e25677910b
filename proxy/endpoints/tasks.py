"""Parallel task runs: a create that goes on without the app, and the reads around it.

Emulate mode (any upstream but a native Parallel one): the create answers
`queued` at once with recall's ids, and the run goes on as a background task
(proxy/pipeline/runs.py) that asks the upstream once, whole, through the same pipeline
steps as any turn (upstream_calls.upstream_request and ask_upstream, which
awaits an asynchronous provider). A task's output arrives whole and its events are
status changes, so no upstream stream is needed, and a run works over every
upstream codec. Its events are recorded (streaming.EventLog) for `…/events`,
which streaming.follow serves live or afterwards.

Native mode: every call goes to Parallel as it is; recall records the runs,
results and events it relays, and keeps the chain as nodes (id = Parallel's
interaction id, with its run id). A relayed events stream that breaks off is
a read that failed, not the run: it ends in an `error` event, and the run's
node is left for the next read to settle.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from ..codecs import Codec, UpstreamCall
from ..codecs.parallel_tasks import ParallelTasks, shape_output
from ..errors import ApiError, bad_request, not_found, succeeded
from ..ids import mint_id
from ..model import CANCELLED, COMPLETED, FAILED, IN_PROGRESS, INCOMPLETE, Interaction, ModelReply
from ..pipeline import stream as streaming
from ..pipeline import turn as turns
from ..pipeline.call import Call
from ..pipeline.provider_call import ask_upstream, digest_of, new_node, upstream_request
from ..pipeline.relay import STORED_HEADER, open_relayed, relay, relay_response
from ..pipeline.services import Services
from ..pipeline.state import history
from ..sse import StreamLimit, frame, iter_events

log = logging.getLogger("recall")

JSON = "application/json"
# Parallel answers a task-run create 202 Accepted (the run is queued), and so does recall.
ACCEPTED = 202
# `…/result` holds at most this long when the app names no timeout (Parallel's default).
_DEFAULT_HOLD_S = 600.0
# 408s answered in a row for one run before the next long-poll holds until the run ends.
_MAX_NOT_READY = 2


def _codec(call: Call) -> ParallelTasks:
    codec = call.route.codec
    assert isinstance(codec, ParallelTasks)
    return codec


async def create(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    codec = _codec(call)
    req = codec.parse_create(call.json_body())
    if turns.is_native(call):
        return await turns.create_native(request, call, services, req)
    chain = await services.state.chain_for(req.previous_id, call.owner, codec) if req.previous_id else []
    # Built before anything is written: what the upstream cannot carry is a 400 now, not a failed run.
    upstream_codec, upstream_call = upstream_request(call, req, history(chain))
    node = new_node(call, req, ModelReply(output=[], status=IN_PROGRESS), mint_id(codec.id_prefix),
                          mode="emulate", parent=chain[-1] if chain else None)
    node.run_id = mint_id(codec.run_id_prefix)
    rendered = codec.render(node, status="queued")
    body = orjson.dumps(rendered)
    storing = call.recording
    exchange = call.exchange(ACCEPTED, {"content-type": JSON}, body if storing else None)
    exchange.model = node.model
    # The folded body sent upstream is derived data: its digest, not a copy.
    exchange.upstream_digest = digest_of(upstream_call)
    if storing:
        # Committed before the ids reach the app: an immediate read or follow-up finds the run.
        await services.store.save_interaction(node, exchange)
    else:
        services.tasks.keep(node)
        await services.record(exchange, content=False)
    services.runs.start(node.id, _run(call, services, node, upstream_codec, upstream_call, storing))
    return turns.json_response(rendered, status=ACCEPTED, stored=storing)


async def _run(call: Call, services: Services, node: Interaction, upstream_codec: Codec,
               upstream_call: UpstreamCall, storing: bool) -> None:
    """One run, start to end: events recorded, the node committed before its last event."""
    encoder = _codec(call).stream_encoder(call.headers, None)
    events = streaming.EventLog(services, node.id, storing)
    events.add(encoder.opening(node))
    events.flush()
    try:
        reply, _ = await ask_upstream(call, services, upstream_codec, upstream_call)
        node.output, node.usage, node.status, node.error = reply.output, reply.usage, reply.status, reply.error
        node.provider_id = reply.provider_id
        if node.status in (COMPLETED, INCOMPLETE) and (problem := shape_output(node)):
            node.status, node.error = FAILED, problem
    except ApiError as err:
        node.status, node.error = FAILED, err.message
    except asyncio.CancelledError:  # the Task API has no cancel: only a shutdown stops a run
        node.status, node.error = FAILED, services.runs.stop_reason(node.id) or "the run was stopped"
    except Exception as exc:  # a run nobody awaits must still end, or its result would hang forever
        log.exception("task run %s failed", node.run_id)
        node.status, node.error = FAILED, f"recall failed while running this task: {exc!r}"
    node.updated = time.time()
    if storing:
        await services.keep_answer(node)
    events.add(encoder.closing(node))
    await events.close()


# -- reads ---------------------------------------------------------------------


def _missing(run_id: str) -> ApiError:
    return not_found(f"task run '{run_id}' was not found")


async def _resolve(call: Call, services: Services) -> Interaction | None:
    """The run recall answers for itself, or None when the call goes to Parallel
    (native mode). An unknown run, or another key's, is a 404."""
    run_id = call.route.resource_id or ""
    found = services.tasks.unstored(run_id) or await services.store.get_interaction_by_run(run_id)
    if found is not None and found.owner != call.owner:
        raise _missing(run_id)
    if found is not None and found.mode != "native":
        return found
    if turns.is_native(call):
        return None
    raise _missing(run_id)


async def get(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    node = await _resolve(call, services)
    if node is None:
        return await relay(request, call, services, on_relayed=_remember_json(call, services))
    return turns.json_response(_codec(call).render(node))


async def input_of(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    node = await _resolve(call, services)
    if node is None:
        return await relay(request, call, services)
    return turns.json_response(_codec(call).render_input(node))


async def events(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    node = await _resolve(call, services)
    if node is None:
        return await _relay_events(request, call, services)
    return await streaming.follow(request, call, services, node)


async def _relay_events(request: web.Request, call: Call, services: Services) -> web.StreamResponse:
    """Native mode: Parallel's events of a run, passed on event by event as they come.

    A stream that breaks, stalls past timeout_s, holds an event that is not JSON or
    ends before the run's final state ends instead in an `error` event of the Task
    API, and cleanly: the SDK yields it, where a cut connection would raise mid-way
    and a broken event crash its decoder. Only the read failed: the run goes on at
    Parallel, and its node stays as it was until a read says how it ended."""
    response = await open_relayed(call, services)
    if not succeeded(response.status) or response.content_type != streaming.SSE_CONTENT_TYPE:
        return await relay_response(request, call, services, response)
    sink = streaming.Sink(request, call.recording)
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
                    final = _state_of(call, event.json()) or final
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
    exchange = call.exchange(200, {"content-type": streaming.SSE_CONTENT_TYPE}, bytes(passed))
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
    hold = _hold_seconds(call)
    node = await _settled(services, node, hold)
    if node.status == IN_PROGRESS:
        if services.tasks.timed_out(run_id) <= _MAX_NOT_READY:
            err = ApiError(408, "run_not_finished",
                           f"task run '{run_id}' is still running after {hold:g} s; ask for its result again")
            return await _answer(call, services, node, err.status, codec.error_body(err))
        node = await _settled(services, node, None)
    services.tasks.delivered(run_id)
    if node.status == IN_PROGRESS:
        err = ApiError(422, "run_lost", f"task run '{run_id}' is not running in this recall any more; start it again")
        return await _answer(call, services, node, err.status, codec.error_body(err), retry=False)
    if node.status in (FAILED, CANCELLED):
        word = "failed" if node.status == FAILED else "was cancelled"
        err = ApiError(422, "run_failed", f"task run '{run_id}' {word}: {node.error or 'no reason given'}")
        return await _answer(call, services, node, err.status, codec.error_body(err), retry=False)
    return await _answer(call, services, node, 200, codec.render_result(node))


def _hold_seconds(call: Call) -> float:
    """min(`timeout` or 600 s, the client's read timeout less a margin), so the app gets
    a 408 before its own read timeout fires."""
    hold = _DEFAULT_HOLD_S
    raw = call.query.get("timeout")
    if raw is not None:
        try:
            hold = float(raw)
        except ValueError:
            raise bad_request(f"timeout: expected a number of seconds; got {raw!r}", param="timeout") from None
        if not math.isfinite(hold) or hold < 0:
            raise bad_request(f"timeout: expected 0 or more seconds; got {raw!r}", param="timeout")
    try:
        read_s = float(call.headers.get("x-stainless-read-timeout", ""))
    except ValueError:
        read_s = math.nan
    if math.isfinite(read_s) and read_s > 0:
        hold = min(hold, read_s - min(5.0, read_s / 2))
    return hold


async def _settled(services: Services, node: Interaction, hold: float | None) -> Interaction:
    """The run once it has ended, or as it is after `hold` seconds (None: no limit)."""
    loop = asyncio.get_running_loop()
    deadline = None if hold is None else loop.time() + hold
    while node.status == IN_PROGRESS:
        if not services.runs.running(node.id):
            return await _reload(services, node)
        remaining = 60.0 if deadline is None else deadline - loop.time()
        if remaining <= 0:
            break
        await services.runs.changed(node.id, timeout=remaining)
        node = await _reload(services, node)
    return node


async def _reload(services: Services, node: Interaction) -> Interaction:
    if services.tasks.unstored(node.run_id or "") is node:
        return node  # the run updates it in place
    return await services.store.get_interaction(node.id) or node


async def _answer(call: Call, services: Services, node: Interaction, status: int, payload: dict,
                  *, retry: bool = True) -> web.Response:
    """A result answer, recorded with the run (content only for a stored run)."""
    body = orjson.dumps(payload)
    stored = call.recording and services.tasks.unstored(node.run_id or "") is None
    headers = {STORED_HEADER: "true" if stored else "false"}
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


def _state_of(call: Call, event: Any) -> ModelReply | None:
    """The run as a relayed `task_run.state` event reports it, or None for any other event."""
    if not isinstance(event, dict) or event.get("type") != "task_run.state" or not isinstance(event.get("run"), dict):
        return None
    try:
        return _codec(call).parse_reply({"run": event["run"], "output": event.get("output")})
    except ApiError:
        return None


async def _update_native(call: Call, services: Services, reply: ModelReply) -> None:
    node = await services.store.get_interaction_by_run(reply.run_id or "")
    if node is None or node.owner != call.owner or node.mode != "native":
        return  # a run started without recall: nothing of it to keep
    node.status, node.error, node.updated = reply.status, reply.error, time.time()
    if reply.output:
        node.output = reply.output
    await services.store.save_interaction(node)
