"""Fitting a rebuilt chain into the model's context window (OpenAI Responses' `truncation: "auto"`,
emulated on every upstream when recall keeps the conversation).

When the chain recall rebuilds would not fit, whole turns are dropped from the middle: the
instructions, the first turns (the root node: what the conversation is about) and the newest
turns stay. A function call never loses its output, nor a reasoning item the item after it:
the turns they are in are dropped together or not at all. The cut goes to TARGET_SHARE of the
window, not just under it, so that the next turns fit without cutting again, and every later
turn starts from the same cut (recorded on its node), so the provider's prompt cache keeps
hitting the same prefix until the next cut.

No tokenizer: the decision is the parent's recorded `usage.input_tokens` (the provider's own
count of the chain so far) scaled onto recall's estimate of what is new (one token per four
characters of text, and a few per part), or, when that misjudged, the provider's own
context-length error, after which the call is cut harder and sent once more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import ContextOverflow
from ..model import (
    FUNCTION_CALL,
    FUNCTION_RESULT,
    INSTRUCTION,
    MEDIA_KINDS,
    THOUGHT,
    TRUNCATION,
    Interaction,
    Part,
    Turn,
    TurnRequest,
)
from .state import history_by_node

#: A cut leaves the input at this share of the window: room for the following turns.
TARGET_SHARE = 0.7
#: Tokens a part costs besides its text, and a piece of media (its size is the provider's business).
PART_TOKENS = 4
MEDIA_TOKENS = 256
#: How far the provider's count may stand from recall's estimate before it is not believed.
RATIO_RANGE = (0.5, 3.0)


def estimate_part(part: Part) -> int:
    """recall's estimate of a part's tokens: four characters a token, plus PART_TOKENS."""
    if part.kind in MEDIA_KINDS:
        return PART_TOKENS + MEDIA_TOKENS
    chars = len(part.text or "") + len(part.name or "")
    for value in (part.arguments, part.result):
        if value is not None:
            chars += len(value) if isinstance(value, str) else len(orjson.dumps(value))
    return PART_TOKENS + math.ceil(chars / 4)


def estimate(turns: list[Turn]) -> int:
    return sum(estimate_part(part) for turn in turns for part in turn.parts)


def _settings_tokens(req: TurnRequest) -> int:
    """What every call of the request carries besides the conversation: instructions and tools."""
    tools = sum(math.ceil(len(orjson.dumps([t.name, t.description, t.parameters])) / 4) for t in req.tools)
    return (PART_TOKENS + math.ceil(len(req.system) / 4) if req.system else 0) + tools


@dataclass(slots=True)
class Block:
    """Turns that are dropped together or not at all: one node's (or one conversation item's),
    joined with the next while a function call in them waits for its output or a reasoning
    item for the item after it."""

    keys: list[str]
    turns: list[Turn]
    tokens: int


def blocks_of(units: list[tuple[str, list[Turn]]]) -> list[Block]:
    blocks: list[Block] = []
    open_block = False
    waiting: set[str] = set()
    for key, turns in units:
        parts = [p for t in turns for p in t.parts]
        if open_block and blocks:
            block = blocks[-1]
            block.keys.append(key)
            block.turns.extend(turns)
            block.tokens += estimate(turns)
        else:
            blocks.append(Block([key], list(turns), estimate(turns)))
            waiting = set()
        for part in parts:
            if part.kind == FUNCTION_CALL and part.call_id:
                waiting.add(part.call_id)
            elif part.kind == FUNCTION_RESULT:
                waiting.discard(part.call_id or "")
        open_block = bool(waiting) or bool(parts and parts[-1].kind == THOUGHT)
    return blocks


class Fitter:
    """One emulated turn's rebuilt conversation, fitted into the model's window if the app asked."""

    def __init__(self, req: TurnRequest, chain: list[Interaction], prior: list[Turn], *,
                 window: int | None, truncating: bool) -> None:
        self.truncating = truncating
        parent = chain[-1] if chain else None
        earlier = parent.truncation if parent is not None and truncating else {}
        # A window the provider named in an earlier refusal is evidence: it wins over a larger
        # configured or published one (a local server may run a model with less than its maximum).
        learnt = earlier.get("window")
        windows = [w for w in (window, learnt) if isinstance(w, int) and w > 0]
        self.window = min(windows) if windows else None
        self.history = prior
        self.decided_by: str | None = None
        self.before: int | None = None
        self.blocks: list[Block] = []
        self.settings = self.own = self.inherited = 0
        self.dropped: set[int] = set()
        self.ratio = 1.0
        if not truncating:
            return  # nothing will be cut: no estimate of the chain is made on the turn's path
        # A chain's blocks are its nodes (from its newest compaction on); a conversation's (no chain) its items.
        self.blocks = blocks_of(history_by_node(chain) if chain else [(f"item {i}", [t]) for i, t in enumerate(prior)])
        self.settings = _settings_tokens(req)
        self.own = estimate(req.input) + self.settings
        # Cuts always take the oldest blocks after the first: a cut is where the kept turns resume.
        self.dropped = set(range(1, self._block_of(earlier.get("resume_at"))))
        self.inherited = len(self.dropped)
        self.ratio = self._calibrated(parent)

    def _block_of(self, key: Any) -> int:
        """The index of the block holding `key` (1 when none does: nothing is dropped)."""
        return next((i for i, b in enumerate(self.blocks) if i > 0 and key in b.keys), 1)

    def _calibrated(self, parent: Interaction | None) -> float:
        """The provider's tokens per estimated token, from what it counted of the parent's call."""
        counted = parent.usage.input_tokens if parent is not None else None
        if not counted or parent is None:
            return 1.0
        # The parent's call held every block kept now but its own reply.
        sent = sum(b.tokens for i, b in enumerate(self.blocks) if i not in self.dropped)
        sent += self.settings - estimate(parent.output)
        low, high = RATIO_RANGE
        return min(high, max(low, counted / max(1, sent)))

    def _tokens(self, dropped: set[int]) -> int:
        """The provider's likely count of the call with these blocks dropped."""
        kept = sum(b.tokens for i, b in enumerate(self.blocks) if i not in dropped)
        return math.ceil(self.ratio * (kept + self.own))

    def prior(self) -> list[Turn]:
        """The history to send: kept blocks whole; of a dropped block only its instructions
        (system or developer messages, which a cut never takes away)."""
        turns: list[Turn] = []
        for i, block in enumerate(self.blocks):
            if i not in self.dropped:
                turns.extend(block.turns)
                continue
            for turn in block.turns:
                instructions = [p for p in turn.parts if p.kind == INSTRUCTION]
                if instructions:
                    turns.append(Turn(turn.role, instructions))
        return turns

    def fit(self) -> list[Turn]:
        """The history for the first try: the parent's cut kept, cut further if the chain would not fit."""
        if not self.truncating:
            return self.history
        if self.window is not None and self._tokens(self.dropped) > self.window:
            self._cut(self.window, "usage")
        return self.prior()

    def refit(self, refused: ContextOverflow) -> list[Turn] | None:
        """The history for one more try after the provider refused the call as too long, cut to
        the limit it named (or the one recall knows); None when there is nothing left to cut."""
        if not self.truncating:
            return None
        sent = self._tokens(self.dropped) / self.ratio
        limit = refused.limit or self.window or math.ceil(self.ratio * sent * TARGET_SHARE)
        if refused.tokens:
            self.ratio = refused.tokens / max(1.0, sent)
        else:  # it counted more than its limit: at least limit/sent tokens per estimated one
            self.ratio = max(self.ratio, limit / max(1.0, sent)) * 1.1
        cut_before = len(self.dropped)
        self._cut(limit, "provider_error")
        return self.prior() if len(self.dropped) > cut_before else None

    def _cut(self, window: int, decided_by: str) -> None:
        """Drop blocks oldest first (never the first or the newest) until the call is at the target share."""
        self.before = self.before or self._tokens(self.dropped)
        target = TARGET_SHARE * window
        for i in range(1, len(self.blocks) - 1):
            if self._tokens(self.dropped) <= target:
                break
            self.dropped.add(i)
        self.window, self.decided_by = window, decided_by

    def record(self, node: Interaction) -> None:
        """Keep the cut on the node, in a few figures whatever the chain's length: where its call's
        turns resume after the first ones (later turns resume there too), and what was left out."""
        if not self.dropped:
            node.request.pop(TRUNCATION, None)
            return
        resume = max(self.dropped) + 1
        record: dict[str, Any] = {
            "resume_at": self.blocks[resume].keys[0],
            "turns_dropped": sum(len(self.blocks[i].turns) for i in self.dropped),
            "blocks_dropped": len(self.dropped),
            "newly_dropped": len(self.dropped) - self.inherited,
            "estimated_tokens": self._tokens(self.dropped),
            "window": self.window,
        }
        if self.decided_by is not None:
            record["decided_by"] = self.decided_by
            record["tokens_before"] = self.before
        node.request[TRUNCATION] = record
