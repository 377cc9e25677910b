"""recall's own compaction tokens: a summary sealed with a key recall keeps.

When recall compacts a conversation on an upstream that has no compaction of its own,
the app gets an OpenAI-style compaction item whose `encrypted_content` is such a token.
A client that stores nothing (store=false, an agent's own session) carries it and sends
it back; recall reads the summary out of it and refuses one it did not seal. The token
is signed (HMAC-SHA256), not encrypted: it holds the app's own conversation, summarised.

The key is 32 random bytes in a file beside the database (made on first use, readable
by its owner only), or hex in RECALL_SEAL_KEY for several recall instances that share
one database and so must read each other's tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

import orjson

# Every token starts so: a codec tells recall's tokens from a provider's without the key.
SEALED_PREFIX = "recall-compaction.v1."
KEY_ENV = "RECALL_SEAL_KEY"
_KEY_BYTES = 32

log = logging.getLogger("recall")


class ForgedToken(ValueError):
    """A token recall did not seal (or one changed since), or not a token at all."""


def is_sealed(token: object) -> bool:
    return isinstance(token, str) and token.startswith(SEALED_PREFIX)


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def beside(cls, database: str | Path) -> Sealer:
        """The sealer of the database at `database`: RECALL_SEAL_KEY, else the key file beside a
        SQLite file. Instances sharing a PostgreSQL database must share RECALL_SEAL_KEY: without
        it each one seals with a key of its own run (a sealed item another one made is refused)."""
        shared = os.environ.get(KEY_ENV)
        if shared:
            try:
                return cls(bytes.fromhex(shared))
            except ValueError:
                raise ValueError(f"{KEY_ENV} must be hex (e.g. `python -c 'import secrets;"
                                 f" print(secrets.token_hex(32))'`)") from None
        if not isinstance(database, Path):
            log.warning("%s is not set: compaction items sealed now are readable by this instance until it stops;"
                        " give every instance on this database the same %s", KEY_ENV, KEY_ENV)
            return cls(secrets.token_bytes(_KEY_BYTES))
        path = database.with_name(database.name + ".seal-key")
        try:
            return cls(_read_or_make(path))
        except OSError as exc:
            # A read-only place: tokens sealed now are readable until recall stops.
            log.warning("compaction key %s could not be kept (%s); using one for this run only", path, exc)
            return cls(secrets.token_bytes(_KEY_BYTES))

    def seal(self, summary: str) -> str:
        payload = _b64(orjson.dumps({"summary": summary}))
        return f"{SEALED_PREFIX}{payload}.{_b64(self._mac(payload))}"

    def open(self, token: str) -> str:
        """The summary a token holds; ForgedToken when recall did not seal it."""
        if not is_sealed(token):
            raise ForgedToken("not a recall compaction token")
        payload, _, mac = token[len(SEALED_PREFIX):].partition(".")
        try:
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        except ValueError:
            raise ForgedToken("the token's signature is not base64") from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise ForgedToken("the token's signature does not match")
        summary = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("summary")
        if not isinstance(summary, str):
            raise ForgedToken("the token holds no summary")
        return summary

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _read_or_make(path: Path) -> bytes:
    try:
        key = path.read_bytes()
        if len(key) == _KEY_BYTES:
            return key
        raise OSError(f"the file holds {len(key)} bytes, not {_KEY_BYTES}")
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(_KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two recalls starting on one database at once agree on the first one's key.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as out:
        out.write(key)
    return key
