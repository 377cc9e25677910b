"""The viewer's JSON endpoints under /_recall/api/ (read-only; see docs/VIEWER.md).

Each handler parses its query, runs audit queries on a reader thread and
answers with records from proxy.viewer.records. No SQL lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from aiohttp import web

from .. import __version__
from ..audit.prices import price_rows
from ..audit.render import stats_record, thread_record, tree_record
from ..audit.when import parse_moment
from ..pipeline.spill import whole_audit
from ..store.protocol import AuditStore
from ..store.readers import Readers
from ..store.records import STATS_KEYS, THREAD_STATUSES, ThreadSummary
from ..store.search import fts_query
from .access import ViewerError
from .records import (
    decode_cursor,
    encode_cursor,
    events_record,
    exchange_view,
    node_record,
    search_hit_record,
    thread_cursor,
)

MAX_LIMIT = 500
T = TypeVar("T")


@dataclass(slots=True)
class Viewer:
    """What the handlers share: the token rules, the server's mode, and the readers once open."""

    tokens: list[str]
    mode: str | None  # live, replay or auto under `recall serve`; None under `recall ui`
    readers: Readers | None = None

    async def read(self, query: Callable[[AuditStore], T]) -> T:
        assert self.readers is not None, "the viewer's readers open at start-up"
        return await self.readers.run(query)


VIEWER = web.AppKey("recall_viewer", Viewer)


def json_answer(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _bad(message: str) -> ViewerError:
    return ViewerError(400, "invalid_request", message)


def _limit(request: web.Request, default: int) -> int:
    text = request.query.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise _bad(f"limit must be a whole number from 1 to {MAX_LIMIT}; got {text!r}")
    return int(text)


def _moment(request: web.Request, name: str) -> float | None:
    text = request.query.get(name)
    if not text:
        return None
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise _bad(f"{name}: {exc}") from None


def _cursor(request: web.Request) -> Any:
    text = request.query.get("cursor")
    if not text:
        return None
    try:
        return decode_cursor(text)
    except ValueError as exc:
        raise _bad(f"{exc}; start again from the first page (leave cursor out)") from None


def _not_found(interaction_id: str) -> ViewerError:
    return ViewerError(404, "not_found", f"no interaction {interaction_id!r} in this database")


async def info(request: web.Request) -> web.Response:
    viewer = request.app[VIEWER]
    assert viewer.readers is not None
    return json_answer({"version": __version__, "mode": viewer.mode, "database": viewer.readers.location,
                        "token_required": bool(viewer.tokens)})


async def conversations(request: web.Request) -> web.Response:
    limit = _limit(request, 50)
    cursor = _cursor(request)
    try:
        after = thread_cursor(cursor) if cursor is not None else None
    except ValueError as exc:
        raise _bad(f"{exc}; start again from the first page (leave cursor out)") from None
    upstream, model = request.query.get("upstream") or None, request.query.get("model") or None
    since, until = _moment(request, "since"), _moment(request, "until")
    status = request.query.get("status") or None
    if status is not None and status not in THREAD_STATUSES:
        raise _bad(f"status must be one of {', '.join(THREAD_STATUSES)}; got {status!r}")

    def page_of(db: AuditStore) -> list[ThreadSummary]:
        # One more than asked: whether there is a next page, without an empty last one.
        return db.threads(upstream=upstream, model=model, since=since, until=until, limit=limit + 1, after=after,
                          status=status)

    threads = await request.app[VIEWER].read(page_of)
    page = threads[:limit]
    more = len(threads) > limit
    return json_answer({
        "conversations": [thread_record(t) for t in page],
        "next_cursor": encode_cursor([page[-1].last_activity, page[-1].thread_id]) if more else None,
    })


async def search(request: web.Request) -> web.Response:
    words = request.query.get("q", "")
    raw = request.query.get("fts", "").lower() in ("1", "true")
    try:
        query = fts_query(words, raw=raw)
    except ValueError as exc:
        raise _bad(f"q: {exc}") from None
    limit = _limit(request, 20)
    offset = _cursor(request) or 0
    if not isinstance(offset, int) or offset < 0:
        raise _bad("cursor does not belong to a search; start again from the first page (leave cursor out)")
    since, until = _moment(request, "since"), _moment(request, "until")
    upstream = request.query.get("upstream") or None

    def find(db: AuditStore) -> Any:
        return db.search(query, limit=limit + 1, offset=offset, since=since, until=until, upstream=upstream)

    try:
        hits = await request.app[VIEWER].read(find)
    except ValueError as exc:  # FTS5 syntax the index cannot read
        raise _bad(str(exc)) from None
    return json_answer({
        "hits": [search_hit_record(hit) for hit in hits[:limit]],
        "next_cursor": encode_cursor(offset + limit) if len(hits) > limit else None,
    })


async def conversation(request: web.Request) -> web.Response:
    """A whole thread (every branch), named by any of its interactions."""
    interaction_id = request.match_info["id"]

    def load(db: AuditStore) -> dict[str, Any] | None:
        found = db.node(interaction_id)
        if found is None:
            return None
        thread_id = found.interaction.root_id or interaction_id
        nodes = [whole_audit(db, node) for node in db.thread(thread_id)]
        served = db.served(thread_id)
        return {"thread_id": thread_id, "focus": interaction_id,
                "nodes": [node_record(n, served.get(n.interaction.id)) for n in nodes],
                "tree": tree_record(nodes)}

    thread = await request.app[VIEWER].read(load)
    if thread is None:
        raise _not_found(interaction_id)
    return json_answer(thread)


async def exchanges(request: web.Request) -> web.Response:
    interaction_id = request.match_info["id"]

    def load(db: AuditStore) -> list[Any] | None:
        return None if db.node(interaction_id) is None else db.exchanges(interaction_id)

    found = await request.app[VIEWER].read(load)
    if found is None:
        raise _not_found(interaction_id)
    return json_answer({"interaction_id": interaction_id, "exchanges": [exchange_view(ex) for ex in found]})


async def events(request: web.Request) -> web.Response:
    interaction_id = request.match_info["id"]

    def load(db: AuditStore) -> list[Any] | None:
        return None if db.node(interaction_id) is None else db.stream_events(interaction_id)

    found = await request.app[VIEWER].read(load)
    if found is None:
        raise _not_found(interaction_id)
    return json_answer(events_record(interaction_id, found))


async def stats(request: web.Request) -> web.Response:
    asked = [key for value in request.query.getall("by", []) for key in value.split(",") if key]
    unknown = sorted(set(asked) - set(STATS_KEYS))
    if unknown:
        raise _bad(f"by: cannot group by {', '.join(unknown)}; choose from {', '.join(STATS_KEYS)}")
    by = tuple(k for k in STATS_KEYS if k in asked) if asked else STATS_KEYS
    since, until = _moment(request, "since"), _moment(request, "until")

    def load(db: AuditStore) -> tuple[Any, Any]:
        rows, totals = db.stats(by=by, since=since, until=until), db.stats(by=(), since=since, until=until)
        price_rows(rows, db.token_usage(by=by, since=since, until=until))
        price_rows(totals, db.token_usage(by=(), since=since, until=until))
        return rows, totals

    rows, totals = await request.app[VIEWER].read(load)
    return json_answer({"by": list(by), "rows": [stats_record(r) for r in rows],
                        "total": stats_record(totals[0]) if totals else None})


async def unknown(request: web.Request) -> web.Response:
    if request.method not in ("GET", "HEAD"):
        raise ViewerError(405, "read_only", f"the viewer is read-only: {request.method} is not answered here, only GET")
    raise ViewerError(404, "not_found", f"no viewer endpoint at {request.path}; see docs/VIEWER.md")
