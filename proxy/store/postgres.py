"""The PostgreSQL store (the Store protocol on a database several recall instances share).

Every operation is a short transaction on a connection of an asyncpg pool, committed
before it returns: a node is in the database before its id leaves this instance, so any
instance can continue it (read-your-writes). The statements are in pg_writes.py (writes),
pg_recordings.py (cassettes) and here (reads); the rules are SQLite's (sqlite.py):

- A delete always wins: writes lock the node's row and skip a tombstone (pg_writes.py).
- In-progress nodes carry `run_owner` (this instance) and `lease_until` (the database's
  clock), renewed on a heartbeat; an instance fails the runs of instances whose lease ran
  out, claiming them with FOR UPDATE SKIP LOCKED so that two never fail the same run twice.
- A cancel asked of a run another instance holds sets `cancel_requested` and NOTIFYs that
  instance, which stops the run (the heartbeat also looks at the flag: a notification sent
  while its listener reconnected is not lost).
- Chains are cached per instance (chain_cache.py) and dropped on every erase anywhere
  (pg_listen.py).
- The n-th identical request of a replay session gets the n-th recording across instances:
  `replay_positions` counts per session and key.
- While the database is away every operation raises StoreUnavailable (a 503 with
  Retry-After, before any provider call); the pool reconnects once it is back.

`read_only` (replay mode): recordings are served from the team's database and nothing of it
changes: what replay would record (hit rows, nodes of turns it cannot answer) is not written,
erases are not done, and cassettes cannot be loaded into it. Only the replay positions are
written (they are no recordings).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..model import FAILED, IN_PROGRESS, Interaction
from . import pg_erase, pg_writes, run_leases
from .chain_cache import RECENT_PER_THREAD, ChainCache, last_of_threads, warm
from .pg_connect import open_pool, redacted
from .pg_listen import Listener
from .pg_recordings import insert_recordings
from .pg_writes import CANCEL_CHANNEL, DB_NOW
from .recordings import Row
from .records import Conversation, Exchange, Removed, StoreError
from .rows import (
    EXCHANGE_COLUMNS,
    INTERACTION_COLUMNS,
    chain_query,
    exchange_from_row,
    interaction_from_row,
    recent_nodes_query,
)
from .writer import StoreUnavailable

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("recall")

T = TypeVar("T")

# How long a request waits for a pooled connection, and for one statement, before the
# database counts as away (a 503): a server that stopped answering must not hold requests.
ACQUIRE_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0
# Transactions that lost a race to another instance's (serialization failure, deadlock) are run again.
_RETRIES = 3

_INTERRUPTED = "recall stopped while this interaction was in progress"
_LIVE_LEASE = f"status = '{IN_PROGRESS}' AND run_owner IS DISTINCT FROM $2 AND lease_until >= {DB_NOW}"


def _unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The database's trouble (away, restarting, out of room or connections) as StoreUnavailable;
    None for anything else (a bug, a constraint): that is raised as it is."""
    import asyncpg

    if isinstance(exc, (OSError, TimeoutError)):
        return StoreUnavailable(f"PostgreSQL cannot be reached ({exc or type(exc).__name__})")
    if isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
                        asyncpg.exceptions.OperatorInterventionError, asyncpg.InsufficientResourcesError,
                        asyncpg.ReadOnlySQLTransactionError, asyncpg.exceptions.InternalClientError)):
        return StoreUnavailable(f"PostgreSQL is unavailable ({exc})")
    return None


# A replay key's recordings (replay hits left out): the condition of the partial index
# exchanges_recordings (pg_migrations m003), repeated whole so the planner proves it covers it.
RECORDINGS_OF_KEY = "cache_key = $1 AND stored AND status IS NOT NULL AND (cache IS NULL OR cache != 'hit')"
_CHAIN = chain_query("$1")
# How long the start's warm waits for the listener before it lets the cache fill on demand.
_WARM_WAITS_FOR_LISTENER_S = 10.0
_RECENT_NODES = recent_nodes_query("$1", "$2")

class PostgresStore:
    """The Store (proxy/store/protocol.py) on a PostgreSQL database."""

    def __init__(self, url: str, pool: asyncpg.Pool, *, read_only: bool = False,
                 replay_session: str | None = None) -> None:
        self.url = url
        self._pool = pool
        self.read_only = read_only
        self._chains = ChainCache()
        self._version = 0  # bumped on every erase heard: cached chains of an older version are stale
        self.instance = run_leases.new_instance()
        # Named by the instances that share a replay session; else this start's own.
        self.replay_session = replay_session or self.instance
        self._unsaved: dict[str, str] = {}
        self._cancel: Callable[[str], Awaitable[object]] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._listener = Listener(self._listen_connection, self._drop_chains, self._heard_cancel)
        # The start's warming of the chain cache (open's warm_chains), while it runs and after.
        self.warming: asyncio.Task[None] | None = None

    @property
    def location(self) -> str:
        """The database's URL, its password masked."""
        return redacted(self.url)

    @classmethod
    async def open(cls, url: str, *, read_only: bool = False, replay_session: str | None = None,
                   warm_chains: int = 0) -> PostgresStore:
        """Connect (and migrate) or raise StoreError with one line saying why not. `warm_chains`: how
        many recently active threads' chains are read into the chain cache in the background (0: none)."""
        pool = await open_pool(url, command_timeout=COMMAND_TIMEOUT_S)
        store = cls(url, pool, read_only=read_only, replay_session=replay_session)
        try:
            if not read_only:
                await store._fail_interrupted()
        except StoreUnavailable as trouble:
            await pool.close()
            raise StoreError(f"PostgreSQL at {store.location}: {trouble.cause}") from None
        store._background = [asyncio.create_task(store._listener.run(), name="recall-pg-listener")]
        if not read_only:
            store._background.append(asyncio.create_task(store._keep_leases(), name="recall-run-leases"))
        if warm_chains > 0:
            store.warming = asyncio.create_task(store._warm_chains(warm_chains), name="recall-warm-chains")
            store._background.append(store.warming)
        return store

    async def _warm_chains(self, count: int) -> None:
        """The chains of the `count` most recently active threads, read into the chain cache one
        pooled connection at a time (the requests' reads take the others); best effort. Only once
        the listener hears erasures: it flushes the cache when it (re)connects, which would drop
        what was warmed before, and an erasure made before it listened would go unheard."""
        try:
            await asyncio.wait_for(self._listener.connected.wait(), _WARM_WAITS_FOR_LISTENER_S)
        except TimeoutError:
            log.debug("chains not warmed: the PostgreSQL listener did not connect")
            return
        try:
            recent = await self._fetch(_RECENT_NODES, IN_PROGRESS, count * RECENT_PER_THREAD)

            async def read(leaf: str) -> tuple[int, list[Any]]:
                version = self._version
                return version, await self._fetch(_CHAIN, leaf)

            warmed = await warm(self._chains, last_of_threads(recent, count), read)
            log.debug("warmed the chains of %d recently active threads", warmed)
        except StoreUnavailable as trouble:
            log.debug("chains not warmed: %s", trouble.cause)

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        try:
            await asyncio.wait_for(self._pool.close(), COMMAND_TIMEOUT_S)
        except TimeoutError:
            self._pool.terminate()

    # -- running statements -----------------------------------------------------

    async def _run(self, work: Callable[[asyncpg.Connection], Awaitable[T]], *, transaction: bool = True) -> T:
        """`work` on a pooled connection, in a transaction of its own; the database's trouble
        as StoreUnavailable, a lost race with another instance run again."""
        import asyncpg

        for attempt in range(_RETRIES):
            try:
                async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as db:
                    if not transaction:
                        return await work(db)
                    async with db.transaction():
                        return await work(db)
            except asyncpg.TransactionRollbackError:
                if attempt == _RETRIES - 1:
                    raise
            except Exception as exc:
                trouble = _unavailable(exc)
                if trouble is None:
                    raise
                raise trouble from None
        raise AssertionError("unreachable: the last attempt raises")

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        return await self._run(lambda db: db.fetch(sql, *params), transaction=False)

    # -- leases and cancels -------------------------------------------------------

    async def _fail_interrupted(self) -> None:
        """Fail the runs of instances that are gone: their lease ran out, or they were processes
        of this machine that have ended. Claimed with SKIP LOCKED: a run being written right now
        is looked at on a later beat."""
        here = socket.gethostname() + ":"

        async def fail(db: asyncpg.Connection) -> None:
            owners = await db.fetch(
                f"SELECT DISTINCT run_owner FROM interactions WHERE status = '{IN_PROGRESS}' AND run_owner LIKE $1",
                here + "%")
            gone = [row[0] for row in owners if row[0] != self.instance and run_leases.ended_here(row[0])]
            await db.execute(
                f"UPDATE interactions SET status = '{FAILED}', error = $1, updated_at = $2, run_owner = NULL,"
                " lease_until = NULL, cancel_requested = false WHERE id IN (SELECT id FROM interactions"
                f" WHERE status = '{IN_PROGRESS}' AND run_owner IS DISTINCT FROM $3 AND (lease_until IS NULL"
                f" OR lease_until < {DB_NOW} OR run_owner = ANY($4::text[])) FOR UPDATE SKIP LOCKED)",
                _INTERRUPTED, time.time(), self.instance, gone)

        await self._run(fail)

    async def _keep_leases(self) -> None:
        """Renew this instance's leases, act on cancels asked meanwhile, fail the runs of instances that died."""
        while True:
            await asyncio.sleep(run_leases.HEARTBEAT_S)
            try:
                await self._fail_unsaved()
                asked = await self._run(self._renew)
                for interaction_id in asked:
                    self._cancel_here(interaction_id)
                await self._fail_interrupted()
            except StoreUnavailable:
                continue  # the next beat tries again; a lease is three beats long
            except Exception:
                log.exception("the run-lease heartbeat failed; trying again on the next beat")

    async def _renew(self, db: asyncpg.Connection) -> list[str]:
        await db.execute(f"UPDATE interactions SET lease_until = {DB_NOW} + $2 WHERE run_owner = $1"
                         f" AND status = '{IN_PROGRESS}'", self.instance, run_leases.RUN_LEASE_S)
        rows = await db.fetch(f"SELECT id FROM interactions WHERE run_owner = $1 AND status = '{IN_PROGRESS}'"
                              " AND cancel_requested", self.instance)
        return [row[0] for row in rows]

    async def fail_unsaved(self, interaction_id: str, reason: str) -> None:
        """A turn whose end the database refused: failed with `reason` now if it takes that
        write, else on a later beat (its lease is no longer renewed meanwhile)."""
        self._unsaved[interaction_id] = reason
        try:
            await self._fail_unsaved()
        except StoreUnavailable:
            pass

    async def _fail_unsaved(self) -> None:
        if not self._unsaved or self.read_only:
            self._unsaved.clear()
            return
        failing = dict(self._unsaved)
        await self._run(lambda db: db.executemany(
            f"UPDATE interactions SET status = '{FAILED}', error = $2, updated_at = $3, run_owner = NULL,"
            f" lease_until = NULL WHERE id = $1 AND status = '{IN_PROGRESS}'",
            [(interaction_id, why, time.time()) for interaction_id, why in failing.items()]))
        for interaction_id in failing:
            self._unsaved.pop(interaction_id, None)

    def watch_cancels(self, cancel: Callable[[str], Awaitable[object]]) -> None:
        self._cancel = cancel

    async def running_elsewhere(self, interaction_id: str) -> bool:
        rows = await self._fetch(f"SELECT 1 FROM interactions WHERE id = $1 AND {_LIVE_LEASE}",
                                 interaction_id, self.instance)
        return bool(rows)

    async def request_cancel(self, interaction_id: str) -> bool:
        async def ask(db: asyncpg.Connection) -> bool:
            owner = await db.fetchval(
                f"UPDATE interactions SET cancel_requested = true WHERE id = $1 AND {_LIVE_LEASE} RETURNING run_owner",
                interaction_id, self.instance)
            if owner is None:
                return False
            await db.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL,
                             orjson.dumps({"id": interaction_id, "owner": owner}).decode())
            return True

        return await self._run(ask)

    def _heard_cancel(self, payload: str) -> None:
        try:
            asked = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if isinstance(asked, dict) and asked.get("owner") == self.instance and isinstance(asked.get("id"), str):
            self._cancel_here(asked["id"])

    def _cancel_here(self, interaction_id: str) -> None:
        if self._cancel is not None:
            self._track(self._cancel(interaction_id))

    def _track(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    def _drop_chains(self) -> None:
        self._chains.clear()
        self._version += 1

    async def _listen_connection(self) -> asyncpg.Connection:
        import asyncpg

        from .pg_connect import connect_options

        dsn, options = connect_options(self.url)
        return await asyncpg.connect(dsn, timeout=ACQUIRE_TIMEOUT_S, **options)

    # -- writes ---------------------------------------------------------------------

    async def save_interaction(self, it: Interaction, exchange: Exchange | None = None,
                               frames: list[tuple[int, str | None, float, bytes]] | None = None) -> bool:
        """Upsert a node (with its exchange) in one transaction; False, and nothing written, if
        the node was erased meanwhile (on any instance)."""
        if self.read_only:
            return True

        async def save(db: asyncpg.Connection) -> bool:
            root = await pg_writes.save_node(db, it, self.instance, run_leases.RUN_LEASE_S)
            if root is None:
                return False
            it.root_id = root
            if exchange is not None:
                exchange.interaction_id = it.id
                await pg_writes.insert_exchange(db, exchange)
            if frames:
                await pg_writes.insert_frames(db, it.id, frames)
            return True

        version = self._version
        saved = await self._run(save)
        if saved and it.status != IN_PROGRESS:
            # The next turn most likely continues this one: its chain is its parent's plus itself.
            self._chains.extend(it, version)
        return saved

    async def record_exchange(self, exchange: Exchange) -> None:
        """Record an exchange, unless the node it belongs to was erased (a delete always wins)."""
        if self.read_only:
            return

        async def record(db: asyncpg.Connection) -> None:
            if exchange.interaction_id is None or await pg_writes.lock_live(db, exchange.interaction_id):
                await pg_writes.insert_exchange(db, exchange)

        await self._run(record)

    async def discard_unstarted(self, interaction_id: str) -> None:
        if not self.read_only:
            await self._run(lambda db: db.execute(
                f"DELETE FROM interactions WHERE id = $1 AND status = '{IN_PROGRESS}'", interaction_id))

    def append_frames(self, interaction_id: str, frames: list[tuple[int, str | None, float, bytes]]) -> asyncio.Future[None]:
        """Write stream events behind the stream (not awaited by it); the future resolves on commit."""

        async def write() -> None:
            if self.read_only or not frames:
                return

            async def insert(db: asyncpg.Connection) -> None:
                if await pg_writes.lock_live(db, interaction_id):  # deleted while it streamed: not kept
                    await pg_writes.insert_frames(db, interaction_id, frames)

            await self._run(insert)

        return self._track(write())

    async def delete_interaction(self, interaction_id: str) -> bool:
        """Tombstone a node and delete its exchanges and events; every instance drops its cached chains."""
        if self.read_only:
            return False
        removed = await self._run(lambda db: pg_erase.erase_interactions(db, [interaction_id]))
        self._drop_chains()
        return removed.interactions > 0

    async def purge_older_than(self, cutoff: float) -> Removed:
        """Erase everything recorded before `cutoff`, a short transaction per batch."""
        purge = pg_erase.Purge(cutoff)
        if self.read_only:
            return purge.removed
        while await self._run(purge.step):
            self._drop_chains()
        self._drop_chains()
        return purge.removed

    async def load_recordings(self, rows: list[tuple[str, Row]], owner: str) -> dict[str, int]:
        if self.read_only:
            raise StoreError(f"replay mode does not write to PostgreSQL at {self.location}: load the cassette"
                             " with `recall cassette load`, or replay it without a postgresql:// database")
        counts: dict[str, int] = await self._run(lambda db: insert_recordings(db, rows, owner))
        return counts

    # -- reads ----------------------------------------------------------------------

    async def get_interaction(self, interaction_id: str) -> Interaction | None:
        rows = await self._fetch(f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE id = $1"
                                 " AND deleted_at IS NULL", interaction_id)
        return interaction_from_row(rows[0]) if rows else None

    async def get_interaction_by_run(self, run_id: str) -> Interaction | None:
        rows = await self._fetch(f"SELECT {INTERACTION_COLUMNS} FROM interactions WHERE run_id = $1"
                                 " AND deleted_at IS NULL", run_id)
        return interaction_from_row(rows[0]) if rows else None

    async def chain(self, interaction_id: str) -> list[Interaction]:
        """The conversation from its root to this node, oldest first, erased nodes skipped:
        from the cache, else one recursive query."""
        version = self._version
        cached = self._chains.get(interaction_id, version)
        if cached is not None:
            # Another instance's erasure reaches this cache by NOTIFY, a moment later; the node
            # named is checked now, so that continuing an id deleted elsewhere is refused at once.
            if await self._fetch("SELECT 1 FROM interactions WHERE id = $1 AND deleted_at IS NULL", interaction_id):
                return cached
            return [node for node in cached if node.id != interaction_id]
        rows = await self._fetch(_CHAIN, interaction_id)
        chain = [interaction_from_row(row) for row in rows]
        if chain and chain[-1].id == interaction_id:
            self._chains.put(interaction_id, version, chain)
        return list(chain)

    async def stream_frames(self, interaction_id: str, after_seq: int = 0,
                            limit: int | None = None) -> list[tuple[int, bytes]]:
        # LIMIT NULL is no limit.
        rows = await self._fetch("SELECT seq, frame FROM stream_events WHERE interaction_id = $1 AND seq > $2"
                                 " ORDER BY seq LIMIT $3", interaction_id, after_seq, limit)
        return [(row[0], row[1]) for row in rows]

    async def event_seq(self, interaction_id: str, event_id: str) -> int | None:
        rows = await self._fetch("SELECT seq FROM stream_events WHERE interaction_id = $1 AND event_id = $2",
                                 interaction_id, event_id)
        return int(rows[0][0]) if rows else None

    async def stream_frames_timed(self, interaction_id: str) -> list[tuple[float, bytes]]:
        rows = await self._fetch("SELECT at_ms, frame FROM stream_events WHERE interaction_id = $1 ORDER BY seq",
                                 interaction_id)
        return [(row[0], row[1]) for row in rows]

    # -- replay -----------------------------------------------------------------------

    async def recordings(self, cache_key: str) -> list[Exchange]:
        return await self._exchanges(f"{RECORDINGS_OF_KEY} ORDER BY id", cache_key)

    async def recent_requests(self, upstream: str, limit: int) -> list[Exchange]:
        return await self._exchanges("upstream = $1 AND stored AND cache_key IS NOT NULL ORDER BY id DESC LIMIT $2",
                                     upstream, limit)

    async def _exchanges(self, where: str, *params: Any) -> list[Exchange]:
        rows = await self._fetch(f"SELECT {EXCHANGE_COLUMNS} FROM exchanges WHERE {where}", *params)
        return [exchange_from_row(row) for row in rows]

    async def next_replay(self, cache_key: str) -> int:
        """How many identical requests this replay session served before this one, counted in the
        database so that every instance of the session shares the count."""
        served: int = await self._run(lambda db: db.fetchval(
            "INSERT INTO replay_positions (session, cache_key, served) VALUES ($1, $2, 1)"
            " ON CONFLICT (session, cache_key) DO UPDATE SET served = replay_positions.served + 1"
            " RETURNING served - 1", self.replay_session, cache_key), transaction=False)
        return served

    # -- conversations (OpenAI Conversations API) ------------------------------------

    async def create_conversation(self, conversation: Conversation, items: list[tuple[str, Any]]) -> None:
        if not self.read_only:
            await self._run(lambda db: pg_writes.insert_conversation(db, conversation, items))

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        rows = await self._fetch(pg_writes.SELECT_CONVERSATION, conversation_id)
        if not rows:
            return None
        row = rows[0]
        return Conversation(id=row[0], owner=row[1], upstream=row[2], created=row[4],
                            metadata=orjson.loads(row[3]) if row[3] else {})

    async def update_conversation(self, conversation_id: str, metadata: dict[str, Any]) -> None:
        if not self.read_only:
            await self._run(lambda db: db.execute(
                "UPDATE openai_conversations SET metadata = $2, updated_at = $3 WHERE id = $1",
                conversation_id, orjson.dumps(metadata).decode(), time.time()))

    async def delete_conversation(self, conversation_id: str) -> None:
        if not self.read_only:
            await self._run(lambda db: pg_writes.delete_conversation(db, conversation_id))

    async def append_conversation_items(self, conversation_id: str, items: list[tuple[str, Any]]) -> None:
        if not self.read_only:
            await self._run(lambda db: pg_writes.append_items(db, conversation_id, items, time.time()))

    async def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch(pg_writes.SELECT_ITEMS, conversation_id)
        return [orjson.loads(row[0]) for row in rows]

    async def delete_conversation_item(self, conversation_id: str, item_id: str) -> bool:
        if self.read_only:
            return False
        return await self._run(lambda db: pg_writes.delete_item(db, conversation_id, item_id))


if TYPE_CHECKING:
    from .protocol import Store

    # mypy holds PostgresStore to the protocol here (tests/test_store_boundary.py checks the signatures at run time).
    _postgresstore_is_a_store: type[Store] = PostgresStore
