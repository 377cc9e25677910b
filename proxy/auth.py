"""Credentials: who is calling (owner fingerprints), and what never gets stored.

The app's provider key passes through recall to the provider; only a short
hash of it is kept, as the owner of the interactions it creates.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode

from .codecs import KEY_HEADERS

# The credential carriers of every SDK recall supports, one table: the headers in the
# order they identify the caller (a bearer token last: it may be an OAuth token beside a
# key), and the query parameters. Everything that decides owners, replaces keys
# (`api_key_env`) or keeps them out of replay keys reads this table.
CREDENTIAL_HEADERS: tuple[str, ...] = (
    *(name for name in KEY_HEADERS if name != "authorization"),  # the codecs' own: x-goog-api-key, x-api-key
    "api-key",                    # Azure OpenAI (openai's AzureOpenAI client)
    "ocp-apim-subscription-key",  # Azure API Management in front of a model
    "authorization",              # Bearer: openai, anthropic's auth_token, Google OAuth, Azure AD
)
CREDENTIAL_QUERY_PARAMS: tuple[str, ...] = (
    "key",                # Google's ?key=
    "api_key", "apikey", "api-key",
    "subscription-key",   # Azure API Management
    "access_token",       # OAuth 2 bearer in the query (RFC 6750)
)
RECALL_TOKEN_HEADER = "x-recall-token"
# Kept for the modules that import it: the query parameters that carry a provider credential.
SECRET_QUERY_PARAMS = frozenset(CREDENTIAL_QUERY_PARAMS)
# Never written to the database nor sent upstream as-is (besides names that look secret, below).
SECRET_HEADERS = frozenset({*CREDENTIAL_HEADERS, RECALL_TOKEN_HEADER, "proxy-authorization", "cookie", "set-cookie"})

# The conservative default for names no table lists: any header or parameter whose name
# says key, token, secret, signature, auth or password is kept out of the database and the
# log. Matched on the name's words (`x-custom-api-key`, `pageToken`, `X-Amz-Signature`),
# not on any substring, so that `x-ratelimit-remaining-tokens` stays in the audit record.
_SECRET_WORDS = ("key", "token", "secret", "signature", "password", "passwd", "credential", "credentials")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
# Names that look secret but identify no caller: never an owner (they are still redacted).
_NOT_CALLER = frozenset({RECALL_TOKEN_HEADER, "cookie", "set-cookie", "idempotency-key", "proxy-authorization"})

ANONYMOUS = "anonymous"


def looks_secret(name: str) -> bool:
    """Whether a header or query parameter name says it carries a secret."""
    lower = name.lower()
    if lower in SECRET_HEADERS or lower in SECRET_QUERY_PARAMS:
        return True
    for word in _WORD_SPLIT.split(lower):
        if word.startswith("auth") or word == "sig" or word.endswith(_SECRET_WORDS):
            return True
    return False


def _bearer(value: str) -> str:
    scheme, _, token = value.partition(" ")
    return token if scheme.lower() == "bearer" and token else value


def provider_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The provider credential the app sent in one of the table's carriers, as the provider
    reads it (a bearer token without its scheme): what recall may move to another header."""
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value:
            return _bearer(value).strip()
    for name in CREDENTIAL_QUERY_PARAMS:
        if query.get(name):
            return query[name]
    return None


def caller_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """What identifies the caller: the provider credential from whichever carrier is present,
    else any other header whose name says it holds a secret (a credential recall has no row
    for still identifies its caller: a request with one is never `anonymous`)."""
    key = provider_key(headers, query)
    if key is not None:
        return key
    for name, value in headers.items():
        if value and name.lower() not in _NOT_CALLER and looks_secret(name):
            return f"{name.lower()}\x00{_bearer(value).strip()}"
    return None


def fingerprint(key: str | None) -> str:
    """A short, one-way owner id for a credential; `anonymous` without one."""
    if not key:
        return ANONYMOUS
    return "k_" + hashlib.sha256(b"recall-owner\x00" + key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def redacted_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers fit for the audit log: every credential removed."""
    kept: dict[str, str] = {}
    for name, value in headers:
        lower = str(name).lower()
        if looks_secret(lower):
            continue
        value = _printable(value)
        kept[lower] = f"{kept[lower]}, {value}" if lower in kept else value
    return kept


def _printable(value: str) -> str:
    """A header value as valid text: bytes that were not UTF-8 (kept by the HTTP parser
    as surrogates) become U+FFFD, so the record can be written as JSON."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def redacted_query(query_string: str) -> str:
    """A query string without credential parameters (`?key=`, `?access_token=`, or any name that looks secret)."""
    if not query_string:
        return ""
    pairs = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if not looks_secret(k)]
    return urlencode(pairs)


def token_ok(headers: Mapping[str, str], tokens: Iterable[str]) -> bool:
    """Whether the request carries one of the proxy tokens in X-Recall-Token (compared in constant time)."""
    sent = headers.get(RECALL_TOKEN_HEADER, "")
    return any(hmac.compare_digest(sent.encode(), token.encode()) for token in tokens)


def is_loopback(host: str | None) -> bool:
    """Whether an address or host name (`localhost`, `127.0.0.1`, `::1`, `[::1]`) is this machine only."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
