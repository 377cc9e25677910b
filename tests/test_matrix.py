"""The translation matrix: every stateful front API over every upstream `api`, plain and streamed.

Each case is a 3-turn chain through the front API's real SDK, against a
stateless fake of the upstream (it keeps nothing and answers from the history
it is sent). The third turn's upstream request must carry all five earlier
turns (user, model, user, model, user) in the upstream's own shape, and the
answer must name what the first turn said. Usage, finish reasons and ids come
back in the front API's own style.

Task runs have no streamed create: their streamed form follows the run's
events (`GET …/events`) to the final state, which carries the output.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Recall
from .support.matrix import FRONTS, UPSTREAM_APIS, Reply, Text, last_body, model_for, sent_conversation

TURNS = ["Hi, my name is Karthik.", "I like cricket.", "What is my name?"]

# The front API's usage fields (input, output) and the finish word of a turn that ended normally.
USAGE_FIELDS = {"interactions": ("total_input_tokens", "total_output_tokens"),
                "responses": ("input_tokens", "output_tokens"), "chat": ("prompt_tokens", "completion_tokens"),
                "messages": ("input_tokens", "output_tokens"), "tasks": None}
FINISHED = {"interactions": "completed", "responses": "completed", "chat": "stop", "messages": "end_turn",
            "tasks": "completed"}
# Upstreams whose fake reports no token counts (a Parallel task run has none).
NO_USAGE = {"parallel"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("api", UPSTREAM_APIS)
@pytest.mark.parametrize("front_name", list(FRONTS))
def test_three_turn_chain(matrix_recall: Recall, matrix_fakes: dict[str, Any], front_name: str, api: str,
                          stream: bool) -> None:
    front, base, model = FRONTS[front_name], matrix_recall.base(api), model_for(api)
    previous: str | None = None
    replies: list[Reply] = []
    for text in TURNS:
        reply = front.ask(base, model, [Text(text)], previous, stream=stream)
        replies.append(reply)
        previous = reply.id
    sent = sent_conversation(api, last_body(matrix_fakes[api]))
    assert [role for role, _ in sent] == ["user", "model", "user", "model", "user"]
    assert [said for role, said in sent if role == "user"] == TURNS
    assert [said for role, said in sent if role == "model"] == [r.text for r in replies[:2]]
    assert "Karthik" in replies[-1].text
    # Ids, finish reasons and usage in the front API's own style.
    assert all(r.id.startswith(front.id_prefix) for r in replies)
    assert len({r.id for r in replies}) == 3
    assert replies[-1].finish == FINISHED[front_name]
    fields = USAGE_FIELDS[front_name]
    if fields and api not in NO_USAGE:
        assert all(replies[-1].usage[name] > 0 for name in fields), replies[-1].usage
