"""A long streamed reply's text, kept once: in its recorded events, not also in its node.

A stored stream's events are the reply's bytes in the front API's wire form (the
provider's own events in native mode, recall's relabelled or encoded ones otherwise),
and the front codec's stream decoder reads them. So once a streamed turn's text passes
SPILL_AFTER_CHARS, the run's Assembler keeps no more of it (model.Assembler): the node
is saved with its text parts marked `spilled` and without their text, and the search
index gets the head that was held. This module is the one place that reads such text
back, from the events, a page at a time:
- `whole` / `whole_audit`: the node with its whole output, for whoever needs the text
  itself (a follow-up's history, a conversation's items, `recall show`, export, viewer);
- `stream_rendered`: a GET of the node, written out as it is read, never built whole.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from ..codecs import FRONT_CODECS
from ..codecs.base import StreamDecoder
from ..model import Interaction, PartDelta, PartStart, Turn
from ..sse import SSEParser
from ..store.protocol import AuditStore, Store
from ..store.records import Node
from .answers import JSON, stored_header

#: Characters of a stored stream's text kept in memory (in all its parts) before the rest is
#: left to its recorded events. A reply under it is saved whole in its node, as always.
SPILL_AFTER_CHARS = 1_000_000
#: Events read from the store at a time.
PAGE_EVENTS = 256
#: Bytes of the body gathered before each write to the app.
_WRITE_BYTES = 64 * 1024


class UnreadableSpill(Exception):
    """The recorded events do not hold the parts the node names (the database was changed by hand)."""


def _decoder(node: Interaction, *, keep_text: bool) -> StreamDecoder:
    decoder = FRONT_CODECS[node.front].stream_decoder()
    if not keep_text:
        decoder.assembler.spill_after = 0  # the text is taken from the deltas as they pass
    return decoder


def _decode(decoder: StreamDecoder, frames: Iterable[bytes]) -> Iterator[PartStart | PartDelta]:
    """The part starts and deltas the frames hold, as the decoder reads them."""
    parser = SSEParser()
    for data in frames:
        for event in parser.feed(data):
            if not event.malformed:  # as the run fed them (it ended the stream at a malformed one)
                yield from (d for d in decoder.feed(event) if isinstance(d, (PartStart, PartDelta)))


def _filled(node: Interaction, decoder: StreamDecoder) -> Interaction:
    """A copy of the node whose spilled parts hold the text the decoder assembled."""
    decoded = [p for turn in decoder.assembler.reply().output for p in turn.parts]
    saved = [p for turn in node.output for p in turn.parts]
    if len(decoded) != len(saved) or any(a.kind != b.kind for a, b in zip(decoded, saved, strict=True)):
        raise UnreadableSpill(f"the recorded events of interaction {node.id} do not hold the parts of its output"
                              f" ({len(decoded)} parts read back, {len(saved)} saved)")
    parts = iter([replace(p, text=d.text, spilled=None) if p.spilled else p
                  for p, d in zip(saved, decoded, strict=True)])
    return replace(node, output=[Turn(turn.role, [next(parts) for _ in turn.parts]) for turn in node.output])


async def _store_pages(store: Store, interaction_id: str) -> AsyncIterator[list[bytes]]:
    after = 0
    while page := await store.stream_frames(interaction_id, after, PAGE_EVENTS):
        yield [frame for _, frame in page]
        after = page[-1][0]


def _audit_pages(audit: AuditStore, interaction_id: str) -> Iterator[bytes]:
    after = 0
    while page := audit.stream_events(interaction_id, after, PAGE_EVENTS):
        yield from (event.frame for event in page)
        after = page[-1].seq


async def whole(store: Store, node: Interaction, later: Iterable[bytes] = ()) -> Interaction:
    """The node with its whole output: itself unless its text was spilled, else a copy (a node
    the store caches is left as it is). `later`: its events not yet committed (a run's last)."""
    if not node.spilled:
        return node
    decoder = _decoder(node, keep_text=True)
    async for frames in _store_pages(store, node.id):
        for _ in _decode(decoder, frames):
            pass
    for _ in _decode(decoder, later):
        pass
    return _filled(node, decoder)


def whole_audit(audit: AuditStore, node: Node) -> Node:
    """`whole`, for the audit commands and the viewer (a tombstone has no output)."""
    it = node.interaction
    if not it.spilled:
        return node
    decoder = _decoder(it, keep_text=True)
    for _ in _decode(decoder, _audit_pages(audit, it.id)):
        pass
    return replace(node, interaction=_filled(it, decoder))


async def stream_rendered(request: web.Request, store: Store, node: Interaction,
                          render: Callable[[Interaction], Any]) -> web.StreamResponse:
    """A GET of a spilled node, written as it is read: the node is rendered with a unique mark
    where each spilled part's text goes, and each mark is replaced by that part's text,
    JSON-escaped, as its events are read. A codec that does not pass a part's text through
    as it is (no mark found whole) gets the node filled and rendered at once."""
    token = secrets.token_hex(16)
    positions = [i for i, p in enumerate(p for turn in node.output for p in turn.parts) if p.spilled]
    marks = {f"recall-spilled-{token}-{i}": i for i in positions}
    marked = iter(marks)
    shown = replace(node, output=[Turn(turn.role, [replace(p, text=next(marked), spilled=None) if p.spilled else p
                                                   for p in turn.parts]) for turn in node.output])
    body = orjson.dumps(render(shown))
    pieces = re.split(b"(" + b"|".join(re.escape(orjson.dumps(m)[1:-1]) for m in marks) + b")", body)
    if {piece.decode() for piece in pieces[1::2]} != set(marks):
        return web.Response(body=orjson.dumps(render(await whole(store, node))), content_type=JSON,
                            headers=stored_header(True))
    response = web.StreamResponse(headers={"Content-Type": JSON, **stored_header(True)})
    await response.prepare(request)
    for n, piece in enumerate(pieces):
        if n % 2 == 0:
            await response.write(piece)
        else:
            await _write_text(response, store, node, marks[piece.decode()])
    await response.write_eof()
    return response


async def _write_text(response: web.StreamResponse, store: Store, node: Interaction, position: int) -> None:
    """One part's text, JSON-escaped, read from the recorded events: the part at `position`
    is the one whose index the stream opened `position`-th (streams open parts in order)."""
    decoder = _decoder(node, keep_text=False)
    opened: dict[int, int] = {}
    buffer = bytearray()
    async for frames in _store_pages(store, node.id):
        for delta in _decode(decoder, frames):
            at = opened.setdefault(delta.index, len(opened))
            if at != position:
                continue
            text = delta.part.text if isinstance(delta, PartStart) else delta.text
            if text:
                buffer += orjson.dumps(text)[1:-1]
        if len(buffer) >= _WRITE_BYTES:
            await response.write(bytes(buffer))
            buffer.clear()
    await response.write(bytes(buffer))
