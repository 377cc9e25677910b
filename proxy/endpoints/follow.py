"""Following a turn's events: GET …?stream=true, and a task run's `…/events`.

The recorded events after the app's resume id, then live ones while the turn
runs; a turn that was not streamed when it ran gets the events a stream of it
would have held.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..codecs.base import Codec, Frame
from ..errors import bad_request
from ..model import IN_PROGRESS, Interaction, deltas_of
from ..pipeline.call import Call
from ..pipeline.events import Sink
from ..pipeline.services import Services

# How long the last events of a run another instance ended take to be there to read.
_LAST_EVENTS_GRACE_S = 0.3


async def follow(request: web.Request, call: Call, services: Services, node: Interaction) -> web.StreamResponse:
    """GET …?stream=true: the recorded events after the app's resume id, then live ones while it runs."""
    after = 0
    resume_param = call.route.codec.resume_param
    last_event_id = call.query.get(resume_param)
    if last_event_id:
        seq = await services.store.event_seq(node.id, last_event_id)
        if seq is None:
            raise bad_request(f"{resume_param} '{last_event_id}' is not an event of '{node.id}'", param=resume_param)
        after = seq
    sink = Sink(request, True)
    await sink.open()
    # In progress when asked for, but not run by this instance: another instance on a shared
    # database runs it (or ran it a moment ago).
    elsewhere = node.status == IN_PROGRESS and not services.runs.running(node.id)
    while sink.connected:
        # A run of another instance (a shared database) is followed through its recorded events.
        here = services.runs.running(node.id)
        there = not here and await services.store.running_elsewhere(node.id)
        running = here or there
        if elsewhere and not running:
            # Its instance commits the last events just after the node's end (pipeline/run.py).
            await asyncio.sleep(_LAST_EVENTS_GRACE_S)
            elsewhere = False
        frames = await services.store.stream_frames(node.id, after)
        if not frames and not running and after == 0:
            # A turn that ran without events (a plain one) is read as it ended.
            ended = await services.store.get_interaction(node.id) if node.status == IN_PROGRESS else None
            await sink.send(b"".join(f.data for f in synthesize(call.route.codec, call, ended or node)))
            break
        for seq, data in frames:
            await sink.send(data)
            after = seq
        if not running:
            break
        await services.runs.changed(node.id, timeout=1.0)
    await sink.close()
    return sink.response


def synthesize(front: Codec, call: Call, node: Interaction) -> list[Frame]:
    """The events of a stream for a turn that was not streamed when it ran."""
    encoder = front.stream_encoder(call.headers, None)
    frames = encoder.opening(node)
    for delta in deltas_of([p for turn in node.output for p in turn.parts]):
        frames += encoder.delta(delta)
    return frames + encoder.closing(node)
