"""What recall sent the provider for an emulated turn, rebuilt on demand.

In emulate mode the self-contained request recall sends upstream is derived
data (the turn's own request plus its chain), so only its SHA-256 is stored
(`exchanges.upstream_digest`). `recall show --raw` rebuilds it the way the
server did: the app's recorded request parsed by its front API's codec, the
conversation of the chain before the turn, and the upstream's codec building
the call. The rebuilt body's digest is compared with the stored one, so the
output says whether this is byte for byte what was sent or only an
approximation (a turn erased from the chain since, a changed config, another
recall version).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import orjson

from ..codecs import FRONT_CODECS
from ..config import Config
from ..errors import ApiError
from ..pipeline.call import Call
from ..pipeline.provider_call import digest_of, upstream_request
from ..pipeline.state import history
from ..store.records import Exchange, Node


@dataclass(slots=True)
class Rebuilt:
    method: str | None = None
    path: str | None = None
    body: dict[str, Any] | None = None
    matches: bool = False  # its digest is the one recorded when the turn was sent
    problem: str | None = None  # why it could not be rebuilt

    def record(self) -> dict[str, Any]:
        return {"rebuilt": True, "method": self.method, "path": self.path, "body": self.body,
                "matches_recorded_digest": self.matches, "problem": self.problem}


def rebuild_upstream_request(chain: list[Node], exchange: Exchange, config: Config) -> Rebuilt | None:
    """The upstream request of the exchange that made the last node of `chain`, or None if
    recall sent none of its own (native mode and relays forward the app's request as it is)."""
    if not exchange.upstream_digest:
        return None
    front = FRONT_CODECS.get(exchange.front or "")
    upstream = config.upstreams.get(exchange.upstream)
    if front is None or upstream is None:
        return Rebuilt(problem=f"the upstream '{exchange.upstream}' or front API '{exchange.front}' is not in"
                               " the current config")
    if not exchange.request_body:
        return Rebuilt(problem="the app's request was not stored")
    try:
        req = front.parse_create(orjson.loads(exchange.request_body))
        if req.conversation:
            return Rebuilt(problem="the turn continued an OpenAI conversation; its items are not rebuilt here")
        before = [node.interaction for node in chain[:-1]]
        req = front.continuing(req, before)
        # upstream_request reads only the call's front codec and upstream: the rest of a live Call
        # (headers, body, owner) plays no part in building the upstream request.
        call = cast(Call, SimpleNamespace(route=SimpleNamespace(codec=front), upstream=upstream))
        _, upstream_call = upstream_request(call, req, history(before), thread=chain[0].interaction.id)
    except (ApiError, ValueError, KeyError, TypeError) as exc:
        return Rebuilt(problem=f"could not be rebuilt: {getattr(exc, 'message', None) or exc!r}")
    return Rebuilt(upstream_call.method, upstream_call.path, upstream_call.body,
                   digest_of(upstream_call) == exchange.upstream_digest)
