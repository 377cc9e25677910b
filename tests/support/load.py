"""Many conversations at once through recall, with an async HTTP client (aiohttp).

A chain is one conversation: turn N says `chain C turn N` and names turn N-1 as
its previous id, so the fake provider can check that every turn arrived with
its whole history (brain.history_problem). The driver keeps, per chain, every
id the app was given, and verify() then checks them against the database file.
A turn of an asynchronous API (front_routes: result_path) is its create and
then the read of its result, or of its events when streamed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import aiohttp

from .front_routes import FrontRoute

MOUNT = "up"


@dataclass
class Chain:
    name: str
    key: str
    #: Ids of turns the app saw complete, in order: the conversation so far.
    done: list[str] = field(default_factory=list)
    #: Ids of turns the app saw created but not finished: a stream, or a run's read, broke off.
    unfinished: list[str] = field(default_factory=list)

    @property
    def turn(self) -> int:
        return len(self.done)


@dataclass
class Report:
    requests: int = 0
    completed: int = 0
    #: Answers that were not a whole, correct turn while recall was up: must stay empty.
    errors: list[str] = field(default_factory=list)
    #: Requests cut by a kill (connection refused or broken): expected only around a kill.
    cut: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def summary(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        p99 = quantiles(lat, n=100)[98] if len(lat) > 1 else lat[0]
        return (f"{self.requests} requests, {self.completed} turns completed, {len(self.errors)} errors,"
                f" {self.cut} cut by kills, {self.elapsed:.1f} s, {self.completed / max(self.elapsed, 1e-9):.0f} turns/s,"
                f" latency p50 {median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")


def new_chains(count: int, prefix: str = "c", keys: int = 4) -> list[Chain]:
    return [Chain(f"{prefix}{n}", f"load-key-{n % keys}") for n in range(count)]


def _text(chain: Chain, turn: int) -> str:
    return f"chain {chain.name} turn {turn}"


async def drive(session: aiohttp.ClientSession, base: str | list[str], route: FrontRoute, chains: list[Chain],
                turns: int, report: Report, *, stream_every: int = 0, stop: asyncio.Event | None = None) -> None:
    """Run every chain forward by up to `turns` turns, all chains at once. Given several recall
    instances (`base` a list), a client round-robins: each turn goes to another instance than its
    parent did, and an asynchronous turn's result or events are read from yet another."""
    started = time.perf_counter()
    await asyncio.gather(*(_drive_chain(session, base, route, chain, turns, report, stream_every, stop)
                           for chain in chains))
    report.elapsed += time.perf_counter() - started


async def _drive_chain(session: aiohttp.ClientSession, base: str | list[str], route: FrontRoute, chain: Chain,
                       turns: int, report: Report, stream_every: int, stop: asyncio.Event | None) -> None:
    bases = [base] if isinstance(base, str) else base
    for _ in range(turns):
        if stop is not None and stop.is_set():
            return
        turn = chain.turn + 1
        streamed = bool(stream_every) and turn % stream_every == 0 and route.streams
        report.requests += 1
        sent = time.perf_counter()
        turn_of = _Turn(session, f"{bases[turn % len(bases)]}/{MOUNT}", route, route.key_headers(chain.key),
                        f"{bases[(turn + 1) % len(bases)]}/{MOUNT}")
        try:
            status, received = await turn_of.take(_text(chain, turn), chain.done[-1] if chain.done else None,
                                                  streamed, report)
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            if seen := turn_of.seen_id():
                chain.unfinished.append(seen)
            if stop is not None and stop.is_set():
                report.cut += 1
                return
            report.errors.append(f"{chain.name} turn {turn}: {type(exc).__name__}: {exc}")
            return
        report.latencies.append(time.perf_counter() - sent)
        problem = _check(route, chain, turn, status, received, streamed)
        if problem:
            report.errors.append(problem)
            return
        report.completed += 1


class _Turn:
    """One turn over HTTP: a create, or a create and the read of its result or events."""

    def __init__(self, session: aiohttp.ClientSession, base: str, route: FrontRoute, headers: dict[str, str],
                 read_base: str | None = None) -> None:
        self.session, self.base, self.route, self.headers = session, base, route, headers
        self.read_base = read_base or base
        self.created: dict | None = None
        self.received = b""
        self.streamed = False

    async def _read(self, method: str, path: str, body: dict | None = None) -> int:
        self.received = b""
        base = self.base if method == "POST" else self.read_base
        async with self.session.request(method, base + path, json=body, headers=self.headers) as answer:
            async for chunk in answer.content.iter_any():
                self.received += chunk
            return answer.status

    async def take(self, text: str, previous: str | None, streamed: bool, report: Report) -> tuple[int, bytes]:
        route = self.route
        self.streamed = streamed
        inline = streamed and route.stream_fields is not None
        status = await self._read("POST", route.create_path,
                                  route.body(text, previous, **(route.stream_fields if inline else {})))
        if route.result_path is None or not 200 <= status < 300:
            return status, self.received
        self.created = json.loads(self.received)
        report.requests += 1
        path = route.events_path if streamed else route.result_path
        assert path is not None
        return await self._read("GET", path.format(id=route.item_id(self.created))), self.received

    def seen_id(self) -> str | None:
        """The id of a turn the app saw begin, if any."""
        if self.created is not None:
            return self.route.read_id(self.created)
        return self.route.stream_id(self.received) if self.streamed else None


def _check(route: FrontRoute, chain: Chain, turn: int, status: int, received: bytes, streamed: bool) -> str | None:
    """Record a finished turn, or say what was wrong with it."""
    where = f"{chain.name} turn {turn}"
    if status != 200:
        return f"{where}: {status} {received[:300]!r}"
    if streamed:
        interaction_id, error = route.stream_id(received), route.stream_error(received)
        if error or not interaction_id:
            return f"{where}: stream ended in {error!r}"
        text = route.stream_text(received)
    else:
        answer = json.loads(received)
        interaction_id, text = route.read_id(answer), route.reply_text(answer)
    if not text.startswith(f"[{turn} user messages]"):
        return f"{where}: the reply shows an incomplete history: {text[:120]!r}"
    chain.done.append(interaction_id)
    return None


Query = Callable[..., list[tuple[Any, ...]]]


def verify(db_path: Path, chains: list[Chain]) -> list[str]:
    """Every id an app saw complete is in the file, completed, holding its own turn,
    with exactly the chain's earlier turns as its ancestors. Returns what is wrong."""
    with sqlite3.connect(db_path) as db:
        return verify_with(lambda sql, *params: db.execute(sql, params).fetchall(), chains)


def verify_with(query: Query, chains: list[Chain]) -> list[str]:
    """verify's checks through `query(sql, *params)` (`?` markers): any backend's rows."""
    problems: list[str] = []
    for chain in chains:
        if not chain.done:
            continue
        rows = query(
            """WITH RECURSIVE up(id, parent_id, hop) AS (
                   SELECT id, parent_id, 0 FROM interactions WHERE id = ?
                   UNION ALL SELECT i.id, i.parent_id, up.hop + 1 FROM interactions i JOIN up ON i.id = up.parent_id)
               SELECT up.id, i.status, i.input, i.output FROM up JOIN interactions i ON i.id = up.id
               ORDER BY up.hop DESC""",
            chain.done[-1],
        )
        if [r[0] for r in rows] != chain.done:
            problems.append(f"{chain.name}: stored chain {[r[0] for r in rows]} != acknowledged {chain.done}")
            continue
        for turn, (interaction_id, status, input_, output) in enumerate(rows, start=1):
            if status != "completed" or f"chain {chain.name} turn {turn}" not in (input_ or "") \
                    or f"[{turn} user messages]" not in (output or ""):
                problems.append(f"{chain.name} turn {turn} ({interaction_id}): {status}, incomplete record")
        for interaction_id in chain.unfinished:
            found = query("SELECT status FROM interactions WHERE id = ?", interaction_id)
            if not found or found[0][0] not in ("completed", "failed"):
                problems.append(f"{chain.name}: streamed {interaction_id} is {found}")
    return problems
