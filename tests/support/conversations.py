"""A database filled through a running recall by the real google-genai SDK, and the CLI over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner, Result
from google import genai
from google.genai import _interactions as gi

from proxy.cli.main import main

MODEL = "gemini-3-flash-preview"


def client(base_url: str, key: str = "key-A") -> genai.Client:
    return genai.Client(api_key=key, http_options={"base_url": base_url, "retry_options": {"attempts": 1}})


def cli(db_path: Any, *args: str) -> Result:
    """`recall ARGS --db DB_PATH` (no --db when DB_PATH is None), as a user would type it."""
    db = [] if db_path is None else ["--db", str(db_path)]
    return CliRunner().invoke(main, [*args, *db], catch_exceptions=False)


@dataclass
class Conversations:
    """What the app did, as the SDK saw it.

    Thread A (upstream gemini, emulate): first → name_question, and first → fork.
    Thread B (upstream gemgen, generateContent): generate.
    Then one store=false call and one call that failed (unknown previous id).
    """

    first: Any
    name_question: Any
    fork: Any
    generate: Any
    unstored: Any
    # Every request the app made, and the tokens its successful answers reported.
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    inputs: dict[str, str] = field(default_factory=dict)  # id -> the text the app sent

    @property
    def stored(self) -> list[Any]:
        return [self.first, self.name_question, self.fork, self.generate]


FORK_MARKER = "Zephyrquill"


def have_conversations(base: str) -> Conversations:
    """Run the app against recall at `base` (e.g. http://127.0.0.1:PORT)."""
    gemini, gemgen = client(f"{base}/gemini"), client(f"{base}/gemgen")
    sent: dict[str, str] = {}

    def create(c: genai.Client, text: str, **kwargs: Any) -> Any:
        turn = c.interactions.create(model=MODEL, input=text, **kwargs)
        sent[turn.id] = text
        return turn

    first = create(gemini, "Hi, my name is Karthik. I like to play cricket.")
    name_question = create(gemini, "What is my name?", previous_interaction_id=first.id)
    fork = create(gemini, f"Actually, my name is Priya {FORK_MARKER}.", previous_interaction_id=first.id)
    generate = create(gemgen, "Tell me about the okapi of Zanzibar.")
    unstored = create(gemini, "Keep this one to yourself.", store=False)
    with pytest.raises(gi.NotFoundError):
        gemini.interactions.create(model=MODEL, input="and?", previous_interaction_id="v1_neverexisted")
    answered = [first, name_question, fork, generate, unstored]
    return Conversations(
        first=first, name_question=name_question, fork=fork, generate=generate, unstored=unstored,
        requests=len(answered) + 1,
        input_tokens=sum(t.usage.total_input_tokens for t in answered),
        output_tokens=sum(t.usage.total_output_tokens for t in answered),
        inputs=sent,
    )
