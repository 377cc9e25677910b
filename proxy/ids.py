"""Ids that recall mints for the apps it answers."""

from __future__ import annotations

import secrets

# 18 random bytes: 144 bits, above the 128 DESIGN.md asks for, and 24
# URL-safe characters ([A-Za-z0-9_-]) that SDKs put into paths unescaped.
_RANDOM_BYTES = 18


def mint_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(_RANDOM_BYTES)
