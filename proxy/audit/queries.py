"""Every query the audit commands make, on a plain synchronous connection.

The CLI may read while a server writes (WAL lets both run). Lists are bounded
by a limit; exports stream one thread at a time from a cursor, and stats are
aggregated inside SQLite, so a big database is never loaded whole.

Deleted nodes (tombstones: status 'deleted', no content) are left out of
threads, search and stats' content figures; show, tree and export keep them,
marked, so that the shape of a thread stays visible.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import Interaction
from ..store.erase import (
    Purge,
    Removed,
    erase_interactions,
    erase_thread,
    merge_search_index_step,
    purge_before,
    reclaim_space,
)
from ..store.records import Exchange
from ..store.sqlite import EXCHANGE_COLUMNS, INTERACTION_COLUMNS, exchange_from_row, interaction_from_row, open_sync

# Markers around a search hit inside a snippet; renderers swap them for their own.
HIT_START = "\x02"
HIT_END = "\x03"

_NODE_COLUMNS = ", ".join("i." + c.strip() for c in INTERACTION_COLUMNS.split(",")) + ", i.depth, i.deleted_at"

# `recall stats --by`: what figures can be grouped by (columns of the stats query).
STATS_KEYS = ("day", "upstream", "model")
# What `ls --status` and the viewer's status filter offer: threads with a live interaction in that state.
THREAD_STATUSES = ("completed", "failed", "in_progress", "requires_action", "incomplete", "cancelled")

# The nodes an export takes: a time window and one thread, each optional.
_EXPORT_WINDOW = (
    "(:since IS NULL OR created_at >= :since) AND (:until IS NULL OR created_at < :until)"
    " AND (:thread IS NULL OR root_id = :thread)"
)


@dataclass(slots=True)
class Node:
    """A stored interaction with its place in the tree; a tombstone if deleted."""

    interaction: Interaction
    depth: int
    deleted_at: float | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(slots=True)
class ThreadSummary:
    thread_id: str
    interactions: int
    upstreams: list[str]
    models: list[str]
    input_tokens: int | None
    output_tokens: int | None
    started: float
    last_activity: float
    title: str | None
    # Live interactions that failed, and that are still going (shown as marks in the lists).
    failed: int = 0
    in_progress: int = 0


# Where a page of threads ended: (last activity, thread id) of its last thread.
ThreadKey = tuple[float, str]


@dataclass(slots=True)
class SearchHit:
    interaction_id: str
    thread_id: str
    created: float
    upstream: str
    model: str | None
    # Excerpts around the matched words (wrapped in HIT_START and HIT_END) of
    # each side where any of them was found; None where none was.
    input_snippet: str | None
    output_snippet: str | None
    title: str | None = None  # its thread's first user text, to show instead of ids


@dataclass(slots=True)
class Served:
    """How recall answered the call that made a node, from its recorded exchanges."""

    exchanges: int
    status: int | None  # of the first exchange, as are latency and cache
    latency_ms: float | None
    cache: str | None  # live, miss (forwarded in auto mode) or hit (replayed)
    stream_events: int


@dataclass(slots=True)
class StreamEvent:
    """One recorded SSE event as the app was sent it, `at_ms` after the stream began."""

    seq: int
    event_id: str | None
    at_ms: float
    frame: bytes


def _asked_model(row: str) -> str:
    """SQL for the model an exchange row's request names, for rows recall stored no model for
    (relayed calls): a `/models/NAME:method` path, else the JSON body's `model`. Evaluated
    only where the columns before it in a coalesce are NULL."""
    path = f"{row}.path"
    after = f"substr({path}, instr({path}, '/models/') + 8)"
    return (f"CASE WHEN instr({path}, '/models/') > 0 AND instr({after}, ':') > 1"
            f" THEN substr({after}, 1, instr({after}, ':') - 1)"
            f" WHEN json_valid(CAST({row}.request_body AS TEXT))"
            f" THEN json_extract(CAST({row}.request_body AS TEXT), '$.model') END")


# Every request and every interaction as one row of figures, for `stats` and `token_usage`
# (the SQL takes :since and :until).
_FACTS = f"""
facts AS (
                SELECT date(e.created_at, 'unixepoch') AS day, e.upstream AS upstream,
                       -- a replay hit's row names no interaction: its model is its recording's
                       coalesce(e.model, i.model, {_asked_model("e")}, CASE WHEN e.cache = 'hit' THEN (
                           SELECT coalesce(r.model, ri.model, {_asked_model("r")}) FROM exchanges AS r
                           LEFT JOIN interactions AS ri ON ri.id = r.interaction_id
                           WHERE r.cache_key = e.cache_key AND coalesce(r.cache, '') != 'hit'
                           ORDER BY r.id LIMIT 1) END) AS model,
                       1 AS requests, 0 AS interactions,
                       CASE WHEN e.interaction_id IS NULL THEN e.input_tokens END AS input_tokens,
                       CASE WHEN e.interaction_id IS NULL THEN e.output_tokens END AS output_tokens,
                       (e.status >= 400 OR e.error IS NOT NULL) AS errors,
                       e.latency_ms AS latency_ms,
                       coalesce(e.cache = 'hit', 0) AS replay_hits
                FROM exchanges AS e LEFT JOIN interactions AS i ON i.id = e.interaction_id
                WHERE (:since IS NULL OR e.created_at >= :since) AND (:until IS NULL OR e.created_at < :until)
                UNION ALL
                SELECT date(created_at, 'unixepoch'), upstream, model, 0, 1, input_tokens, output_tokens, 0, NULL, 0
                FROM interactions
                WHERE (:since IS NULL OR created_at >= :since) AND (:until IS NULL OR created_at < :until)
            )
"""


@dataclass(slots=True)
class StatsRow:
    key: dict[str, str | None]  # the --by columns, e.g. {"day": "2026-01-31", "model": "gemini-3"}
    requests: int
    interactions: int
    input_tokens: int
    output_tokens: int
    errors: int
    p50_latency_ms: float | None
    replay_hits: int = 0
    # Priced by proxy.audit.prices: None when a model in the row has no known price.
    cost_usd: float | None = None
    unpriced_models: list[str] = field(default_factory=list)


class WalBusy(Exception):
    """The erase is committed, but a reader kept the WAL from being truncated:
    old copies of the erased pages stay there until the next checkpoint."""

    def __init__(self, removed: Removed) -> None:
        super().__init__("another connection is reading the database; the WAL could not be truncated")
        self.removed = removed


def _node(row: tuple[Any, ...]) -> Node:
    return Node(interaction_from_row(row[:-2]), depth=row[-2], deleted_at=row[-1])


def _split(listed: str | None) -> list[str]:
    return listed.split(",") if listed else []


def fts_query(text: str, *, raw: bool = False) -> str:
    """An FTS5 query: every word must appear (each quoted, so `?` or `-` are just
    characters), or with `raw` the text as FTS5 syntax (OR, NOT, "phrases", prefix*)."""
    if raw:
        return text
    words = text.split()
    if not words:
        raise ValueError("give at least one word to search for")
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


class IdNotFound(LookupError):
    """No interaction id is, or starts with, what was given; or several start with it."""

    def __init__(self, given: str, candidates: list[str]) -> None:
        super().__init__(given)
        self.given = given
        self.candidates = candidates


def complete_id(db: sqlite3.Connection, given: str, *, shown: int = 10) -> str:
    """The interaction id that is `given`, or the only one that starts with it (like git's short hashes).

    Raises IdNotFound with up to `shown` candidates when none or several do."""
    if not given:
        raise IdNotFound(given, [])
    if db.execute("SELECT 1 FROM interactions WHERE id = ?", (given,)).fetchone():
        return given
    # A range on the primary key rather than LIKE: it uses the index and treats _ and % literally.
    upper = given[:-1] + chr(ord(given[-1]) + 1)
    found = [row[0] for row in db.execute("SELECT id FROM interactions WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                                          (given, upper, shown + 1))]
    if len(found) == 1:
        return found[0]
    raise IdNotFound(given, found)


class AuditDB:
    """The database as the audit commands see it."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> AuditDB:
        """Open an existing database (FileNotFoundError otherwise), migrated to this version."""
        return cls(open_sync(path), path)

    def close(self) -> None:
        self.db.close()

    # -- threads and nodes ----------------------------------------------------

    def complete_id(self, given: str) -> str:
        return complete_id(self.db, given)

    def last_id(self) -> str | None:
        """The newest interaction that still has its content."""
        row = self.db.execute("SELECT id FROM interactions WHERE deleted_at IS NULL"
                              " ORDER BY created_at DESC, depth DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def purge_preview(self, cutoff: float) -> list[tuple[str, int, bool, str | None]]:
        """The threads a purge at `cutoff` would touch: (thread id, interactions erased, thread gone, title)."""
        return [(row[0], row[1], bool(row[2]), row[3]) for row in self.db.execute(
            """
            SELECT root_id,
                   sum(created_at < :cutoff AND deleted_at IS NULL),
                   max(created_at) < :cutoff,
                   (SELECT title FROM conversations AS c WHERE c.thread_id = i.root_id)
            FROM interactions AS i GROUP BY root_id
            HAVING sum(created_at < :cutoff AND deleted_at IS NULL) > 0
            ORDER BY max(created_at)
            """, {"cutoff": cutoff})]

    def threads(self, *, upstream: str | None = None, model: str | None = None, since: float | None = None,
                until: float | None = None, limit: int = 50, after: ThreadKey | None = None,
                status: str | None = None) -> list[ThreadSummary]:
        """Conversations newest first, by last activity (then thread id); a thread matches a filter
        when any of its live interactions does. `after` continues from a page's last thread.

        Keyset paging over the updated_at index: a page reads about `limit` threads' rows,
        whatever the size of the file and however deep the page, instead of grouping every
        thread first. A filter that matches few threads still has to walk past the others.
        """
        keys = self.db.execute(
            """
            SELECT DISTINCT i.root_id, i.updated_at FROM interactions AS i
            WHERE i.deleted_at IS NULL
              AND i.updated_at <= coalesce(:after_time, 1e308)
              AND (:after_time IS NULL OR i.updated_at < :after_time OR i.root_id > :after_thread)
              AND i.updated_at >= coalesce(:since, -1e308) AND i.updated_at < coalesce(:until, 1e308)
              -- a thread is met first at its latest live node: later rows of it are skipped
              AND i.updated_at = (SELECT max(j.updated_at) FROM interactions AS j
                                  WHERE j.root_id = i.root_id AND j.deleted_at IS NULL)
              AND (:upstream IS NULL OR EXISTS (SELECT 1 FROM interactions AS j WHERE j.root_id = i.root_id
                   AND j.deleted_at IS NULL AND j.upstream = :upstream))
              AND (:model IS NULL OR EXISTS (SELECT 1 FROM interactions AS j WHERE j.root_id = i.root_id
                   AND j.deleted_at IS NULL AND j.model = :model))
              AND (:status IS NULL OR EXISTS (SELECT 1 FROM interactions AS j WHERE j.root_id = i.root_id
                   AND j.deleted_at IS NULL AND j.status = :status))
            ORDER BY i.updated_at DESC, i.root_id
            LIMIT :limit
            """,
            {"since": since, "until": until, "upstream": upstream, "model": model, "limit": limit,
             "status": status,
             "after_time": after[0] if after else None, "after_thread": after[1] if after else None},
        ).fetchall()
        if not keys:
            return []
        ids = [thread_id for thread_id, _ in keys]
        # Placeholders, not a JSON list: SQLite pushes `IN (?, …)` into the view's GROUP BY.
        rows = self.db.execute(
            f"""
            SELECT thread_id, interactions, upstreams, models, input_tokens, output_tokens,
                   started_at, last_activity_at, title
            FROM conversations WHERE thread_id IN ({", ".join("?" * len(ids))})
            """,
            ids,
        )
        found = {r[0]: ThreadSummary(r[0], r[1], _split(r[2]), _split(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows}
        for thread_id, failed, going in self.db.execute(
                f"SELECT root_id, sum(status = 'failed'), sum(status = 'in_progress') FROM interactions"
                f" WHERE root_id IN ({', '.join('?' * len(ids))}) AND deleted_at IS NULL GROUP BY root_id", ids):
            if thread_id in found:
                found[thread_id].failed, found[thread_id].in_progress = failed, going
        return [found[thread_id] for thread_id in ids if thread_id in found]

    def node(self, interaction_id: str) -> Node | None:
        """A node by id, tombstones included."""
        row = self.db.execute(
            f"SELECT {_NODE_COLUMNS} FROM interactions AS i WHERE i.id = ?", (interaction_id,)
        ).fetchone()
        return _node(row) if row else None

    def chain(self, interaction_id: str) -> list[Node]:
        """The thread from its root down to this node, tombstones included."""
        rows = self.db.execute(
            f"""
            WITH RECURSIVE chain(id, hop) AS (
                SELECT id, 0 FROM interactions WHERE id = ?
                UNION ALL
                SELECT i.parent_id, chain.hop + 1
                FROM interactions AS i JOIN chain ON i.id = chain.id
                WHERE i.parent_id IS NOT NULL
            )
            SELECT {_NODE_COLUMNS} FROM chain JOIN interactions AS i ON i.id = chain.id
            ORDER BY chain.hop DESC
            """,
            (interaction_id,),
        )
        return [_node(r) for r in rows]

    def thread(self, thread_id: str) -> list[Node]:
        """Every node of a thread (root id), parents before children."""
        rows = self.db.execute(
            f"SELECT {_NODE_COLUMNS} FROM interactions AS i WHERE i.root_id = ? ORDER BY i.depth, i.created_at, i.id",
            (thread_id,),
        )
        return [_node(r) for r in rows]

    def exchanges(self, interaction_id: str) -> list[Exchange]:
        rows = self.db.execute(
            f"SELECT {EXCHANGE_COLUMNS} FROM exchanges WHERE interaction_id = ? ORDER BY id", (interaction_id,)
        )
        return [exchange_from_row(r) for r in rows]

    def served(self, thread_id: str) -> dict[str, Served]:
        """For each node of a thread, how its call was answered (no exchange: zero and Nones)."""
        rows = self.db.execute(
            """
            SELECT i.id, (SELECT count(*) FROM exchanges WHERE interaction_id = i.id),
                   e.status, e.latency_ms, e.cache,
                   (SELECT count(*) FROM stream_events WHERE interaction_id = i.id)
            FROM interactions AS i
            LEFT JOIN exchanges AS e ON e.id = (SELECT min(id) FROM exchanges WHERE interaction_id = i.id)
            WHERE i.root_id = ?
            """,
            (thread_id,),
        )
        return {r[0]: Served(*r[1:]) for r in rows}

    def stream_events(self, interaction_id: str) -> list[StreamEvent]:
        """The events a streamed turn sent, in order (none for a turn that was not streamed)."""
        rows = self.db.execute(
            "SELECT seq, event_id, at_ms, frame FROM stream_events WHERE interaction_id = ? ORDER BY seq",
            (interaction_id,),
        )
        return [StreamEvent(*r) for r in rows]

    # -- search ---------------------------------------------------------------

    def search(self, query: str, *, limit: int = 20, offset: int = 0, since: float | None = None,
               until: float | None = None, upstream: str | None = None) -> list[SearchHit]:
        """Best matches first. `query` is FTS5 syntax (see fts_query); a bad one raises ValueError."""
        try:
            rows = self.db.execute(
                f"""
                SELECT k.interaction_id, i.root_id, i.created_at, i.upstream, i.model,
                       snippet(search_index, 0, '{HIT_START}', '{HIT_END}', '…', 16),
                       snippet(search_index, 1, '{HIT_START}', '{HIT_END}', '…', 16),
                       (SELECT c.title FROM conversations AS c WHERE c.thread_id = i.root_id)
                FROM search_index
                JOIN search_keys AS k ON k.id = search_index.rowid
                JOIN interactions AS i ON i.id = k.interaction_id
                WHERE search_index MATCH :query
                  AND (:since IS NULL OR i.created_at >= :since)
                  AND (:until IS NULL OR i.created_at < :until)
                  AND (:upstream IS NULL OR i.upstream = :upstream)
                ORDER BY search_index.rank
                LIMIT :limit OFFSET :offset
                """,
                {"query": query, "since": since, "until": until, "upstream": upstream, "limit": limit,
                 "offset": offset},
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise ValueError(f"cannot search for {query!r}: {exc}") from None
        def marked(text: str | None) -> str | None:  # a side with no matched word has no snippet
            return text if text and HIT_START in text else None

        return [SearchHit(row[0], row[1], row[2], row[3], row[4], marked(row[5]), marked(row[6]), row[7])
                for row in rows]

    # -- export ---------------------------------------------------------------

    def count(self, *, since: float | None = None, until: float | None = None, thread: str | None = None) -> int:
        """How many nodes export_rows will yield."""
        window = {"since": since, "until": until, "thread": thread}
        return self.db.execute(f"SELECT count(*) FROM interactions WHERE {_EXPORT_WINDOW}", window).fetchone()[0]

    def export_rows(self, *, since: float | None = None, until: float | None = None,
                    thread: str | None = None) -> Iterator[Node]:
        """Nodes thread by thread (oldest thread first), parents before children,
        fetched one thread at a time."""
        window = {"since": since, "until": until, "thread": thread}
        roots = self.db.execute(
            f"SELECT root_id FROM interactions WHERE {_EXPORT_WINDOW} GROUP BY root_id ORDER BY min(created_at), root_id",
            window,
        )
        for (root_id,) in roots:
            rows = self.db.execute(
                f"SELECT {_NODE_COLUMNS} FROM interactions AS i WHERE {_EXPORT_WINDOW}"
                " AND root_id = :root ORDER BY depth, created_at, id",
                {**window, "root": root_id},
            )
            for row in rows:
                yield _node(row)

    # -- stats ----------------------------------------------------------------

    def stats(self, *, by: tuple[str, ...] = STATS_KEYS, since: float | None = None,
              until: float | None = None) -> list[StatsRow]:
        """Requests, errors and p50 latency from the exchange log; interactions and
        tokens from the nodes (deleted ones still count: they were sent), plus the
        tokens of unstored calls, whose exchange is their only record."""
        unknown = set(by) - set(STATS_KEYS)
        if unknown:
            raise ValueError(f"cannot group by {', '.join(sorted(unknown))}; choose from {', '.join(STATS_KEYS)}")
        keys = ", ".join(by)
        group = f"GROUP BY {keys}" if by else ""
        partition = f"PARTITION BY {keys}" if by else ""
        rows = self.db.execute(
            f"""
            WITH {_FACTS},
            ranked AS (
                SELECT *,
                       row_number() OVER ({partition} ORDER BY latency_ms IS NULL, latency_ms) AS n,
                       count(latency_ms) OVER ({partition}) AS measured
                FROM facts
            )
            SELECT {keys + "," if by else ""}
                   sum(requests), sum(interactions), coalesce(sum(input_tokens), 0),
                   coalesce(sum(output_tokens), 0), sum(errors),
                   avg(CASE WHEN n IN ((measured + 1) / 2, (measured + 2) / 2) THEN latency_ms END),
                   sum(replay_hits)
            FROM ranked {group}
            ORDER BY {keys or "1"}
            """,
            {"since": since, "until": until},
        )
        out = []
        for row in rows:
            key = dict(zip(by, row[: len(by)], strict=True))
            requests, interactions, tokens_in, tokens_out, errors, p50, hits = row[len(by):]
            if requests or interactions:
                out.append(StatsRow(key, requests, interactions, tokens_in, tokens_out, errors, p50, hits))
        return out

    def token_usage(self, *, by: tuple[str, ...], since: float | None = None,
                    until: float | None = None) -> list[tuple[dict[str, str | None], str | None, int, int]]:
        """Tokens in and out per --by group and model, for pricing (a price is per model)."""
        keys = ", ".join(by)
        rows = self.db.execute(
            f"""
            WITH {_FACTS}
            SELECT {keys + "," if by else ""} model, coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0)
            FROM facts GROUP BY {keys + "," if by else ""} model
            """,
            {"since": since, "until": until},
        )
        return [(dict(zip(by, row[: len(by)], strict=True)), *row[len(by):]) for row in rows]

    # -- erasing ----------------------------------------------------------------

    def bytes_on_disk(self) -> int:
        """The database file and its WAL."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def _erase(self, op: Callable[[sqlite3.Connection], Removed], *, dry_run: bool = False) -> Removed:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            removed = op(self.db)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if dry_run:
            self.db.execute("ROLLBACK")
            return removed
        self.db.execute("COMMIT")
        return self._reclaim(removed)

    def _reclaim(self, removed: Removed) -> Removed:
        """After an erase: the search index merged and the space given back, in short
        transactions, so that a server on the same file waits for none of them long."""
        if removed.interactions:
            while merge_search_index_step(self.db):
                pass
        if not reclaim_space(self.db):
            raise WalBusy(removed)
        return removed

    def rm(self, interaction_id: str) -> Removed:
        """Erase one node; its children keep their place under its tombstone."""
        return self._erase(lambda db: erase_interactions(db, [interaction_id]))

    def rm_thread(self, thread_id: str) -> Removed:
        return self._erase(lambda db: erase_thread(db, thread_id))

    def purge(self, cutoff: float, *, dry_run: bool = False) -> Removed:
        if dry_run:
            return self._erase(lambda db: purge_before(db, cutoff), dry_run=True)
        purge, more = Purge(cutoff), True
        while more:  # one short transaction a step: a running server's writes go between them
            self.db.execute("BEGIN IMMEDIATE")
            try:
                more = purge.step(self.db)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            # Each step's pages copied into the database now, by this process: left in the
            # WAL, the server's next commit would copy them all at once, its requests waiting.
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return self._reclaim(purge.removed)
