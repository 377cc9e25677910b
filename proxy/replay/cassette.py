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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..codecs import KEY_PATTERNS
from ..store.protocol import AuditStore, Store
from ..store.recordings import (
    BODY_FIELDS,
    EVENT,
    EXCHANGE,
    EXCHANGE_FIELDS,
    INTERACTION,
    INTERACTION_FIELDS,
    JSON_FIELDS,
    Row,
)
from ..store.records import RECORDED_OWNER

FORMAT = 1

# Known credential shapes, masked wherever they appear in an exported text.
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    **{name: re.compile(pattern) for name, pattern in KEY_PATTERNS.items()},  # the providers' own (their codecs)
    "bearer token": re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/\-]{16,}=*"),
    "aws access key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "github token": re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}"),
    "api key field": re.compile(r'(?i)"(?:api[_-]?key|x-api-key|x-goog-api-key|secret|password|token)"\s*:\s*"[^"]{8,}"'),
}


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


def export_cassette(audit: AuditStore, out: TextIO, *, thread: str | None = None, since: float | None = None,
                    upstream: str | None = None, only_new: bool = False, header: bool = True) -> ExportReport:
    """Write the selected recordings to `out` as JSONL, streaming row by row.

    `only_new` leaves out what was itself loaded from a cassette (owner
    `recorded`), to append a run's new traffic to the cassette it replayed."""
    report = ExportReport()
    masker = _Masker(report)
    rows = audit.export_recordings(thread=thread, since=since, upstream=upstream,
                                   skip_owner=RECORDED_OWNER if only_new else None)
    if header:
        out.write(orjson.dumps({"recall_cassette": FORMAT}).decode() + "\n")
    for kind, row in rows:
        if kind == INTERACTION:
            out.write(orjson.dumps(_record(kind, f"interaction {row['id']}", row, masker)).decode() + "\n")
            report.interactions += 1
        elif kind == EXCHANGE:
            out.write(orjson.dumps(_record(kind, f"exchange {row['interaction_id']}", row, masker)).decode() + "\n")
            report.exchanges += 1
        else:
            frame = _body(row["frame"], masker, f"event {row['interaction_id']}#{row['seq']}", "frame")
            out.write(orjson.dumps({"kind": "event", "interaction_id": row["interaction_id"], "seq": row["seq"],
                                    "event_id": row["event_id"], "at_ms": row["at_ms"], **frame}).decode() + "\n")
            report.events += 1
    return report


def _record(kind: str, where: str, row: Row, masker: _Masker) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": kind}
    for name, value in row.items():
        if value is None:
            continue
        if name in BODY_FIELDS:
            record.update(_body(value, masker, f"{where} {name}", name))
        elif name in JSON_FIELDS:
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


def _stored(record: dict[str, Any], fields: tuple[str, ...]) -> Row:
    """A cassette record as the store keeps it: JSON fields as JSON text, bodies as bytes."""
    return {name: _unbody(record, name) if name in BODY_FIELDS else
            (orjson.dumps(record[name]).decode() if name in JSON_FIELDS and name in record else record.get(name))
            for name in fields}


def _rows(records: Iterable[dict[str, Any]]) -> Iterator[tuple[str, Row]]:
    for record in records:
        kind = record.get("kind")
        if kind == INTERACTION:
            yield kind, {**_stored(record, INTERACTION_FIELDS), "id": record["id"]}  # a node has an id (KeyError)
        elif kind == EXCHANGE:
            yield kind, _stored(record, EXCHANGE_FIELDS)
        elif kind == EVENT:
            yield kind, {"interaction_id": record["interaction_id"], "seq": record["seq"],
                         "event_id": record.get("event_id"), "at_ms": record.get("at_ms", 0.0),
                         "frame": _unbody(record, "frame")}


def load_records(audit: AuditStore, records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Load cassette records into a database in one transaction, replacing what an earlier load
    of the same requests left (AuditStore.load_recordings). KeyError, and nothing loaded, for a
    record that lacks a field it cannot do without."""
    return audit.load_recordings(list(_rows(records)), RECORDED_OWNER)


async def load_cassette(store: Store, path: Path) -> dict[str, int]:
    """Load a cassette into a running store (one transaction)."""
    return await store.load_recordings(list(_rows(read_cassette(path))), RECORDED_OWNER)
