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


@dataclass(frozen=True, slots=True)
class Route:
    codec: Codec
    operation: str
    resource_id: str | None = None


# Interactions: any version segment (v1, v1beta, v1alpha...) or none.
_INTERACTIONS = re.compile(r"^(?:/v[^/]*)?/interactions(?:/(?P<id>[^/]+)(?P<cancel>/cancel)?)?/?$")
_GENERATE = re.compile(r"^(?:/v[^/]*)?/models/[^/]+:(?:stream)?[gG]enerateContent$")
_MESSAGES = re.compile(r"^/v1/messages/?$")


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
    if _GENERATE.match(tail):
        return Route(FRONT_CODECS["gemini-generate"], RELAY)
    # Unmodelled path: answer errors in the upstream's own shape.
    return Route(UPSTREAM_CODECS.get(upstream_api) or FRONT_CODECS["gemini-interactions"], RELAY)
