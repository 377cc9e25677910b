"""Token counting routes: OpenAI's `POST /v1/responses/input_tokens` and Anthropic's
`POST /v1/messages/count_tokens`, both directions.

As a front API: what a count request is (a create without what only a create has) and how its
answer reads. As an upstream: the counting call that goes with a create recall built, and the
count read back from its answer. An API with no counter (Chat Completions, Parallel's, and those
recall does not ask yet) has no row: a count on a chain recall rebuilds for it is a clear 400.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..model import TurnRequest
from .anthropic_messages import NAME as ANTHROPIC_MESSAGES
from .base import Codec, UpstreamCall, as_dict, expect, type_name
from .openai_responses_items import NAME as OPENAI_RESPONSES


@dataclass(frozen=True, slots=True)
class Counter:
    """One API's token counter."""

    #: The provider's counting path, and the create fields its body takes.
    path: str
    fields: frozenset[str]
    #: A count request read as the create it counts.
    parse: Callable[[Codec, Any], TurnRequest]
    #: The answer to a count: the API's own object.
    answer: Callable[[int], dict[str, Any]]

    def call_for(self, create: UpstreamCall) -> UpstreamCall:
        """The counting call for a create recall built: the same conversation, counted."""
        body = {k: v for k, v in (create.body or {}).items() if k in self.fields}
        return UpstreamCall("POST", self.path, body)

    @staticmethod
    def count_in(body: Any) -> int | None:
        """The count a provider answered (both APIs say `input_tokens`), None when it is missing."""
        found = as_dict(body).get("input_tokens")
        return found if isinstance(found, int) and not isinstance(found, bool) and found >= 0 else None


def _parse_messages_count(codec: Codec, body: Any) -> TurnRequest:
    """A Messages count takes no max_tokens (its create requires one): read as a create with one."""
    expect(isinstance(body, dict), f"the request body must be a JSON object; got {type_name(body)}")
    expect("max_tokens" not in body, "max_tokens: Extra inputs are not permitted", "max_tokens")
    return codec.parse_create({**body, "max_tokens": 1})


COUNTERS: dict[str, Counter] = {
    # openai-v3.3.1.yml: TokenCountsBody -> TokenCountsResource
    OPENAI_RESPONSES: Counter(
        "/v1/responses/input_tokens",
        frozenset({"model", "input", "tools", "text", "reasoning", "truncation", "instructions", "tool_choice",
                   "parallel_tool_calls"}),
        lambda codec, body: codec.parse_create(body),
        lambda n: {"object": "response.input_tokens", "input_tokens": n}),
    # Anthropic's API reference, "Count tokens in a Message": MessageCountTokensParams -> MessageTokensCount
    ANTHROPIC_MESSAGES: Counter(
        "/v1/messages/count_tokens",
        frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
                   "context_management", "output_config"}),
        _parse_messages_count,
        lambda n: {"input_tokens": n}),
}
