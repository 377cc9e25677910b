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
