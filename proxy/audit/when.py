"""Moments and durations as people type them: `2026-01-31`, `2026-01-31T09:30`, `30d`, `12h`."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from ..codecs.base import iso_time

_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `30d`, `12h`, `90min`, `45s` or `2w`.

    `m` is refused: `purge --older-than 1m` erases everything older than a minute
    to someone and a month to someone else, and erasing cannot be undone."""
    found = _DURATION.match(text.lower())
    if found and found.group(2) in ("m", "mo", "month", "months"):
        number = found.group(1)
        raise ValueError(f"{text!r} is ambiguous (minutes or months?): write {number}min for minutes,"
                         f" or days for months ({int(float(number) * 30)}d)")
    if not found or found.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit: 30d, 12h, 90min, 45s or 2w")
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_moment(text: str, now: float | None = None) -> float:
    """Epoch seconds for an ISO date or time (UTC unless it says otherwise),
    or for a duration meaning that long ago (`7d`)."""
    try:
        return (time.time() if now is None else now) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date, a time or a duration; write 2026-01-31, 2026-01-31T09:30 or 7d (ago)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def utc(epoch: float | None) -> str | None:
    """An ISO 8601 UTC time (`2026-01-31T09:30:00Z`), or None."""
    return None if epoch is None else iso_time(epoch)


def short_utc(epoch: float | None) -> str:
    """A compact UTC time for tables: `2026-01-31 09:30`."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")
