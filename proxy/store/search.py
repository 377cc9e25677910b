"""Keeping the full-text index (`search_index`, migration m004) in step with the nodes.

The writer indexes a node in the same transaction that saves it, from the
turns it already holds in memory: cheaper than the SQL triggers that once did
it by parsing the stored JSON again (about 0.4 ms per saved turn). Erasures
still go through the update and delete triggers, which forget the entry.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..model import TEXT, Turn

# Of one side (input or output) of one node, this much text is indexed: enough for any
# conversation, while a reply of tens of megabytes is not tokenised (and held) whole.
MAX_INDEXED_CHARS = 1_000_000


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def searchable_text(turns: list[Turn]) -> str | None:
    """Every part's text, function name, arguments and result, and the JSON of parts recall
    does not model, one line a part, up to MAX_INDEXED_CHARS; media data is left out.
    None when there are no parts."""
    lines: list[str] = []
    size = 0
    for turn in turns:
        for part in turn.parts:
            if size >= MAX_INDEXED_CHARS:
                break
            line = " ".join((part.text[:MAX_INDEXED_CHARS] if part.text else "", part.name or "",
                             _json_text(part.arguments), _json_text(part.result),
                             "" if part.kind == TEXT else _json_text(part.native))).strip()
            lines.append(line)
            size += len(line) + 1
    return "\n".join(lines)[:MAX_INDEXED_CHARS] if lines else None


def index_interaction(db: sqlite3.Connection, interaction_id: str, input_turns: list[Turn],
                      output_turns: list[Turn], *, new: bool = False) -> None:
    """(Re)index one node: its old entry, if any, is replaced; `new`: it has none (a turn
    that was in progress until now: running turns are not indexed)."""
    if not new:
        db.execute("DELETE FROM search_index WHERE rowid IN (SELECT id FROM search_keys WHERE interaction_id = ?)",
                   (interaction_id,))
        db.execute("DELETE FROM search_keys WHERE interaction_id = ?", (interaction_id,))
    key = db.execute("INSERT INTO search_keys (interaction_id) VALUES (?)", (interaction_id,)).lastrowid
    db.execute("INSERT INTO search_index (rowid, input, output) VALUES (?, ?, ?)",
               (key, searchable_text(input_turns), searchable_text(output_turns)))


def fts_query(text: str, *, raw: bool = False) -> str:
    """An FTS5 query: every word must appear (each quoted, so `?` or `-` are just
    characters), or with `raw` the text as FTS5 syntax (OR, NOT, "phrases", prefix*)."""
    if raw:
        return text
    words = text.split()
    if not words:
        raise ValueError("give at least one word to search for")
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)
