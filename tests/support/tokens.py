"""The fakes' tokenizer, which the tests share: one simple rule instead of a real vocabulary.

Every item of a conversation (a message, a function call or its output, the instructions or
system prompt) costs ITEM_TOKENS, plus one token per four characters of its text, rounded up.
A fake given a `context_window` counts its input so, reports that count as its usage's input
tokens, answers its token-counting route with it, and refuses an input over the window with
its provider's own context-length error. recall does not use this rule (it has its own
estimate, proxy/pipeline/window.py): it learns the provider's counts from its answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

ITEM_TOKENS = 4


def item_tokens(text: str) -> int:
    return ITEM_TOKENS + math.ceil(len(text) / 4)


def count_tokens(item_texts: Iterable[str]) -> int:
    """The tokens of a conversation whose items hold these texts."""
    return sum(item_tokens(text) for text in item_texts)
