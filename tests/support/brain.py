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
