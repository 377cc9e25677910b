"""Anthropic's context management through recall: its edits and beta headers pass through to a
native Anthropic upstream, and a compaction block it returns is kept, so that a chain continued
later is rebuilt from that block (Anthropic drops everything before it; recall sends none of it).

Through the real anthropic SDK against the fake (tests/support/fake_anthropic.py compacts as
`compact_20260112` says, and reads a compaction block as the conversation before it).
"""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from proxy.config import Upstream

from .conftest import RecallFactory
from .support.fake_anthropic import FakeAnthropic

MODEL = "claude-sonnet-4-6"
COMPACT = {"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 50}}]}


def _client(recall: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=recall.base("claude"), max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_a_compaction_block_is_kept_and_later_turns_start_from_it(
        recall_factory: RecallFactory, fake_anthropic: FakeAnthropic, stream: bool) -> None:
    recall = recall_factory({"claude": Upstream("claude", fake_anthropic.url, "anthropic")})
    c = _client(recall)
    previous = None
    said = ["Hi, my name is Karthik.", "I like cricket.", "And tea."]
    for text in said:
        extra = {"previous_interaction_id": previous} if previous else {}
        asked = dict(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": text}],
                     betas=["compact-2026-01-12"], context_management=COMPACT, extra_body=extra)
        if stream:
            with c.beta.messages.stream(**asked) as events:  # type: ignore[arg-type]
                message = events.get_final_message()
        else:
            message = c.beta.messages.create(**asked)  # type: ignore[arg-type]
        # A first turn is relayed as it came (its id is Anthropic's); later ones are recall's.
        previous = getattr(message, "interaction_id", None) or message.id
        sent = fake_anthropic.last_body()
        assert sent["context_management"] == COMPACT  # the edits went as the app sent them
        assert "compact-2026-01-12" in fake_anthropic.requests[-1].headers["anthropic-beta"]
    # The third turn held 5 messages (50 tokens to the fake): Anthropic compacted before answering.
    kinds = [block.type for block in message.content]
    assert kinds == ["compaction", "text"]
    assert message.content[0].content == "Summary: " + " | ".join(said)
    # The next turn is rebuilt from the compaction block: nothing before it is sent again.
    follow = c.beta.messages.create(model=MODEL, max_tokens=200, betas=["compact-2026-01-12"],
                                    messages=[{"role": "user", "content": "What is my name?"}],
                                    extra_body={"previous_interaction_id": previous})
    sent = fake_anthropic.last_body()["messages"]
    assert [m["role"] for m in sent] == ["assistant", "user"]
    assert sent[0]["content"][0] == {"type": "compaction", "content": "Summary: " + " | ".join(said)}
    assert "Karthik" in follow.content[-1].text  # type: ignore[union-attr]


def test_context_editing_passes_through(recall_factory: RecallFactory, fake_anthropic: FakeAnthropic) -> None:
    recall = recall_factory({"claude": Upstream("claude", fake_anthropic.url, "anthropic")})
    edits = {"edits": [{"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 30000},
                        "keep": {"type": "tool_uses", "value": 3}}]}
    message = _client(recall).beta.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}],
        betas=["context-management-2025-06-27"], context_management=edits)  # type: ignore[arg-type]
    assert fake_anthropic.last_body()["context_management"] == edits
    assert message.context_management is not None and message.context_management.applied_edits == []
    # Without its beta header, Anthropic's refusal reaches the app as Anthropic's error.
    with pytest.raises(anthropic.BadRequestError) as caught:
        _client(recall).beta.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}],
                                             context_management=edits)  # type: ignore[arg-type]
    assert "context-management-2025-06-27" in str(caught.value)
