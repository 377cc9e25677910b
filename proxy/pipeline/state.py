"""Conversation state: resolving a previous id to the history it stands for.

Only the conversation carries over from earlier turns (inputs and outputs),
never tools, system instruction or config: that is the providers' semantics.
"""

from __future__ import annotations

from ..codecs import Codec
from ..errors import bad_request
from ..model import IN_PROGRESS, Interaction, Turn
from ..store.protocol import Store
from ..store.records import RECORDED_OWNER


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
        previous = await self.lookup(previous_id, owner)
        if previous is None:
            raise codec.previous_not_found(previous_id)
        if previous.status == IN_PROGRESS:
            raise bad_request(
                f"interaction '{previous_id}' is still in progress; wait until it completes before continuing it",
                param=codec.previous_field,
            )
        return await self._store.chain(previous_id)


def history(chain: list[Interaction]) -> list[Turn]:
    """The conversation a chain holds, as turns, oldest first."""
    return [turn for node in chain for turn in node.turns()]

