"""`recall export`: every stored interaction as JSON Lines, or as Markdown for people.

Both take an iterable of nodes (AuditStore.export_rows streams them one thread at
a time) and write as they go, so memory stays flat however big the database is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

import orjson

from ..model import TEXT
from ..store.records import Node
from .render import interaction_record, node_header, part_text
from .when import short_utc

FORMATS = ("jsonl", "md")


def write_jsonl(nodes: Iterable[Node], out: TextIO) -> int:
    """One interaction per line (render.interaction_record); returns the count."""
    count = 0
    for node in nodes:
        out.write(orjson.dumps(interaction_record(node)).decode())
        out.write("\n")
        count += 1
    return count


def write_markdown(nodes: Iterable[Node], out: TextIO, *, thoughts: bool = False) -> int:
    """A section per thread, a heading per interaction, a paragraph per turn."""
    count = 0
    thread: str | None = None
    previous: str | None = None
    for node in nodes:
        it = node.interaction
        if it.root_id != thread:
            thread, previous = it.root_id, None
            out.write(f"## Thread {thread}\n\n_{it.upstream} · started {short_utc(it.created)} UTC_\n\n")
        out.write(f"### {node_header(node)}\n\n")
        if it.parent_id and it.parent_id != previous:
            out.write(f"_continues {it.parent_id}_\n\n")
        if not node.deleted:
            for turn in [*it.input, *it.output]:
                lines = [p.text or "" if p.kind == TEXT else f"`{part_text(p, thoughts=thoughts)}`" for p in turn.parts]
                out.write(f"**{turn.role}:** " + "\n\n".join(lines) + "\n\n")
            if it.error:
                out.write(f"**error:** {it.error}\n\n")
        previous = it.id
        count += 1
    return count
