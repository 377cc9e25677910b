"""The fake providers' 'model': it answers from the whole history it was given.

So a test can tell whether history really arrived: the answer counts the user
messages it saw and recalls a name said in any of them.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"my name is (\w+)", re.IGNORECASE)


def answer(user_texts: list[str]) -> str:
    """A deterministic reply to a conversation whose user messages are `user_texts`."""
    last = user_texts[-1] if user_texts else ""
    names = [m.group(1) for text in user_texts for m in _NAME.finditer(text)]
    if "name" in last.lower() and "?" in last:
        said = f"Your name is {names[-1]}." if names else "I do not know your name."
    else:
        said = f"You said: {last}"
    return f"[{len(user_texts)} user messages] {said}"


# A fictional almanac (not real results): a follow-up about "they" or "second
# place" can only be answered from the earlier answers in the context.
_MEDALS = [("Norway", 18, 41), ("Italy", 10, 30), ("Germany", 9, 26)]


def research_answer(question: str, context: str) -> str:
    """A deterministic research answer to `question`, given what earlier turns said."""
    asked = question.lower()
    known = next(((c, g, t) for c, g, t in _MEDALS if c in context), None)
    if "which country" in asked and "gold" in asked:
        country, gold, _ = _MEDALS[0]
        return f"{country} won the most gold medals: {gold}."
    if "how many medals" in asked:
        if known is None:
            return "Who are 'they'? Nothing earlier says."
        return f"{known[0]} won {known[2]} medals in total."
    if "second place" in asked:
        if known is None or f"{known[2]} medals" not in context:
            return "Compared with what? Nothing earlier gives a medal count."
        country, _, total = known
        second, _, second_total = next(m for m in _MEDALS if m[0] != country)
        return f"{country}'s {total} medals are {total - second_total} more than second-placed {second}'s {second_total}."
    names = [m.group(1) for m in _NAME.finditer(f"{context}\n{question}")]
    if "name" in asked and "?" in asked:
        return f"Your name is {names[-1]}." if names else "I do not know your name."
    return f"You asked: {question}"
