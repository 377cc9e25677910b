"""Who may call recall: programs on this machine, never a web page of another origin.

One rule for every route (the proxy's and the viewer's):

- `Host` must name this machine (127.0.0.0/8, localhost, [::1], with or without a port)
  or a name in `[server] allowed_hosts`: a page that points its own name at 127.0.0.1
  (DNS rebinding) is refused, since its requests carry its name.
- A request with a browser's marks of another origin (an `Origin` that is neither recall's
  own nor in `[server] cors_origins`, or `Sec-Fetch-Site: cross-site` / `same-site`) is
  refused: a "simple" cross-site POST (`Content-Type: text/plain`) needs no preflight, so
  without this any page could spend the operator's key (`api_key_env`).
- Preflights (OPTIONS) are answered here and never relayed: a provider's permissive CORS
  answer must not reach the browser. Allowed origins get the headers the SDKs' browser
  builds need (openai-node's `dangerouslyAllowBrowser`, anthropic's direct browser access).

Programs that are not browsers send neither `Origin` nor `Sec-Fetch-Site`: they are unaffected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web

from .auth import is_loopback

# Answered on a preflight for an allowed origin: every method the APIs use.
_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
# How long a browser may reuse a preflight answer (seconds).
_PREFLIGHT_MAX_AGE = "600"
_CROSS_SITE = ("cross-site", "same-site")


def split_host(value: str) -> tuple[str, str | None]:
    """`name[:port]` or `[v6]:port` as (name, port), the name lowercased, brackets kept."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        port = rest[1:] if rest.startswith(":") else None
        return name + "]", port or None
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, port
    return value, None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: a code, a message saying how to fix it, and a short reason for the log."""

    code: str
    message: str
    reason: str


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    allowed_hosts: frozenset[str] = frozenset()
    cors_origins: frozenset[str] = frozenset()

    @classmethod
    def of(cls, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()) -> OriginPolicy:
        return cls(frozenset(h.strip().lower() for h in allowed_hosts),
                   frozenset(o.strip().lower().rstrip("/") for o in cors_origins))

    def host_allowed(self, host: str | None) -> bool:
        """Whether a Host header names this machine, or a name the operator allowed
        (`recall.internal` allows it on any port; `recall.internal:8642` on that port only)."""
        if host is None:
            return True  # only HTTP/1.0 programs omit it; every browser sends it
        name, port = split_host(host)
        if name.rstrip(".") == "localhost" or is_loopback(name):
            return True
        return name in self.allowed_hosts or (port is not None and f"{name}:{port}" in self.allowed_hosts)

    def refusal(self, method: str, headers: Mapping[str, str]) -> Refusal | None:
        """The reason to refuse a request with these headers, or None to answer it."""
        host = headers.get("Host")
        if not self.host_allowed(host):
            # `loopback_only`: the code the viewer has always given this refusal.
            return Refusal("loopback_only",
                           f"recall answers requests addressed to localhost, 127.0.0.1 or [::1], not {host!r}"
                           " (a web page that points its own name at this machine sends that name); if this name"
                           " is really this recall's, add it to [server] allowed_hosts",
                           f"Host {host!r} not allowed")
        origin = headers.get("Origin")
        if origin is not None and self.origin_allowed(origin, host):
            return None
        fetch_site = headers.get("Sec-Fetch-Site", "").lower()
        if origin is not None or fetch_site in _CROSS_SITE:
            shown = origin if origin is not None else f"a {fetch_site} page"
            return Refusal("cross_origin_refused",
                           f"recall refuses requests from web pages of another origin ({shown}): such a page could"
                           " spend your provider key or read your conversations; to allow one origin, add it to"
                           " [server] cors_origins (e.g. cors_origins = [\"http://localhost:3000\"])",
                           f"cross-origin request from {shown!r}")
        return None

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """recall's own origin (the viewer's page), or one in `[server] cors_origins`."""
        origin = origin.strip().lower().rstrip("/")
        return origin in self.cors_origins or (host is not None and origin == f"http://{host.strip().lower()}")

    def cors_origin(self, headers: Mapping[str, str]) -> str | None:
        """The request's Origin when it is one of `[server] cors_origins` (its answers then say so)."""
        origin = headers.get("Origin")
        if origin is not None and origin.strip().lower().rstrip("/") in self.cors_origins:
            return origin
        return None


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return method == "OPTIONS" and "Origin" in headers


def preflight_headers(origin: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The answer to an allowed origin's preflight: whatever headers its request asks to send
    (the SDKs send their keys and `x-stainless-*`, `anthropic-*`, `x-goog-*` headers)."""
    out = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": _METHODS,
        "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE,
        "Vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    }
    asked = headers.get("Access-Control-Request-Headers")
    if asked:
        out["Access-Control-Allow-Headers"] = asked
    if headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        # Chrome asks before a public page reaches a loopback address: the operator allowed this origin.
        out["Access-Control-Allow-Private-Network"] = "true"
    return out


def cors_headers(origin: str) -> dict[str, str]:
    """On every answer to an allowed origin: it may read it, and the headers SDKs read (request ids)."""
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": "*", "Vary": "Origin"}


# -- applying the rule to an aiohttp application --------------------------------------------

Render = Callable[[web.Request, Refusal], web.StreamResponse]
REFUSED = web.RequestKey("recall_refused", str)
_POLICY = web.AppKey("recall_origin_policy", OriginPolicy)


def guard(app: web.Application, policy: OriginPolicy, render: Render) -> None:
    """Apply the rule to every route of `app`: refusals rendered by `render` (in the front
    API's shape for the proxy's routes), preflights answered, CORS headers on answers."""
    app[_POLICY] = policy

    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        refused = policy.refusal(request.method, request.headers)
        if refused is None and is_preflight(request.method, request.headers):
            if policy.cors_origin(request.headers) is None:
                # recall's own page never needs a preflight: any other origin is not allowed.
                origin = request.headers.get("Origin")
                refused = Refusal("cross_origin_refused",
                                  f"recall refuses requests from web pages of another origin ({origin!r}); to allow"
                                  " this one, add it to [server] cors_origins", f"preflight from {origin!r}")
            else:
                return web.Response(status=204)  # its headers: _cors_answer
        if refused is not None:
            request[REFUSED] = refused.reason  # no CORS headers on its answer (its log line has the message)
            response = render(request, refused)
            response.set_status(403)
            return response
        return await handler(request)

    app.middlewares.append(check)
    app.on_response_prepare.append(_cors_answer)


async def _cors_answer(request: web.Request, response: web.StreamResponse) -> None:
    """A provider's own CORS headers never reach a browser; an allowed origin gets recall's."""
    for name in [n for n in response.headers if n.lower().startswith("access-control-")]:
        response.headers.popall(name, None)
    policy = request.app[_POLICY]
    origin = policy.cors_origin(request.headers)
    if origin is None or REFUSED in request:
        return
    if is_preflight(request.method, request.headers):
        response.headers.update(preflight_headers(origin, request.headers))
    else:
        response.headers.update(cors_headers(origin))
