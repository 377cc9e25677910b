"""Recently continued chains, kept in memory so a long conversation's next turn
does not rebuild its whole history from the database.

An app continues the node it just got, so the chain of a new node is its
parent's chain plus itself. Entries are valid for one `version` of the
database as other processes see it (`PRAGMA data_version` on the writer's
connection, which only other connections' commits change, e.g. `recall rm`);
erasures made by this process clear the cache outright. Entries share the
node objects, so an entry costs a list of pointers; the cache is bounded by
the number of node references it holds.
"""

from __future__ import annotations

from collections import OrderedDict

from ..model import IN_PROGRESS, Interaction

_MAX_REFERENCES = 200_000


class ChainCache:
    def __init__(self, max_references: int = _MAX_REFERENCES) -> None:
        self._entries: OrderedDict[str, tuple[int, list[Interaction]]] = OrderedDict()
        self._references = 0
        self._max = max_references

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

    def clear(self) -> None:
        self._entries.clear()
        self._references = 0
