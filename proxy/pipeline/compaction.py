"""Compaction on an upstream that has none: a summary asked of the same upstream, sealed.

OpenAI compacts a conversation into its user messages and one opaque compaction item
(codecs/openai_responses_compact.py). Where the upstream is another provider, recall
makes the same window itself: the conversation's user messages, then a compaction item
whose content is a summary the upstream wrote when asked for one, sealed with recall's key
(proxy/seal.py) so that an app that stores nothing can carry it and recall can trust it
when it comes back. A rebuilt history starts at the newest compaction (pipeline/state.py);
an upstream that cannot read the item is told its summary (model.readable_compactions).
"""

from __future__ import annotations

from ..errors import bad_request, upstream_bad_response
from ..model import (
    COMPACTION,
    FUNCTION_RESULT,
    INSTRUCTION,
    MODEL,
    TEXT,
    USER,
    Part,
    Turn,
    TurnRequest,
    Usage,
)
from ..seal import ForgedToken, Sealer, is_sealed
from .call import Call
from .provider_call import ask_upstream, upstream_request
from .services import Services

# What the upstream is asked, after the conversation, to compact it.
SUMMARY_REQUEST = (
    "Summarise the conversation so far for your own later use, in place of it: keep every name, number, "
    "decision, fact the user gave, open question and unfinished task; leave out pleasantries. "
    "Answer with the summary only."
)


def open_sealed(sealer: Sealer, turns: list[Turn]) -> None:
    """Read the summary out of each compaction recall sealed; a 400 for one it did not seal."""
    for part in (p for turn in turns for p in turn.parts):
        if part.kind == COMPACTION and is_sealed(part.signature) and part.text is None:
            try:
                part.text = sealer.open(part.signature or "")
            except ForgedToken as exc:
                raise bad_request(f"The encrypted content of a compaction item could not be verified ({exc}); "
                                  "send back the compaction items recall returned, unchanged.",
                                  param="input") from None


async def summarised(call: Call, services: Services, req: TurnRequest, prior: list[Turn],
                     model: str | None) -> tuple[list[Turn], Usage]:
    """The compacted window of `prior` and the request's own input: their user messages, then a
    compaction item sealed around the summary `model` wrote of them on the call's upstream."""
    conversation = [*prior, *req.input]
    # `raw` too: an upstream of the front's own API (Parallel's Responses API) is sent the
    # request's own fields, as the app would have written this one.
    ask = TurnRequest(front=req.front, model=model, input=[Turn(USER, [Part(TEXT, text=SUMMARY_REQUEST)])],
                      system=req.system, raw={"model": model, "input": SUMMARY_REQUEST})
    upstream_codec, upstream_call = upstream_request(call, ask, conversation)
    reply, _ = await ask_upstream(call, services, upstream_codec, upstream_call)
    summary = "\n".join(turn.text for turn in reply.output if turn.role == MODEL).strip()
    if not summary:
        raise upstream_bad_response(call.upstream.name, "it answered the request for a summary with no text")
    compaction = Part(COMPACTION, text=summary, signature=services.sealer.seal(summary))
    return [*user_messages(conversation), Turn(MODEL, [compaction])], reply.usage


def user_messages(turns: list[Turn]) -> list[Turn]:
    """What the user said, as OpenAI keeps it in a compacted window: each user turn's own
    content (not tool results, not system or developer messages)."""
    kept = [Turn(USER, [p for p in turn.parts if p.kind not in (FUNCTION_RESULT, INSTRUCTION)])
            for turn in turns if turn.role == USER]
    return [turn for turn in kept if turn.parts]
