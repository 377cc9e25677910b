"""Who may use the viewer, and the headers every viewer answer carries.

Without `[server] tokens` the viewer answers loopback clients only, and only
requests addressed to a loopback name: a web page elsewhere that points its
own host name at 127.0.0.1 (DNS rebinding) is refused. With tokens, any
client that can reach the listener may load the page, and every API call
needs a valid X-Recall-Token.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from ..auth import is_loopback, token_ok
from ..origin import OriginPolicy

# The viewer without tokens: loopback names only, by the same rule as every other route.
_LOOPBACK_ONLY = OriginPolicy()

# Only the package's own script and style; stored data is never markup (Trusted
# Types make any innerHTML assignment throw), images may be data: URLs built
# from stored base64, and nothing may frame the page.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class ViewerError(Exception):
    """An answer other than the data asked for: status, code and a message saying what to do."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def check_access(request: web.Request, tokens: Sequence[str], *, api: bool) -> None:
    """Raise ViewerError unless this request may be answered (`api`: it reads stored data)."""
    if tokens:
        if api and not token_ok(request.headers, tokens):
            raise ViewerError(401, "unauthenticated",
                          "this recall has [server] tokens: send one in the X-Recall-Token header")
        return
    if not is_loopback(request.remote):
        raise ViewerError(403, "loopback_only",
                      "without [server] tokens the viewer answers this machine only;"
                      " set [server] tokens to open it to other clients")
    if request.headers.get("Host") is None or not _LOOPBACK_ONLY.host_allowed(request.headers["Host"]):
        raise ViewerError(403, "loopback_only",
                      f"the viewer answers requests for localhost, 127.0.0.1 or [::1], not {request.host!r};"
                      " open it at its loopback address")
