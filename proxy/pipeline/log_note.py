"""What a request's handling learns that its log line should say (http/request_log.py writes it).

Noted where turns and audit rows are recorded, through a context variable, so
that the request path does not have to carry them to the log.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class AccessNote:
    """What the request's handling learnt that its log line should say."""

    model: str | None = None
    interaction_id: str | None = None
    error: str | None = None


current_note: contextvars.ContextVar[AccessNote | None] = contextvars.ContextVar("recall_access_note", default=None)


def note_exchange(exchange: Any) -> None:
    """Remember an audit record's model, interaction id and error for the request's log line."""
    note = current_note.get()
    if note is None:
        return
    note.model = note.model or getattr(exchange, "model", None)
    note.interaction_id = note.interaction_id or getattr(exchange, "interaction_id", None)
    note.error = note.error or getattr(exchange, "error", None)


def note_interaction(interaction_id: str, model: str | None) -> None:
    """Remember the node a request stored (its id is what the app was given) for its log line."""
    note = current_note.get()
    if note is not None:
        note.interaction_id = note.interaction_id or interaction_id
        note.model = note.model or model
