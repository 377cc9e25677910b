"""`recall stats` on PostgreSQL: audit_stats.py's figures, aggregated inside PostgreSQL.

The same facts (one row per request from the exchange log, one per interaction), the same
groups and the same median; the differences are the dialect's. A relayed call's model is
read off its request body with a pattern (`"model": "…"`) rather than SQLite's
json_extract, because PostgreSQL 15 has no way to test a body for valid JSON (or UTF-8)
without failing the whole query on the first that is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import STATS_KEYS, StatsRow

if TYPE_CHECKING:
    import asyncpg


def _asked_model(row: str) -> str:
    """SQL for the model an exchange row's request names: a `/models/NAME:method` path, else
    the body's `"model"` string. Evaluated only where the columns before it are NULL."""
    return (f"coalesce(substring({row}.path from '/models/([^:]+):'),"
            f" substring(encode({row}.request_body, 'escape') from '\"model\"\\s*:\\s*\"([^\"\\\\]*)\"'))")


# Every request and every interaction as one row of figures ($1 since, $2 until).
_FACTS = f"""
facts AS (
    SELECT to_char(to_timestamp(e.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, e.upstream AS upstream,
           -- a replay hit's row names no interaction: its model is its recording's
           coalesce(e.model, i.model, {_asked_model("e")}, CASE WHEN e.cache = 'hit' THEN (
               SELECT coalesce(r.model, ri.model, {_asked_model("r")}) FROM exchanges AS r
               LEFT JOIN interactions AS ri ON ri.id = r.interaction_id
               WHERE r.cache_key = e.cache_key AND coalesce(r.cache, '') != 'hit'
               ORDER BY r.id LIMIT 1) END) AS model,
           1 AS requests, 0 AS interactions,
           CASE WHEN e.interaction_id IS NULL THEN e.input_tokens END AS input_tokens,
           CASE WHEN e.interaction_id IS NULL THEN e.output_tokens END AS output_tokens,
           (e.status >= 400 OR e.error IS NOT NULL)::int AS errors,
           e.latency_ms AS latency_ms,
           coalesce((e.cache = 'hit')::int, 0) AS replay_hits
    FROM exchanges AS e LEFT JOIN interactions AS i ON i.id = e.interaction_id
    WHERE ($1::float8 IS NULL OR e.created_at >= $1) AND ($2::float8 IS NULL OR e.created_at < $2)
    UNION ALL
    SELECT to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), upstream, model, 0, 1,
           input_tokens, output_tokens, 0, NULL::float8, 0
    FROM interactions
    WHERE ($1::float8 IS NULL OR created_at >= $1) AND ($2::float8 IS NULL OR created_at < $2)
)
"""


def _keys(by: tuple[str, ...]) -> tuple[str, ...]:
    unknown = set(by) - set(STATS_KEYS)
    if unknown:
        raise ValueError(f"cannot group by {', '.join(sorted(unknown))}; choose from {', '.join(STATS_KEYS)}")
    return by


async def stats(db: asyncpg.Connection, *, by: tuple[str, ...], since: float | None,
                until: float | None) -> list[StatsRow]:
    """Requests, errors and p50 latency per --by group (audit_stats.stats, whose rules these are)."""
    keys = ", ".join(_keys(by))
    group = f"GROUP BY {keys}" if by else ""
    partition = f"PARTITION BY {keys}" if by else ""
    # SQLite sorts NULL first and text byte by byte: so do these.
    order = ", ".join(f'{key} COLLATE "C" NULLS FIRST' for key in by) or "1"
    rows = await db.fetch(
        f"""
        WITH {_FACTS},
        ranked AS (
            SELECT *,
                   row_number() OVER ({partition} ORDER BY latency_ms IS NULL, latency_ms) AS n,
                   count(latency_ms) OVER ({partition}) AS measured
            FROM facts
        )
        SELECT {keys + "," if by else ""}
               sum(requests)::bigint, sum(interactions)::bigint, coalesce(sum(input_tokens), 0)::bigint,
               coalesce(sum(output_tokens), 0)::bigint, sum(errors)::bigint,
               avg(CASE WHEN n IN ((measured + 1) / 2, (measured + 2) / 2) THEN latency_ms END),
               sum(replay_hits)::bigint
        FROM ranked {group}
        ORDER BY {order}
        """,
        since, until,
    )
    out = []
    for record in rows:
        row = tuple(record)
        key = dict(zip(by, row[: len(by)], strict=True))
        requests, interactions, tokens_in, tokens_out, errors, p50, hits = row[len(by):]
        if requests or interactions:
            out.append(StatsRow(key, requests, interactions, tokens_in, tokens_out, errors, p50, hits))
    return out


async def token_usage(db: asyncpg.Connection, *, by: tuple[str, ...], since: float | None,
                      until: float | None) -> list[tuple[dict[str, str | None], str | None, int, int]]:
    """Tokens in and out per --by group and model, for pricing."""
    keys = ", ".join(_keys(by))
    rows = await db.fetch(
        f"""
        WITH {_FACTS}
        SELECT {keys + "," if by else ""} model, coalesce(sum(input_tokens), 0)::bigint,
               coalesce(sum(output_tokens), 0)::bigint
        FROM facts GROUP BY {keys + "," if by else ""} model
        """,
        since, until,
    )
    out: list[tuple[dict[str, str | None], str | None, int, int]] = []
    for record in rows:
        row = tuple(record)
        out.append((dict(zip(by, row[: len(by)], strict=True)), row[len(by)], row[len(by) + 1], row[len(by) + 2]))
    return out
