"""Which front API and operation a path under an upstream names.

Paths are matched on the decoded path (aiohttp decodes %2F) but relayed raw.
A path no front API claims is relayed unchanged and recorded.
"""

from __future__ import annotations

import re

from ..codecs import FRONT_CODECS, UPSTREAM_CODECS
from ..pipeline.call import Route

CREATE = "create"
GET = "get"
DELETE = "delete"
CANCEL = "cancel"
RELAY = "relay"
INPUT_ITEMS = "input_items"
# Token counting of a create's input (proxy/endpoints/token_counts.py).
COUNT_TOKENS = "count_tokens"
# A Responses chain compacted (proxy/endpoints/compaction.py).
COMPACT = "compact"
CONVERSATION = "conversation"
CONVERSATION_ITEMS = "conversation_items"
# Parallel task runs' reads (proxy/endpoints/tasks.py); a run's create is a CREATE.
TASK_GET = "task_get"
TASK_RESULT = "task_result"
TASK_INPUT = "task_input"
TASK_EVENTS = "task_events"


# Interactions: any version segment (v1, v1beta, v1alpha...) or none.
_INTERACTIONS = re.compile(r"^(?:/v[^/]*)?/interactions(?:/(?P<id>[^/]+)(?P<cancel>/cancel)?)?/?$")
_GENERATE = re.compile(r"^(?:/v[^/]*)?/models/[^/]+:(?:stream)?[gG]enerateContent$")
_MESSAGES = re.compile(r"^/v1/messages/?$")
_MESSAGES_COUNT = re.compile(r"^/v1/messages/count_tokens/?$")
# OpenAI: the SDK's base_url ends in /v1, so paths under an upstream start with it. Azure
# OpenAI serves the same API under /openai, /openai/v1 and /openai/deployments/{name}
# (openai's AzureOpenAI client with `azure_endpoint` set to recall's mount).
_OPENAI = r"(?:/v1|/openai(?:/v1|/deployments/[^/]+)?)?"
_RESPONSES = re.compile(rf"^{_OPENAI}/responses(?:/(?P<id>[^/]+)(?P<sub>/cancel|/input_items)?)?/?$")
_CONVERSATIONS = re.compile(
    r"^(?:/v1)?/conversations(?:/(?P<id>[^/]+)(?P<items>/items(?:/(?P<item>[^/]+))?)?)?/?$"
)
# Chat Completions: OpenAI's path, and Parallel's two (`/v1beta/…`, and `/chat/…` for its openai-SDK base_url).
_CHAT = re.compile(rf"^(?:/v1beta|{_OPENAI})/chat/completions/?$")
_TASK_RUNS = re.compile(r"^/v1/tasks/runs(?:/(?P<id>[^/]+)(?:/(?P<sub>result|input|events))?)?/?$")
_TASK_READS = {None: TASK_GET, "result": TASK_RESULT, "input": TASK_INPUT, "events": TASK_EVENTS}


def match(method: str, tail: str, upstream_api: str) -> Route:
    """The route for `method tail` under an upstream that speaks `upstream_api`."""
    found = _INTERACTIONS.match(tail)
    if found:
        codec = FRONT_CODECS["gemini-interactions"]
        resource = found.group("id")
        if resource is None:
            if method == "POST":
                return Route(codec, CREATE)
        elif found.group("cancel"):
            if method == "POST":
                return Route(codec, CANCEL, resource)
        elif method in ("GET", "DELETE"):
            return Route(codec, GET if method == "GET" else DELETE, resource)
        return Route(codec, RELAY)
    if _MESSAGES.match(tail):
        return Route(FRONT_CODECS["anthropic-messages"], CREATE if method == "POST" else RELAY)
    if _MESSAGES_COUNT.match(tail):
        return Route(FRONT_CODECS["anthropic-messages"], COUNT_TOKENS if method == "POST" else RELAY)
    if _GENERATE.match(tail):
        return Route(FRONT_CODECS["gemini-generate"], RELAY)
    found = _RESPONSES.match(tail)
    if found:
        return _responses_route(method, found)
    found = _CONVERSATIONS.match(tail)
    if found:
        operation = CONVERSATION_ITEMS if found.group("items") else CONVERSATION
        return Route(FRONT_CODECS["openai-responses"], operation, found.group("id"), found.group("item"))
    if _CHAT.match(tail):
        return Route(FRONT_CODECS["openai-chat"], CREATE if method == "POST" else RELAY)
    found = _TASK_RUNS.match(tail)
    if found:
        codec = FRONT_CODECS["parallel-tasks"]
        resource = found.group("id")
        if resource is None:
            return Route(codec, CREATE if method == "POST" else RELAY)
        return Route(codec, _TASK_READS[found.group("sub")] if method == "GET" else RELAY, resource)
    # Unmodelled path: answer errors in the upstream's own shape.
    return Route(UPSTREAM_CODECS.get(upstream_api) or FRONT_CODECS["gemini-interactions"], RELAY)


def _responses_route(method: str, found: re.Match[str]) -> Route:
    codec = FRONT_CODECS["openai-responses"]
    resource, sub = found.group("id"), found.group("sub")
    if resource is None:
        return Route(codec, CREATE if method == "POST" else RELAY)
    if sub == "/cancel":
        return Route(codec, CANCEL if method == "POST" else RELAY, resource)
    if sub == "/input_items":
        return Route(codec, INPUT_ITEMS if method == "GET" else RELAY, resource)
    if resource == "input_tokens" and sub is None and method == "POST":
        return Route(codec, COUNT_TOKENS)
    if resource == "compact" and method == "POST":
        return Route(codec, COMPACT)
    operation = {"GET": GET, "DELETE": DELETE}.get(method, RELAY)
    return Route(codec, operation, resource)
