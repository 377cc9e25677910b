"""Conversation state: resolving a previous id to the history it stands for.

Only the conversation carries over from earlier turns (inputs and outputs),
never tools, system instruction or config: that is the providers' semantics.
"""

from __future__ import annotations

from ..codecs import Codec
from ..errors import bad_request
from ..model import COMPACTION, IN_PROGRESS, Interaction, Turn
from ..store.protocol import Store
from ..store.records import RECORDED_OWNER
from .spill import whole


class ConversationState:
    def __init__(self, store: Store, *, shared: bool = False) -> None:
        self._store = store
        # Replay mode: recordings made under one key are read by an app holding
        # another (CI has no real key), so ownership is not enforced.
        self._shared = shared

    def visible(self, node: Interaction, owner: str) -> bool:
        return self._shared or node.owner in (owner, RECORDED_OWNER)

    async def lookup(self, interaction_id: str, owner: str) -> Interaction | None:
        """A node the caller may see: another owner's id is as good as missing."""
        found = await self._store.get_interaction(interaction_id)
        if found is None or not self.visible(found, owner):
            return None
        return found

    async def foreign(self, interaction_id: str, owner: str) -> bool:
        """The id is recorded under another key: answer as if it did not exist."""
        found = await self._store.get_interaction(interaction_id)
        return found is not None and not self.visible(found, owner)

    async def chain_for(self, previous_id: str, owner: str, codec: Codec) -> list[Interaction]:
        """The nodes a follow-up to `previous_id` continues, root first.

        An unknown, foreign or unstored id gets the front API's own not-found
        answer; a turn still running gets a 400 (never 409: SDKs retry 409).
        """
        # One read: the chain ends at the node named, unless that node is gone (the store's
        # chain skips erased nodes) or was never stored.
        chain = await self._store.chain(previous_id)
        previous = chain[-1] if chain and chain[-1].id == previous_id else None
        if previous is None or not self.visible(previous, owner):
            raise codec.previous_not_found(previous_id)
        if previous.status == IN_PROGRESS:
            raise bad_request(
                f"interaction '{previous_id}' is still in progress; wait until it completes before continuing it",
                param=codec.previous_field,
            )
        return [await whole(self._store, node) if node.spilled else node for node in chain]


def history(chain: list[Interaction]) -> list[Turn]:
    """The conversation a chain holds, as turns, oldest first (history_by_node, joined)."""
    start, own_input = _history_start(chain)
    turns: list[Turn] = []
    for index in range(start, len(chain)):
        node = chain[index]
        if own_input or index > start:
            turns += node.input
        turns += node.output
    return turns


def history_by_node(chain: list[Interaction]) -> list[tuple[str, list[Turn]]]:
    """The conversation a chain holds, node by node (id, turns), oldest first.

    A compaction stands for everything before it (OpenAI: "drop items that came before
    the most recent compaction item"; Anthropic drops the blocks before its compaction
    block), so the history starts at the newest node that holds one: from its output
    when the compaction is in the output (a compacted window, or a compaction the
    provider ran before answering), from its input when the app sent it."""
    start, own_input = _history_start(chain)
    return [(node.id, node.turns() if own_input or index > start else node.output)
            for index, node in enumerate(chain[start:], start=start)]


def _history_start(chain: list[Interaction]) -> tuple[int, bool]:
    """Where a chain's history starts (history_by_node says why): the newest node holding a
    compaction, and whether its own input counts (not when the compaction is in its output)."""
    for index in range(len(chain) - 1, -1, -1):
        node = chain[index]
        if _holds_compaction(node.output):
            return index, False
        if _holds_compaction(node.input):
            return index, True
    return 0, True


def _holds_compaction(turns: list[Turn]) -> bool:
    # Plain loops, not any() over a generator: run for every turn of a chain on each follow-up.
    for turn in turns:
        for part in turn.parts:
            if part.kind == COMPACTION:
                return True
    return False
