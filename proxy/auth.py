"""Credentials: who is calling (owner fingerprints), and what never gets stored.

The app's provider key passes through recall to the provider; only a short
hash of it is kept, as the owner of the interactions it creates.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode

from .codecs import KEY_HEADERS

# Headers that carry a credential, in the order they identify the caller.
CREDENTIAL_HEADERS = KEY_HEADERS
RECALL_TOKEN_HEADER = "x-recall-token"
# Never written to the database nor sent upstream as-is.
SECRET_HEADERS = frozenset({*CREDENTIAL_HEADERS, RECALL_TOKEN_HEADER, "proxy-authorization", "cookie", "set-cookie"})
SECRET_QUERY_PARAMS = frozenset({"key", "api_key"})

ANONYMOUS = "anonymous"


def caller_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The provider credential the app sent, whichever way its SDK sends it."""
    for name in CREDENTIAL_HEADERS:
        value = headers.get(name)
        if value:
            if name == "authorization":
                scheme, _, token = value.partition(" ")
                value = token if scheme.lower() == "bearer" and token else value
            return value.strip()
    for name in SECRET_QUERY_PARAMS:
        if query.get(name):
            return query[name]
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
        if lower in SECRET_HEADERS:
            continue
        value = _printable(value)
        kept[lower] = f"{kept[lower]}, {value}" if lower in kept else value
    return kept


def _printable(value: str) -> str:
    """A header value as valid text: bytes that were not UTF-8 (kept by the HTTP parser
    as surrogates) become U+FFFD, so the record can be written as JSON."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def redacted_query(query_string: str) -> str:
    """A query string without credential parameters (`?key=` in Google's style)."""
    if not query_string:
        return ""
    pairs = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if k not in SECRET_QUERY_PARAMS]
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
