"""Recently continued chains, kept in memory so a long conversation's next turn
does not rebuild its whole history from the database.

An app continues the node it just got, so the chain of a new node is its
parent's chain plus itself. Entries are valid for one `version` of the
database as other processes see it (`PRAGMA data_version` on the writer's
connection, which only other connections' commits change, e.g. `recall rm`);
erasures made by this process clear the cache outright. Entries share the
node objects, so an entry costs a list of pointers; the cache is bounded by
the number of node references it holds.

At start the cache is warmed (`warm`) with the chains of the most recently active
threads, in the background: the first turn after a start of a long chain would
otherwise rebuild it from the database on its path (issue 21).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ..model import IN_PROGRESS, Interaction
from .rows import content_bytes, interaction_from_row

log = logging.getLogger("recall")

_MAX_REFERENCES = 200_000
# How many threads' chains are warmed at start ([storage] warm_chains), and how many stored
# bytes of turns they may hold at most all together (the neutral objects take ~3x that).
WARM_CHAINS = 32
WARM_MAX_BYTES = 64 * 1024 * 1024
# The most recently updated nodes looked at per thread warmed: a thread's own other recent nodes come first.
RECENT_PER_THREAD = 8
# Rows decoded between two yields to the event loop while warming: a long chain's decode
# never holds a request up for more than about a millisecond at a time.
_DECODE_STEP = 128


class ChainCache:
    def __init__(self, max_references: int = _MAX_REFERENCES) -> None:
        self._entries: OrderedDict[str, tuple[int, list[Interaction]]] = OrderedDict()
        self._references = 0
        self._max = max_references
        # Counts the clears: a chain read before one (a warm's) may hold an erased node.
        self.generation = 0

    def get(self, node_id: str, version: int) -> list[Interaction] | None:
        entry = self._entries.get(node_id)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(node_id)
        return list(entry[1])

    def put(self, node_id: str, version: int, chain: list[Interaction]) -> None:
        # A chain whose last node still runs is not kept: the cache would go on answering
        # "in progress" after the turn ended (on another instance, nothing would replace it).
        if len(chain) > self._max or (chain and chain[-1].status == IN_PROGRESS):
            return
        old = self._entries.pop(node_id, None)
        if old is not None:
            self._references -= len(old[1])
        self._entries[node_id] = (version, chain)
        self._references += len(chain)
        while self._references > self._max:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._references -= len(evicted)

    def extend(self, node: Interaction, version: int) -> None:
        """Remember a new node's chain if its parent's is known: parent's chain plus the node."""
        if node.parent_id is None:
            self.put(node.id, version, [node])
            return
        parent = self._entries.get(node.parent_id)
        if parent is not None and parent[0] == version:
            self.put(node.id, version, [*parent[1], node])

    def offer(self, node_id: str, version: int, generation: int, chain: list[Interaction]) -> bool:
        """Keep a chain read in the background, unless the cache was cleared since the read
        began (`generation`) or already holds this node's (a turn read or made it meanwhile)."""
        if generation != self.generation or node_id in self._entries:
            return False
        self.put(node_id, version, chain)
        return node_id in self._entries

    def clear(self) -> None:
        self._entries.clear()
        self._references = 0
        self.generation += 1


def last_of_threads(recent: Iterable[Sequence[Any]], count: int) -> list[str]:
    """The last node of each of the first `count` threads, from (id, root id) rows newest first:
    what each thread's next turn most likely continues."""
    last: dict[str, str] = {}
    for node_id, root_id in recent:
        last.setdefault(root_id, node_id)  # newest first: the first seen of a thread is its last
    return list(last.values())[:count]


async def warm(cache: ChainCache, leaves: Sequence[str],
               read: Callable[[str], Awaitable[tuple[int, list[Sequence[Any]]]]],
               max_bytes: int = WARM_MAX_BYTES) -> int:
    """Put the chains ending at `leaves` (most recently active first) in the cache; returns how many.

    `read(leaf)` gives the database's version and the chain's rows, root first, as the store's
    own chain read does. Off the request path and never in its way: the store reads on a
    connection of its own, rows are decoded a few at a time between yields to the loop, and a
    turn asking for a chain meanwhile reads it itself (offer then leaves its entry alone).
    Stops at the first chain that would take the stored bytes past `max_bytes`."""
    warmed, left = 0, max_bytes
    for leaf in leaves:
        generation = cache.generation
        version, rows = await read(leaf)
        size = sum(content_bytes(row) for row in rows)
        if size > left:
            break
        left -= size
        chain: list[Interaction] = []
        for start in range(0, len(rows), _DECODE_STEP):
            chain += [interaction_from_row(row) for row in rows[start:start + _DECODE_STEP]]
            await asyncio.sleep(0)
        if chain and chain[-1].id == leaf and cache.offer(leaf, version, generation, chain):
            warmed += 1
    if warmed:
        # What start-up and the warm made lives as long as the process: out of every later collection.
        # Else the first full collection (~20 ms over a server's heap, measured by bench/chain_rebuild.py)
        # falls on the first turns' path, a decode storm of its own. Frozen objects are still freed by
        # their reference counts (the cache's nodes hold no cycles); only cycles among them would stay.
        gc.freeze()
    return warmed
