"""Conversation state: resolving a previous id to the history it stands for.

Only the conversation carries over from earlier turns (inputs and outputs),
never tools, system instruction or config: that is the providers' semantics.
"""

from __future__ import annotations

from .codecs import Codec
from .errors import bad_request
from .model import IN_PROGRESS, Interaction, Turn
from .store.sqlite import SQLiteStore


class ConversationState:
    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def lookup(self, interaction_id: str, owner: str) -> Interaction | None:
        """A node the caller may see: another owner's id is as good as missing."""
        found = await self._store.get_interaction(interaction_id)
        if found is None or found.owner != owner:
            return None
        return found

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
