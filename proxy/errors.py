"""Errors recall answers with. Each front codec renders them in its API's shape.

Statuses follow DESIGN.md: a permanent failure never gets a status that the
SDKs retry (408, 409, 429, 5xx), except a real upstream fault (502, 504).
"""

from __future__ import annotations


def succeeded(status: int) -> bool:
    """Whether a provider's answer is a success: any 2xx (Parallel answers a task-run create 202)."""
    return 200 <= status < 300


class ApiError(Exception):
    """An error answer: HTTP status, a snake_case code and a message for people.

    An error never leaves recall with a status that is not an error: a provider
    status outside 4xx/5xx that recall cannot use (a redirect, say) becomes 502,
    since an SDK reads a 2xx as a result and would hand the app an error body
    as if it were one."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None,
                 retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status if 400 <= status <= 599 else 502
        self.code = code
        self.message = message
        self.param = param
        # Said as Retry-After: a passing trouble of recall's own machine.
        self.retry_after_s = retry_after_s


class ContextOverflow(ApiError):
    """A provider's refusal of an input longer than its model's context window, with the tokens it
    counted and its limit where it said them. Every front API hears it with the provider's status
    (a 400, which no SDK retries) and, where its errors have codes, `context_length_exceeded`."""

    def __init__(self, refused: ApiError, tokens: int | None, limit: int | None) -> None:
        super().__init__(refused.status, CONTEXT_LENGTH_EXCEEDED, refused.message, param=refused.param)
        self.tokens = tokens
        self.limit = limit


CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


def bad_request(message: str, *, code: str = "invalid_request", param: str | None = None) -> ApiError:
    return ApiError(400, code, message, param=param)


def not_found(message: str, *, code: str = "not_found", param: str | None = None) -> ApiError:
    return ApiError(404, code, message, param=param)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message)


def too_large(limit_mb: int) -> ApiError:
    return ApiError(
        413,
        "request_too_large",
        f"request body is larger than {limit_mb} MB; raise [server] max_body_mb to accept it",
    )


def store_unavailable(cause: str) -> ApiError:
    """recall's database cannot take the turn: said before the provider is asked (nothing billed)."""
    return ApiError(503, "store_unavailable",
                    f"recall cannot write its database ({cause}), so it did not send this request to the provider;"
                    " free disk space or file descriptors on recall's machine (or stop what holds the database"
                    " locked), then retry", retry_after_s=5)


def upstream_unreachable(name: str, url: str, reason: str) -> ApiError:
    return ApiError(502, "upstream_unreachable", f"upstream '{name}' at {url} is unreachable: {reason}")


def upstream_timeout(name: str, timeout_s: float) -> ApiError:
    return ApiError(
        504,
        "upstream_timeout",
        f"upstream '{name}' did not answer within {timeout_s:g} s ([upstreams.{name}] timeout_s)",
    )


def upstream_bad_response(name: str, reason: str) -> ApiError:
    return ApiError(502, "upstream_bad_response", f"upstream '{name}' sent a response recall cannot read: {reason}")


class ReplayMiss(Exception):
    """Raised where a replaying recall would otherwise have opened a connection to a provider."""
