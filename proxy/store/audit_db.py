"""The database as the audit commands and the viewer see it: reads on a plain synchronous
connection, and the erase commands in transactions of their own (AuditStore in protocol.py).

The CLI may read while a server writes (WAL lets both run). Lists are bounded
by a limit; exports stream one thread at a time from a cursor, and stats are
aggregated inside SQLite (audit_stats.py), so a big database is never loaded whole.

Deleted nodes (tombstones: status 'deleted', no content) are left out of
threads, search and stats' content figures; show, tree and export keep them,
marked, so that the shape of a thread stays visible.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import audit_stats
from .erase import Purge, erase_interactions, erase_thread, merge_search_index_step, purge_before, reclaim_space
from .recordings import Row, insert_recordings, select_recordings
from .records import (
    HIT_END,
    HIT_START,
    STATS_KEYS,
    Exchange,
    IdNotFound,
    Node,
    Removed,
    SearchHit,
    Served,
    StatsRow,
    StoreError,
    StreamEvent,
    ThreadKey,
    ThreadSummary,
    WalBusy,
)
from .rows import EXCHANGE_COLUMNS, INTERACTION_COLUMNS, exchange_from_row, interaction_from_row, qualified
from .sqlite import open_private, open_sync

T = TypeVar("T")

_NODE_COLUMNS = qualified(INTERACTION_COLUMNS, "i") + ", i.depth, i.deleted_at"

# The nodes an export takes: a time window and one thread, each optional.
_EXPORT_WINDOW = (
    "(:since IS NULL OR created_at >= :since) AND (:until IS NULL OR created_at < :until)"
    " AND (:thread IS NULL OR root_id = :thread)"
)


def _node(row: tuple[Any, ...]) -> Node:
    return Node(interaction_from_row(row[:-2]), depth=row[-2], deleted_at=row[-1])


def _split(listed: str | None) -> list[str]:
    return listed.split(",") if listed else []


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
        only: str = found[0]
        return only
    raise IdNotFound(given, found)


class AuditDB:
    """The database as the audit commands see it."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = False) -> AuditDB:
        """Open an existing database (FileNotFoundError otherwise) or, with `create`, a new one
        private to its owner; migrated to this version. StoreError if it is not a recall database."""
        if create:
            open_private(path)
        try:
            return cls(open_sync(path), path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a recall database: {exc}") from None

    @property
    def location(self) -> str:
        """The file's path, for messages."""
        return str(self.path)

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

    def stream_events(self, interaction_id: str, after_seq: int = 0, limit: int | None = None) -> list[StreamEvent]:
        """The events a streamed turn sent after `after_seq`, in order (none for a turn that was not
        streamed); at most `limit` of them."""
        rows = self.db.execute(
            "SELECT seq, event_id, at_ms, frame FROM stream_events WHERE interaction_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (interaction_id, after_seq, -1 if limit is None else limit),
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
        counted: int = self.db.execute(f"SELECT count(*) FROM interactions WHERE {_EXPORT_WINDOW}", window).fetchone()[0]
        return counted

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
        """Requests, errors and p50 latency per --by group (audit_stats.stats)."""
        return audit_stats.stats(self.db, by=by, since=since, until=until)

    def token_usage(self, *, by: tuple[str, ...], since: float | None = None,
                    until: float | None = None) -> list[tuple[dict[str, str | None], str | None, int, int]]:
        """Tokens in and out per --by group and model, for pricing (audit_stats.token_usage)."""
        return audit_stats.token_usage(self.db, by=by, since=since, until=until)

    # -- cassettes --------------------------------------------------------------

    def export_recordings(self, *, thread: str | None = None, since: float | None = None,
                          upstream: str | None = None, skip_owner: str | None = None) -> Iterator[tuple[str, Row]]:
        """The recordings a cassette takes, streamed (recordings.select_recordings)."""
        return select_recordings(self.db, thread=thread, since=since, upstream=upstream, skip_owner=skip_owner)

    def load_recordings(self, rows: list[tuple[str, Row]], owner: str) -> dict[str, int]:
        """Load rows under `owner` in one transaction (recordings.insert_recordings says how);
        StoreError, and nothing loaded, if the database refuses any of it."""
        try:
            return self._in_transaction(lambda db: insert_recordings(db, rows, owner))
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from None

    def _in_transaction(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """`op` in one write transaction: committed if it returns, rolled back if it raises."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            done = op(self.db)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return done

    # -- erasing ----------------------------------------------------------------

    def bytes_on_disk(self) -> int:
        """The database file and its WAL."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def _erase(self, op: Callable[[sqlite3.Connection], Removed], *, dry_run: bool = False) -> Removed:
        if not dry_run:
            return self._reclaim(self._in_transaction(op))
        self.db.execute("BEGIN IMMEDIATE")
        try:
            return op(self.db)
        finally:
            self.db.execute("ROLLBACK")

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
            more = self._in_transaction(purge.step)
            # Each step's pages copied into the database now, by this process: left in the
            # WAL, the server's next commit would copy them all at once, its requests waiting.
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return self._reclaim(purge.removed)


if TYPE_CHECKING:
    from .protocol import AuditStore

    # mypy holds AuditDB to the protocol here (tests/test_store_boundary.py checks the signatures at run time).
    _auditdb_is_a_auditstore: type[AuditStore] = AuditDB
