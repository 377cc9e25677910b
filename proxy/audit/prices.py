"""What tokens cost, from a maintained price table (the `genai-prices` package).

Prices change and new models appear every month; a table typed into recall
would be wrong within weeks. genai-prices (by the Pydantic team) is updated
with the providers' price pages and matches model names the way providers
spell them. It is an optional dependency (`pip install 'recall-proxy[cost]'`):
without it, or for a model it does not know, the cost is unknown (None), never
zero, so a total is never quietly too low.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _calc_price() -> Any:
    try:
        from genai_prices import Usage, calc_price
    except ImportError:
        return None
    return calc_price, Usage


def pricing_available() -> bool:
    return _calc_price() is not None


@cache
def price_usd(model: str | None, input_tokens: int, output_tokens: int) -> float | None:
    """The list price of these tokens on `model` in US dollars, or None if it is not known."""
    found = _calc_price()
    if found is None or not model:
        return None
    if not input_tokens and not output_tokens:
        return 0.0
    calc_price, usage = found
    try:
        result = calc_price(usage(input_tokens=input_tokens, output_tokens=output_tokens), model_ref=model)
    except LookupError:
        return None
    return float(result.total_price)


def price_rows(rows: list[Any], usage: list[tuple[dict[str, Any], str | None, int, int]]) -> None:
    """Set each stats row's cost from the per-model token counts of its group.

    A group with tokens on a model without a known price gets no cost (None) and
    names that model in `unpriced_models`."""
    known: dict[tuple[Any, ...], float] = {}
    unpriced: dict[tuple[Any, ...], set[str]] = {}
    for key, model, tokens_in, tokens_out in usage:
        group = tuple(sorted(key.items()))
        cost = price_usd(model, tokens_in, tokens_out)
        if cost is None:
            if tokens_in or tokens_out:  # tokens with no price: the group's cost is unknown
                unpriced.setdefault(group, set()).add(model or "(no model)")
        else:
            known[group] = known.get(group, 0.0) + cost
    for row in rows:
        group = tuple(sorted(row.key.items()))
        row.unpriced_models = sorted(unpriced.get(group, ()))
        row.cost_usd = None if row.unpriced_models or not pricing_available() else known.get(group, 0.0)
