"""OpenAI conversation objects and their items in SQLite (the Conversations API's storage).

Writes are functions the store's writer runs in its transactions; reads are
statements the store's reader runs. SQLiteStore's conversation methods put
them together.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from .records import Conversation
from .rows import dumps

SELECT_CONVERSATION = "SELECT id, owner, upstream, metadata, created_at FROM openai_conversations WHERE id = ?"
SELECT_ITEMS = "SELECT item FROM openai_conversation_items WHERE conversation_id = ? ORDER BY seq"


def conversation_from_row(row: Sequence[Any]) -> Conversation:
    return Conversation(id=row[0], owner=row[1], upstream=row[2], created=row[4],
                        metadata=orjson.loads(row[3]) if row[3] else {})


def insert_conversation(db: sqlite3.Connection, conversation: Conversation, items: list[tuple[str, Any]]) -> None:
    db.execute(
        "INSERT INTO openai_conversations (id, owner, upstream, metadata, created_at, updated_at) VALUES (?,?,?,?,?,?)",
        (conversation.id, conversation.owner, conversation.upstream, dumps(conversation.metadata),
         conversation.created, conversation.created),
    )
    _append_items(db, conversation.id, items, conversation.created)


def update_metadata(db: sqlite3.Connection, conversation_id: str, metadata: dict[str, Any], now: float) -> None:
    db.execute("UPDATE openai_conversations SET metadata = ?, updated_at = ? WHERE id = ?",
               (dumps(metadata), now, conversation_id))


def delete_conversation(db: sqlite3.Connection, conversation_id: str) -> None:
    """The conversation, every item in it and the recorded calls made on it."""
    db.execute("DELETE FROM openai_conversation_items WHERE conversation_id = ?", (conversation_id,))
    db.execute("DELETE FROM exchanges WHERE interaction_id = ?", (conversation_id,))
    db.execute("DELETE FROM openai_conversations WHERE id = ?", (conversation_id,))


def append_items(db: sqlite3.Connection, conversation_id: str, items: list[tuple[str, Any]], now: float) -> None:
    # A conversation deleted while one of its turns ran keeps nothing of that turn.
    if db.execute("UPDATE openai_conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)).rowcount:
        _append_items(db, conversation_id, items, now)


def delete_item(db: sqlite3.Connection, conversation_id: str, item_id: str) -> bool:
    return db.execute(
        "DELETE FROM openai_conversation_items WHERE conversation_id = ? AND item_id = ?", (conversation_id, item_id)
    ).rowcount > 0


def _append_items(db: sqlite3.Connection, conversation_id: str, items: list[tuple[str, Any]], now: float) -> None:
    """Items after the conversation's last; the single writer keeps `seq` free of races."""
    last: int = db.execute(
        "SELECT coalesce(max(seq), 0) FROM openai_conversation_items WHERE conversation_id = ?", (conversation_id,)
    ).fetchone()[0]
    db.executemany(
        "INSERT INTO openai_conversation_items (conversation_id, seq, item_id, item, created_at) VALUES (?,?,?,?,?)",
        [(conversation_id, last + n, item_id, dumps(item), now) for n, (item_id, item) in enumerate(items, start=1)],
    )
