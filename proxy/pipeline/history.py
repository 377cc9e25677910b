"""What a new turn continues, and where a finished turn's items go.

A turn continues the chain of its previous id (its history rebuilt from the
nodes, pipeline/state.py), or the items of a conversation object (OpenAI
Conversations, kept by recall on any upstream; the front codec reads and
writes the items).
"""

from __future__ import annotations

from ..codecs.base import Codec
from ..errors import ApiError, not_found
from ..model import CANCELLED, FAILED, Interaction, Turn, TurnRequest
from ..store import StoreUnavailable
from ..store.records import Conversation
from .call import Call
from .services import Services
from .spill import whole
from .state import history


async def context(services: Services, call: Call, req: TurnRequest) -> tuple[list[Interaction], list[Turn]]:
    """What a create continues: the chain of its previous id, or its conversation's items.

    Returns the chain (the new node's parent is its last node) and the history turns."""
    codec = call.route.codec
    if req.conversation:
        conversation = await visible_conversation(services, req.conversation, call.owner)
        if conversation is None:
            raise missing_conversation(req.conversation, param="conversation")
        return [], codec.turns_of_conversation(await services.store.conversation_items(conversation.id))
    if req.previous_id:
        chain = await services.state.chain_for(req.previous_id, call.owner, codec)
        return chain, history(chain)
    return [], []


def thread_of(chain: list[Interaction], req: TurnRequest) -> str | None:
    """What a turn's thread is known by (its prompt cache key): the chain's root, or the
    conversation object; None for a turn that starts a thread (its own id is the root)."""
    return chain[0].id if chain else req.conversation


async def add_to_conversation(services: Services, codec: Codec, conversation_id: str, node: Interaction) -> None:
    """Append a committed turn's input and output items to its conversation."""
    if node.status in (FAILED, CANCELLED):
        return  # nothing was said: a retry must not find its input twice
    items = codec.conversation_items(await whole(services.store, node))
    try:
        await services.store.append_conversation_items(conversation_id, [(item["id"], item) for item in items])
    except StoreUnavailable as trouble:
        trouble.report()  # the turn is answered (and billed): its items are what is lost


async def visible_conversation(services: Services, conversation_id: str, owner: str) -> Conversation | None:
    found = await services.store.get_conversation(conversation_id)
    return found if found is not None and found.owner == owner else None


def missing_conversation(conversation_id: str, param: str | None = None) -> ApiError:
    return not_found(f"Conversation with id '{conversation_id}' not found.", param=param)
