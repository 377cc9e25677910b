"""Cursor pages of items, as OpenAI lists them (`input_items`, conversation items).

`?limit=&order=&after=`; the page always says `has_more`, since the SDK's
auto-paging otherwise keeps asking until a page comes back empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import bad_request

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def cursor_page(items: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of `items` (oldest first, each with an `id`) for a list request's query."""
    raw_limit = query.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise bad_request(f"limit: expected a number from 1 to {MAX_LIMIT}; got {raw_limit!r}", param="limit")
    limit = int(raw_limit)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request(f"order: expected 'asc' or 'desc'; got {order!r}", param="order")
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after:
        position = next((i for i, item in enumerate(ordered) if item.get("id") == after), None)
        if position is None:
            raise bad_request(f"after: no item with id '{after}' is in this list", param="after")
        ordered = ordered[position + 1:]
    return page(ordered[:limit], has_more=len(ordered) > limit)


def page(data: list[dict[str, Any]], *, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}
