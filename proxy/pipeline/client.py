"""Calls to providers: one shared aiohttp ClientSession, timeouts, header hygiene.

Provider faults become ApiErrors with the statuses DESIGN.md fixes: unreachable
502, timeout 504, a broken connection or body 502.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict

from ..auth import CREDENTIAL_HEADERS, SECRET_QUERY_PARAMS, provider_key
from ..codecs import Codec
from ..config import Upstream
from ..errors import ReplayMiss, upstream_bad_response, upstream_timeout, upstream_unreachable
from ..limits import out_of_files

# Never forwarded: hop-by-hop headers, ones aiohttp sets itself, recall's own.
# accept-encoding is dropped so that aiohttp negotiates and decodes compression
# itself: recall parses bodies and must not relabel them.
# content-encoding (and content-length) are dropped because every body recall sends is
# one it has read, which aiohttp's server decoded (gzip, deflate, br, zstd): sending it on
# labelled `gzip` would make the provider decode plain JSON. The client sets the length.
_DROPPED_REQUEST_HEADERS = frozenset({
    "host", "content-length", "connection", "keep-alive", "proxy-connection", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade", "accept-encoding", "content-encoding",
})
# Not relayed back: hop-by-hop, and encodings aiohttp already undid.
DROPPED_RESPONSE_HEADERS = frozenset({
    "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "date", "server",
})


# The total-time backstop runs this much past stream_max_s, so that a stream's own limit,
# which says which key to raise, is what ends it.
_BACKSTOP_S = 5.0


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: CIMultiDict[str]
    body: bytes


def forward_headers(headers: Mapping[str, str], upstream: Upstream, codec: Codec | None) -> CIMultiDict[str]:
    """The app's headers as the provider should see them.

    The app's own key passes through unless the upstream names `api_key_env`,
    whose key then replaces every credential the app sent. Headers the
    provider's API requires and the app did not send are added.
    """
    out: CIMultiDict[str] = CIMultiDict()
    replacing = bool(upstream.api_key_env)
    for name, value in headers.items():
        lower = name.lower()
        if lower in _DROPPED_REQUEST_HEADERS or lower.startswith("x-recall-"):
            continue
        if replacing and lower in CREDENTIAL_HEADERS:
            continue
        out.add(name, value)
    if replacing and codec is not None:
        key = os.environ.get(upstream.api_key_env or "", "")
        out[codec.auth_header] = codec.auth_prefix + key
    elif codec is not None and codec.reads_key_header_only:
        _move_key(out, codec, provider_key(headers, {}))
    if codec is not None:
        for name, value in codec.required_headers.items():
            out.setdefault(name, value)
    return out


def _move_key(headers: CIMultiDict[str], codec: Codec, key: str | None) -> None:
    """Put the app's key in the one header `codec`'s provider reads, and no other."""
    if not key:
        return
    for name in CREDENTIAL_HEADERS:
        headers.popall(name, None)
    headers[codec.auth_header] = codec.auth_prefix + key


def translated_headers(headers: Mapping[str, str], query: Mapping[str, str], upstream: Upstream,
                       front: Codec, codec: Codec) -> CIMultiDict[str]:
    """Headers for a call recall builds in `codec`'s API for an app of `front`'s API.

    Where the two APIs take keys in different headers (a Parallel app's
    `x-api-key` for a Gemini upstream), or the app sent its key as `?key=`
    (the built call has no query), the key moves to the header the provider reads."""
    out = forward_headers(headers, upstream, codec)
    differ = (front.auth_header, front.auth_prefix) != (codec.auth_header, codec.auth_prefix)
    if not upstream.api_key_env and (differ or provider_key(headers, {}) is None):
        _move_key(out, codec, provider_key(headers, query))
    return out


def forward_query(query: Mapping[str, str], upstream: Upstream) -> list[tuple[str, str]]:
    return [(k, v) for k, v in query.items() if not (upstream.api_key_env and k in SECRET_QUERY_PARAMS)]


class UpstreamClient:
    def __init__(self, *, offline: bool = False, max_connections: int = 0) -> None:
        self._session: aiohttp.ClientSession | None = None
        # In replay mode recall never opens a connection to a provider.
        self.offline = offline
        # At most this many connections to providers, busy or kept alive (0: no limit): each
        # is a file descriptor, counted in [server] max_connections (proxy/limits.py).
        self.max_connections = max_connections

    async def start(self) -> None:
        # One session with keep-alive for every provider; per-upstream timeouts
        # are given per request.
        connector = aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the upstream client is not started")
        return self._session

    async def open(
        self,
        upstream: Upstream,
        method: str,
        path: str,
        *,
        headers: CIMultiDict[str],
        body: bytes | None,
        query: list[tuple[str, str]] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response with its body still unread."""
        if self.offline:
            raise ReplayMiss(f"{method} {upstream.name}{path}")
        # `total` bounds every call, its body included, at the upstream's stream_max_s: a
        # provider that trickles bytes forever (after its app left, say) must not hold a
        # connection and a task for ever. Event streams meet their own limits first
        # (sse.iter_events, which names them); this is the backstop for bodies read whole.
        timeout = aiohttp.ClientTimeout(total=upstream.stream_max_s + _BACKSTOP_S,
                                        sock_connect=min(upstream.timeout_s, 30), sock_read=upstream.timeout_s)
        try:
            return await self.session.request(
                method, upstream.url + path, params=query or None, headers=headers, data=body,
                timeout=timeout, allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise upstream_timeout(upstream.name, upstream.timeout_s) from None
        except aiohttp.ClientConnectorError as exc:
            if out_of_files(exc):
                raise  # recall's own fault, not the provider's: a 503 (server._connection_limit)
            raise upstream_unreachable(upstream.name, upstream.url, str(exc.os_error or exc)) from None
        except aiohttp.ClientError as exc:
            raise upstream_bad_response(upstream.name, str(exc) or type(exc).__name__) from None

    async def send(
        self,
        upstream: Upstream,
        method: str,
        path: str,
        *,
        headers: CIMultiDict[str],
        body: bytes | None,
        query: list[tuple[str, str]] | None = None,
    ) -> UpstreamResponse:
        """Send a request and read the whole response."""
        response = await self.open(upstream, method, path, headers=headers, body=body, query=query)
        async with response:
            try:
                payload = await response.read()
            except TimeoutError:
                raise upstream_timeout(upstream.name, upstream.timeout_s) from None
            except aiohttp.ClientError as exc:
                raise upstream_bad_response(upstream.name, f"the connection broke mid-body ({exc or type(exc).__name__})") from None
        return UpstreamResponse(response.status, CIMultiDict(response.headers), payload)

