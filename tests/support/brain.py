"""The fake providers' 'model': it answers from the whole history it was given.

So a test can tell whether history really arrived: the answer counts the user
messages it saw and recalls a name said in any of them.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"my name is (\w+)", re.IGNORECASE)
_WEATHER = re.compile(r"weather in (\w+)", re.IGNORECASE)


def answer(user_texts: list[str]) -> str:
    """A deterministic reply to a conversation whose user messages are `user_texts`."""
    last = user_texts[-1] if user_texts else ""
    names = [m.group(1) for text in user_texts for m in _NAME.finditer(text)]
    if last.lower().startswith("summarise the conversation"):  # recall compacting (pipeline/compaction.py)
        return "Summary: " + " | ".join(user_texts[:-1])
    if "name" in last.lower() and "?" in last:
        said = f"Your name is {names[-1]}." if names else "I do not know your name."
    else:
        said = f"You said: {last}"
    return f"[{len(user_texts)} user messages] {said}"


def weather_city(text: str) -> str | None:
    """The city a message asks the weather in: a fake given a function tool calls it with that city."""
    found = _WEATHER.search(text)
    return found.group(1) if found else None


# A fictional almanac (not real results): a follow-up about "they" or "second
# place" can only be answered from the earlier answers in the context.
_MEDALS = [("Norway", 18, 41), ("Italy", 10, 30), ("Germany", 9, 26)]


def research_answer(question: str, context: str, user_texts: list[str]) -> str:
    """A deterministic research answer to `question`, given what earlier turns said
    (`context`) and every user message of the conversation, `question` last
    (a question it has no almanac answer for is answered as answer() would)."""
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
    return answer(user_texts)


_TURN = re.compile(r"^chain (\S+) turn (\d+)\b")
_PAUSE = re.compile(r"\[pause (\d+(?:\.\d+)?)s\]")


def history_problem(user_texts: list[str]) -> str | None:
    """For load and crash tests: a message `chain C turn N` must arrive after exactly
    turns 1..N-1 of chain C, in order, and nothing else. None when it does."""
    found = _TURN.match(user_texts[-1]) if user_texts else None
    if found is None:
        return None
    chain, turn = found.group(1), int(found.group(2))
    said = [m.group(0) if (m := _TURN.match(text)) else text for text in user_texts]
    expected = [f"chain {chain} turn {n}" for n in range(1, turn + 1)]
    if said != expected:
        return f"chain {chain} turn {turn} arrived with history {said[:-1]!r}"
    return None


def requested_pause(user_texts: list[str]) -> float:
    """Seconds the fake waits before answering (or between stream events) when the
    last message asks for it with `[pause Ns]`: slow turns on demand, per request."""
    found = _PAUSE.search(user_texts[-1]) if user_texts else None
    return float(found.group(1)) if found else 0.0
