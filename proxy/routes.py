"""Which front API and operation a path under an upstream names.

Paths are matched on the decoded path (aiohttp decodes %2F) but relayed raw.
A path no front API claims is relayed unchanged and recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .codecs import FRONT_CODECS, UPSTREAM_CODECS, Codec

CREATE = "create"
GET = "get"
DELETE = "delete"
CANCEL = "cancel"
RELAY = "relay"
# Parallel task runs (proxy/task_runs.py).
TASK_CREATE = "task_create"
TASK_GET = "task_get"
TASK_RESULT = "task_result"
TASK_INPUT = "task_input"
TASK_EVENTS = "task_events"


@dataclass(frozen=True, slots=True)
class Route:
    codec: Codec
    operation: str
    resource_id: str | None = None


# Interactions: any version segment (v1, v1beta, v1alpha...) or none.
_INTERACTIONS = re.compile(r"^(?:/v[^/]*)?/interactions(?:/(?P<id>[^/]+)(?P<cancel>/cancel)?)?/?$")
_GENERATE = re.compile(r"^(?:/v[^/]*)?/models/[^/]+:(?:stream)?[gG]enerateContent$")
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
    if _GENERATE.match(tail):
        return Route(FRONT_CODECS["gemini-generate"], RELAY)
    found = _TASK_RUNS.match(tail)
    if found:
        codec = FRONT_CODECS["parallel-tasks"]
        resource = found.group("id")
        if resource is None:
            return Route(codec, TASK_CREATE if method == "POST" else RELAY)
        return Route(codec, _TASK_READS[found.group("sub")] if method == "GET" else RELAY, resource)
    # Unmodelled path: answer errors in the upstream's own shape.
    return Route(UPSTREAM_CODECS.get(upstream_api) or FRONT_CODECS["gemini-interactions"], RELAY)
