"""Cassettes: recordings as a portable, reviewable JSONL file.

One JSON object per line: a header, then the interactions (nodes), the HTTP
exchanges and the stream events of what was exported. Bodies are kept as text,
byte for byte, so replay answers exactly what was recorded. No secrets go in:
credentials were never stored, and known key patterns found in bodies are
masked on export (the exporter reports each one).
"""

from __future__ import annotations

import base64
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..codecs import KEY_PATTERNS
from ..model import Turn
from ..pipeline.state import RECORDED_OWNER
from ..store.search import index_interaction
from ..store.sqlite import SQLiteStore

FORMAT = 1

# Known credential shapes, masked wherever they appear in an exported text.
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    **{name: re.compile(pattern) for name, pattern in KEY_PATTERNS.items()},  # the providers' own (their codecs)
    "bearer token": re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/\-]{16,}=*"),
    "aws access key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "github token": re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}"),
    "api key field": re.compile(r'(?i)"(?:api[_-]?key|x-api-key|x-goog-api-key|secret|password|token)"\s*:\s*"[^"]{8,}"'),
}

_INTERACTION_COLUMNS = ("id", "upstream", "front", "mode", "model", "status", "parent_id", "root_id", "depth",
                        "input", "output", "request", "usage", "input_tokens", "output_tokens", "error",
                        "provider_id", "created_at", "updated_at")
_EXCHANGE_COLUMNS = ("interaction_id", "upstream", "front", "method", "path", "status", "latency_ms", "model",
                     "input_tokens", "output_tokens", "stored", "request_headers", "request_body",
                     "response_headers", "response_body", "upstream_digest", "error", "created_at", "cache_key")
_JSON_COLUMNS = frozenset({"input", "output", "request", "usage", "request_headers", "response_headers"})
_BODY_COLUMNS = frozenset({"request_body", "response_body"})


@dataclass
class ExportReport:
    interactions: int = 0
    exchanges: int = 0
    events: int = 0
    masked: list[str] = field(default_factory=list)


class _Masker:
    def __init__(self, report: ExportReport) -> None:
        self._report = report

    def text(self, value: str, where: str) -> str:
        for name, pattern in SECRET_PATTERNS.items():
            value, count = pattern.subn(f"<masked {name}>", value)
            if count:
                self._report.masked.append(f"{where}: {count} x {name}")
        return value


def export_cassette(db: sqlite3.Connection, out: TextIO, *, thread: str | None = None, since: float | None = None,
                    upstream: str | None = None, only_new: bool = False, header: bool = True) -> ExportReport:
    """Write the selected recordings to `out` as JSONL, streaming row by row.

    `only_new` leaves out what was itself loaded from a cassette (owner
    `recorded`), to append a run's new traffic to the cassette it replayed."""
    report = ExportReport()
    masker = _Masker(report)
    where: list[str] = ["deleted_at IS NULL", "created_at >= ?"]
    params: list[Any] = [since or 0.0]
    if only_new:
        where.append("owner != ?")
        params.append(RECORDED_OWNER)
    if thread:
        root = db.execute("SELECT root_id FROM interactions WHERE id = ?", (thread,)).fetchone()
        if root is None:
            raise LookupError(f"no interaction '{thread}' in this database")
        where.append("root_id = ?")
        params.append(root[0])
    if upstream:
        where.append("upstream = ?")
        params.append(upstream)
    if header:
        out.write(orjson.dumps({"recall_cassette": FORMAT}).decode() + "\n")
    ids: list[str] = []
    for row in db.execute(f"SELECT {', '.join(_INTERACTION_COLUMNS)} FROM interactions WHERE {' AND '.join(where)}"
                          " ORDER BY created_at, depth", params):
        record = _record("interaction", _INTERACTION_COLUMNS, row, masker)
        ids.append(record["id"])
        out.write(orjson.dumps(record).decode() + "\n")
        report.interactions += 1
    exchange_where = ["stored = 1", "created_at >= ?"]
    exchange_params: list[Any] = [since or 0.0]
    if only_new:
        exchange_where.append("owner != ?")
        exchange_params.append(RECORDED_OWNER)
    if thread:
        exchange_where.append("interaction_id IN (SELECT value FROM json_each(?))")
        exchange_params.append(orjson.dumps(ids).decode())
    if upstream:
        exchange_where.append("upstream = ?")
        exchange_params.append(upstream)
    exchange_where.append("(cache IS NULL OR cache != 'hit')")
    for row in db.execute(f"SELECT {', '.join(_EXCHANGE_COLUMNS)} FROM exchanges WHERE {' AND '.join(exchange_where)}"
                          " ORDER BY id", exchange_params):
        out.write(orjson.dumps(_record("exchange", _EXCHANGE_COLUMNS, row, masker)).decode() + "\n")
        report.exchanges += 1
    for row in db.execute("SELECT interaction_id, seq, event_id, at_ms, frame FROM stream_events"
                          " WHERE interaction_id IN (SELECT value FROM json_each(?)) ORDER BY interaction_id, seq",
                          (orjson.dumps(ids).decode(),)):
        frame = _body(row[4], masker, f"event {row[0]}#{row[1]}", "frame")
        out.write(orjson.dumps({"kind": "event", "interaction_id": row[0], "seq": row[1], "event_id": row[2],
                                "at_ms": row[3], **frame}).decode() + "\n")
        report.events += 1
    return report


def _record(kind: str, columns: tuple[str, ...], row: tuple[Any, ...], masker: _Masker) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": kind}
    where = f"{kind} {row[0]}"
    for name, value in zip(columns, row, strict=True):
        if value is None:
            continue
        if name in _BODY_COLUMNS:
            record.update(_body(value, masker, f"{where} {name}", name))
        elif name in _JSON_COLUMNS:
            record[name] = orjson.loads(masker.text(value, f"{where} {name}"))
        else:
            record[name] = value
    return record


def _body(value: bytes | str, masker: _Masker, where: str, name: str) -> dict[str, str]:
    """A body as reviewable text under `name`, or as base64 under `name_base64` if it is not UTF-8."""
    raw = value.encode() if isinstance(value, str) else value
    try:
        return {name: masker.text(raw.decode("utf-8"), where)}
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(raw).decode()}


def read_cassette(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        header = handle.readline()
        try:
            version = orjson.loads(header).get("recall_cassette")
        except (orjson.JSONDecodeError, AttributeError):
            version = None
        if version != FORMAT:
            raise ValueError(f"{path}: not a recall cassette (its first line must be {{\"recall_cassette\": {FORMAT}}})")
        for number, line in enumerate(handle, start=2):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not valid JSON: {exc}") from None


def _unbody(record: dict[str, Any], name: str) -> bytes | None:
    if name in record:
        return str(record[name]).encode()
    if name + "_base64" in record:
        return base64.b64decode(record[name + "_base64"])
    return None


def insert_records(db: sqlite3.Connection, records: Iterator[dict[str, Any]]) -> dict[str, int]:
    """Load cassette records into a database (inside the caller's transaction).

    Loading replaces, never appends: every recording loaded earlier (owner
    `recorded`) for a request key this cassette has is dropped first, so
    importing a file twice changes nothing and a re-recorded cassette replaces
    its stale answers instead of queueing behind them (the n-th identical
    request gets the n-th recording). Interactions and stream events are
    keyed by their ids and replaced in place."""
    loaded = list(records)  # read twice: the request keys first, then the rows
    keys = {r["cache_key"] for r in loaded if r.get("kind") == "exchange" and r.get("cache_key")}
    db.executemany("DELETE FROM exchanges WHERE owner = ? AND cache_key = ?", [(RECORDED_OWNER, k) for k in keys])
    counts = {"interaction": 0, "exchange": 0, "event": 0}
    for record in loaded:
        kind = record.get("kind")
        if kind == "interaction":
            values = [orjson.dumps(record[c]).decode() if c in _JSON_COLUMNS and c in record else record.get(c)
                      for c in _INTERACTION_COLUMNS]
            db.execute(f"INSERT OR REPLACE INTO interactions (owner, {', '.join(_INTERACTION_COLUMNS)})"
                       f" VALUES (?, {', '.join('?' * len(_INTERACTION_COLUMNS))})", [RECORDED_OWNER, *values])
            index_interaction(db, record["id"], [Turn.from_json(t) for t in record.get("input") or []],
                              [Turn.from_json(t) for t in record.get("output") or []])
        elif kind == "exchange":
            if not record.get("cache_key"):  # no key to replace by: the same recording is the same row
                db.execute("DELETE FROM exchanges WHERE owner = ? AND cache_key IS NULL AND created_at = ?"
                           " AND method = ? AND path = ? AND interaction_id IS ?",
                           (RECORDED_OWNER, record.get("created_at"), record.get("method"), record.get("path"),
                            record.get("interaction_id")))
            values = [_unbody(record, c) if c in _BODY_COLUMNS else
                      (orjson.dumps(record[c]).decode() if c in _JSON_COLUMNS and c in record else record.get(c))
                      for c in _EXCHANGE_COLUMNS]
            db.execute(f"INSERT INTO exchanges (owner, {', '.join(_EXCHANGE_COLUMNS)})"
                       f" VALUES (?, {', '.join('?' * len(_EXCHANGE_COLUMNS))})", [RECORDED_OWNER, *values])
        elif kind == "event":
            db.execute("INSERT OR REPLACE INTO stream_events (interaction_id, seq, event_id, at_ms, frame)"
                       " VALUES (?,?,?,?,?)", (record["interaction_id"], record["seq"], record.get("event_id"),
                                               record.get("at_ms", 0.0), _unbody(record, "frame")))
        else:
            continue
        counts[kind] += 1
    return counts


async def load_cassette(store: SQLiteStore, path: Path) -> dict[str, int]:
    """Load a cassette into a running store (one transaction)."""
    records = list(read_cassette(path))
    return await store.run_write(lambda db: insert_records(db, iter(records)))
