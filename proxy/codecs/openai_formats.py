"""How both OpenAI wire APIs write values: data URLs for inline media, call arguments
as a JSON string, function results as a string, and item ids derived from where an item
sits. They need nothing of recall's, so the modules an OpenAI codec is split into use
them without standing on the codec base (openai_common) first.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def stable_id(prefix: str, *parts: object) -> str:
    """An id derived from where an item sits, so that every rendering of a node agrees on it."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return f"{prefix}{digest[:40]}"


def data_url(mime_type: str | None, data: str) -> str:
    return f"data:{mime_type or 'application/octet-stream'};base64,{data}"


def split_data_url(url: str) -> tuple[str | None, str] | None:
    """(mime type, base64 data) of a `data:` URL, or None for any other URL."""
    if not url.startswith("data:"):
        return None
    head, _, data = url[5:].partition(",")
    mime_type = head.split(";", 1)[0] or None
    return mime_type, data


def arguments_json(arguments: Any) -> str:
    """A call's arguments as the JSON string OpenAI carries them in."""
    if isinstance(arguments, dict) and set(arguments) == {"_unparsed"}:
        return str(arguments["_unparsed"])
    return orjson.dumps(arguments if arguments is not None else {}).decode()


def parse_arguments(raw: Any) -> Any:
    """A call's JSON-string arguments as an object (kept verbatim when they are not JSON)."""
    if not isinstance(raw, str):
        return raw if raw is not None else {}
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_unparsed": raw}


def result_text(result: Any) -> str:
    """A function result as the string a tool message / function_call_output carries."""
    return result if isinstance(result, str) else orjson.dumps(result).decode()
