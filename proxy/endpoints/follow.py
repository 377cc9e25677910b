"""Following a turn's events: GET …?stream=true, and a task run's `…/events`.

The recorded events after the app's resume id, then live ones while the turn
runs; a turn that was not streamed when it ran gets the events a stream of it
would have held.
"""

from __future__ import annotations

from aiohttp import web

from ..codecs.base import Codec, Frame
from ..errors import bad_request
from ..model import IN_PROGRESS, Interaction, deltas_of
from ..pipeline.call import Call
from ..pipeline.events import Sink
from ..pipeline.services import Services
from ..pipeline.spill import PAGE_EVENTS


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
    while sink.connected:
        # A run of another instance (a shared database) is followed through its recorded events:
        # its node's end commits with its last events, so an ended run's stream is whole.
        here = services.runs.running(node.id)
        running = here or await services.store.running_elsewhere(node.id)
        frames = await services.store.stream_frames(node.id, after, PAGE_EVENTS)
        if not frames and not running and after == 0:
            # A turn that ran without events (a plain one) is read as it ended.
            ended = await services.store.get_interaction(node.id) if node.status == IN_PROGRESS else None
            await sink.send(b"".join(f.data for f in synthesize(call.route.codec, call, ended or node)))
            break
        for seq, data in frames:
            await sink.send(data)
            after = seq
        if len(frames) == PAGE_EVENTS:
            continue  # more are recorded: a long stream is read a page at a time
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
