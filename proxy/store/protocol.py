"""What recall asks of its storage: `Store` (the server's, async) and `AuditStore` (the
command line's and the viewer's, synchronous).

Everything outside proxy/store/ speaks these two interfaces and the records of
proxy/store/records.py; every SQL statement lives under proxy/store/. SQLite is
the first implementation (`SQLiteStore` in sqlite.py, `AuditDB` in audit_db.py);
PostgreSQL the second (`PgAudit` in pg_audit.py), so nothing here names a driver's type.

How each side is reached:
- `Store`: `SQLiteStore.open(path)` when the server starts; the pipeline,
  endpoints, replay cache, cassette loading and retention take it as a `Store`.
- `AuditStore`: `locations.open_audit(location)` for the audit, cassette and db commands
  (`recall ls/show/rm…`, `recall cassette`, `recall db`): `AuditDB` on a SQLite file, which
  may run while a server writes to the same file, or `PgAudit` (pg_audit.py) on a
  postgresql:// URL; the pytest plugin's cassette writing opens `AuditDB` itself. The
  viewer runs the same reads off the event loop: `readers.Readers.open(location).run(fn)`
  calls `fn(AuditStore)` on a reader's own thread.
- `Store` on PostgreSQL: `PostgresStore.open(url)` (postgres.py); backend.open_store picks
  one of the two from the database's location.
- SQLite only, as functions of its modules: the start-up checks (preflight.check_database)
  and replay mode's copy of a file (sqlite.copy_database).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..model import Interaction
from .recordings import Row
from .records import (
    STATS_KEYS,
    Conversation,
    Exchange,
    Node,
    Removed,
    SearchHit,
    Served,
    StatsRow,
    StreamEvent,
    ThreadKey,
    ThreadSummary,
)

# One recorded stream event: (seq, event id, ms since the stream began, the frame's bytes).
Frame = tuple[int, str | None, float, bytes]


@runtime_checkable
class Store(Protocol):
    """The server's store: turns committed on the request's path, read back by id, chain or key.

    Writes are ordered (a delete queued after a write wins over it) and a write that the
    database cannot take now raises writer.StoreUnavailable. A delete always wins: nothing
    is written for, or attached to, a node once it is erased.
    """

    @property
    def location(self) -> str | Path:
        """Where the data lives, for the viewer's readers and messages: the SQLite file's Path,
        or a PostgreSQL database's URL (a str, its password masked)."""
        ...

    async def close(self) -> None:
        """Commit what is queued, stop the background work, close the connections."""
        ...

    # -- turns ------------------------------------------------------------------

    async def save_interaction(self, it: Interaction, exchange: Exchange | None = None,
                               frames: list[Frame] | None = None) -> bool:
        """Commit a turn: insert or replace its node (with its exchange and the last of its
        stream's events, `frames`) and index its text. A node's end and its last events commit
        together: whoever reads the ended node, on any instance, finds its whole stream.
        An in-progress node is claimed by this process (a run lease) until it ends.
        False, and nothing written, if the node was erased meanwhile."""
        ...

    async def record_exchange(self, exchange: Exchange) -> None:
        """Record an HTTP exchange on its own, unless its node was erased."""
        ...

    async def discard_unstarted(self, interaction_id: str) -> None:
        """Remove an in-progress node whose turn never started (its id never reached the app)."""
        ...

    async def fail_unsaved(self, interaction_id: str, reason: str) -> None:
        """Mark an in-progress node failed with `reason`, now or as soon as the database takes it."""
        ...

    def append_frames(self, interaction_id: str, frames: list[Frame]) -> asyncio.Future[None]:
        """Queue a streamed turn's events; not awaited by the stream, the future resolves on commit."""
        ...

    async def get_interaction(self, interaction_id: str) -> Interaction | None:
        """A live (not erased) node by id."""
        ...

    async def get_interaction_by_run(self, run_id: str) -> Interaction | None:
        """A live node by the run id its front API names it by (Parallel's `run_id`)."""
        ...

    async def chain(self, interaction_id: str) -> list[Interaction]:
        """Load a chain: the conversation from its root to this node, oldest first, erased nodes skipped."""
        ...

    async def stream_frames(self, interaction_id: str, after_seq: int = 0,
                            limit: int | None = None) -> list[tuple[int, bytes]]:
        """A streamed turn's events after `after_seq`, in order: (seq, frame), to resume a stream
        or read a long reply back; at most `limit` of them (a page), or all."""
        ...

    async def event_seq(self, interaction_id: str, event_id: str) -> int | None:
        """The seq of the event a client last saw (its Last-Event-ID)."""
        ...

    # -- runs held by other instances (several recall instances on one database) -------

    async def running_elsewhere(self, interaction_id: str) -> bool:
        """Whether this in-progress node is run by another instance whose lease is current:
        its events and end arrive through the database, to be polled."""
        ...

    async def request_cancel(self, interaction_id: str) -> bool:
        """Ask the instance that runs this node (another one, with a current lease) to cancel it;
        whether there was one to ask. It stops the run and records it, as a local cancel does."""
        ...

    def watch_cancels(self, cancel: Callable[[str], Awaitable[object]]) -> None:
        """`cancel(interaction_id)` is called when another instance asks this one to cancel a run."""
        ...

    # -- erasing ----------------------------------------------------------------

    async def delete_interaction(self, interaction_id: str) -> bool:
        """Erase a node's content, exchanges and events; it stays as a tombstone under its children.
        Whether a live node was erased."""
        ...

    async def purge_older_than(self, cutoff: float) -> Removed:
        """Erase everything recorded before `cutoff` (epoch seconds) and free the space (retention)."""
        ...

    # -- replay -----------------------------------------------------------------

    async def recordings(self, cache_key: str) -> list[Exchange]:
        """The recorded answers to requests with this replay key, oldest first: the next replay is
        the n-th of them for the n-th identical request."""
        ...

    async def next_replay(self, cache_key: str) -> int:
        """How many identical requests (this key) the replay session served before this one: the
        n-th gets recordings(key)[n]. Shared by every instance of the session on a shared database."""
        ...

    async def recent_requests(self, upstream: str, limit: int) -> list[Exchange]:
        """The newest recorded requests to an upstream, to name the nearest one on a replay miss."""
        ...

    async def stream_frames_timed(self, interaction_id: str) -> list[tuple[float, bytes]]:
        """A recording's events with their timing (ms since the stream began), to replay them."""
        ...

    async def load_recordings(self, rows: list[tuple[str, Row]], owner: str) -> dict[str, int]:
        """Load a cassette's rows (recordings.py) under `owner` in one commit, replacing what an
        earlier load of the same requests left; how many of each kind."""
        ...

    # -- OpenAI conversations ---------------------------------------------------

    async def create_conversation(self, conversation: Conversation, items: list[tuple[str, Any]]) -> None:
        """A conversation and its first items (item id, item JSON), in one commit."""
        ...

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def update_conversation(self, conversation_id: str, metadata: dict[str, Any]) -> None: ...

    async def delete_conversation(self, conversation_id: str) -> None:
        """Erase a conversation, its items and the calls recorded on it."""
        ...

    async def append_conversation_items(self, conversation_id: str, items: list[tuple[str, Any]]) -> None:
        """Items after the last; none if the conversation was deleted meanwhile."""
        ...

    async def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        """A conversation's items, oldest first."""
        ...

    async def delete_conversation_item(self, conversation_id: str, item_id: str) -> bool: ...


@runtime_checkable
class AuditStore(Protocol):
    """The database as the audit commands and the viewer read it, and the erase commands.

    Tombstones (erased nodes) are left out of threads, search and stats' content
    figures; node, chain, thread and export keep them, marked."""

    @property
    def location(self) -> str:
        """Where the data lives, for messages: the SQLite file's path, or the PostgreSQL URL
        with its password hidden."""
        ...

    def close(self) -> None: ...

    # -- threads and nodes --------------------------------------------------------

    def complete_id(self, given: str) -> str:
        """The interaction id that is `given` or the only one starting with it (records.IdNotFound otherwise)."""
        ...

    def last_id(self) -> str | None:
        """The newest interaction that still has its content."""
        ...

    def threads(self, *, upstream: str | None = None, model: str | None = None, since: float | None = None,
                until: float | None = None, limit: int = 50, after: ThreadKey | None = None,
                status: str | None = None) -> list[ThreadSummary]:
        """Conversations newest first by last activity; `after` continues from a page's last thread."""
        ...

    def node(self, interaction_id: str) -> Node | None:
        """A node by id, tombstones included."""
        ...

    def chain(self, interaction_id: str) -> list[Node]:
        """The thread from its root down to this node, tombstones included."""
        ...

    def thread(self, thread_id: str) -> list[Node]:
        """Every node of a thread (root id), parents before children."""
        ...

    def exchanges(self, interaction_id: str) -> list[Exchange]: ...

    def served(self, thread_id: str) -> dict[str, Served]:
        """For each node of a thread, how its call was answered."""
        ...

    def stream_events(self, interaction_id: str, after_seq: int = 0, limit: int | None = None) -> list[StreamEvent]:
        """A streamed turn's events after `after_seq`, in order; at most `limit` of them (a page), or all."""
        ...

    def search(self, query: str, *, limit: int = 20, offset: int = 0, since: float | None = None,
               until: float | None = None, upstream: str | None = None) -> list[SearchHit]:
        """Best matches first; `query` in FTS5 syntax (search.fts_query), ValueError if it cannot be read."""
        ...

    # -- export and stats -------------------------------------------------------------

    def count(self, *, since: float | None = None, until: float | None = None, thread: str | None = None) -> int:
        """How many nodes export_rows will yield."""
        ...

    def export_rows(self, *, since: float | None = None, until: float | None = None,
                    thread: str | None = None) -> Iterator[Node]:
        """Nodes thread by thread, parents before children, streamed."""
        ...

    def stats(self, *, by: tuple[str, ...] = STATS_KEYS, since: float | None = None,
              until: float | None = None) -> list[StatsRow]: ...

    def token_usage(self, *, by: tuple[str, ...], since: float | None = None,
                    until: float | None = None) -> list[tuple[dict[str, str | None], str | None, int, int]]:
        """Tokens in and out per --by group and model, for pricing."""
        ...

    # -- cassettes ----------------------------------------------------------------------

    def export_recordings(self, *, thread: str | None = None, since: float | None = None,
                          upstream: str | None = None, skip_owner: str | None = None) -> Iterator[tuple[str, Row]]:
        """The recordings a cassette takes, as rows (recordings.py), streamed: the live interactions
        selected, then the exchanges recorded for them (replay hits left out), then their stream
        events. `thread` is any interaction id of the thread wanted (LookupError, at once, if there
        is none); rows of `skip_owner` are left out."""
        ...

    def load_recordings(self, rows: list[tuple[str, Row]], owner: str) -> dict[str, int]:
        """Load a cassette's rows under `owner` in one transaction, replacing what an earlier load of
        the same requests left; how many of each kind. If the database refuses any of it, nothing is
        loaded (records.StoreError)."""
        ...

    # -- erasing ------------------------------------------------------------------------

    def bytes_on_disk(self) -> int: ...

    def purge_preview(self, cutoff: float) -> list[tuple[str, int, bool, str | None]]:
        """The threads a purge at `cutoff` would touch: (thread id, interactions erased, thread gone, title)."""
        ...

    def rm(self, interaction_id: str) -> Removed:
        """Erase one node; its children keep their place under its tombstone."""
        ...

    def rm_thread(self, thread_id: str) -> Removed: ...

    def purge(self, cutoff: float, *, dry_run: bool = False) -> Removed:
        """Erase everything recorded before `cutoff` in short steps; `dry_run` counts and keeps it all.
        The erases raise records.WalBusy when committed but the space could not be fully reclaimed."""
        ...
