"""What a consistent recall database looks like, checked straight on the file.

Used after faults, crashes and load: whatever happened, the store must hold
whole records only (no half-written node, no orphan event or exchange).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

# A rejected request may leave one thing: a metadata-only audit row (no bodies, stored = 0)
# that `recall stats` counts as an error. Everything that holds content must stay as it was.
_CONTENT = {
    "interactions": "SELECT count(*) FROM interactions",
    "exchanges": "SELECT count(*) FROM exchanges WHERE stored = 1 OR request_body IS NOT NULL OR response_body IS NOT NULL",
    "stream_events": "SELECT count(*) FROM stream_events",
}


def counts(db_path: Path) -> dict[str, int]:
    """Rows holding content, per table: what a rejected request must leave unchanged."""
    with sqlite3.connect(db_path) as db:
        return {table: db.execute(sql).fetchone()[0] for table, sql in _CONTENT.items()}


def statuses(db_path: Path) -> Counter[str]:
    with sqlite3.connect(db_path) as db:
        return Counter(row[0] for row in db.execute("SELECT status FROM interactions"))


def integrity(db_path: Path) -> str:
    with sqlite3.connect(db_path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def problems(db_path: Path, *, running_allowed: bool = False) -> list[str]:
    """Everything inconsistent in the store; an empty list means whole records only."""
    found: list[str] = []
    with sqlite3.connect(db_path) as db:
        if (check := db.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
            found.append(f"integrity_check: {check}")
        rows = db.execute(
            "SELECT id, status, parent_id, root_id, depth, input, output, request, usage, error, deleted_at"
            " FROM interactions").fetchall()
        by_id = {row[0]: row for row in rows}
        for (id_, status, parent, root, depth, input_, output, request, usage, error, deleted) in rows:
            if deleted is None:
                for name, text in (("input", input_), ("output", output), ("request", request), ("usage", usage)):
                    try:
                        json.loads(text) if text is not None else None
                    except ValueError:
                        found.append(f"{id_}: {name} is not whole JSON")
            if status == "in_progress" and not running_allowed:
                found.append(f"{id_}: still in_progress")
            if status == "failed" and not error:
                found.append(f"{id_}: failed without an error message")
            if parent is not None and parent in by_id:
                if by_id[parent][3] != root or by_id[parent][4] + 1 != depth:
                    found.append(f"{id_}: root/depth do not follow its parent {parent}")
            elif parent is None and (root != id_ or depth != 0):
                found.append(f"{id_}: a root node with root {root} and depth {depth}")
        for (orphan,) in db.execute(
                "SELECT DISTINCT interaction_id FROM stream_events WHERE interaction_id NOT IN"
                " (SELECT id FROM interactions)"):
            found.append(f"stream events of a missing interaction {orphan}")
        for (orphan,) in db.execute(
                "SELECT DISTINCT interaction_id FROM exchanges WHERE interaction_id IS NOT NULL AND interaction_id"
                " NOT IN (SELECT id FROM interactions)"):
            found.append(f"an exchange of a missing interaction {orphan}")
    return found
