"""`recall stats` in SQL: requests, errors and latency from the exchange log, interactions
and tokens from the nodes, aggregated inside SQLite so a big file is never loaded whole."""

from __future__ import annotations

import sqlite3

from .records import STATS_KEYS, StatsRow


def _asked_model(row: str) -> str:
    """SQL for the model an exchange row's request names, for rows recall stored no model for
    (relayed calls): a `/models/NAME:method` path, else the JSON body's `model`. Evaluated
    only where the columns before it in a coalesce are NULL."""
    path = f"{row}.path"
    after = f"substr({path}, instr({path}, '/models/') + 8)"
    return (f"CASE WHEN instr({path}, '/models/') > 0 AND instr({after}, ':') > 1"
            f" THEN substr({after}, 1, instr({after}, ':') - 1)"
            f" WHEN json_valid(CAST({row}.request_body AS TEXT))"
            f" THEN json_extract(CAST({row}.request_body AS TEXT), '$.model') END")


# Every request and every interaction as one row of figures, for `stats` and `token_usage`
# (the SQL takes :since and :until).
_FACTS = f"""
facts AS (
                SELECT date(e.created_at, 'unixepoch') AS day, e.upstream AS upstream,
                       -- a replay hit's row names no interaction: its model is its recording's
                       coalesce(e.model, i.model, {_asked_model("e")}, CASE WHEN e.cache = 'hit' THEN (
                           SELECT coalesce(r.model, ri.model, {_asked_model("r")}) FROM exchanges AS r
                           LEFT JOIN interactions AS ri ON ri.id = r.interaction_id
                           WHERE r.cache_key = e.cache_key AND coalesce(r.cache, '') != 'hit'
                           ORDER BY r.id LIMIT 1) END) AS model,
                       1 AS requests, 0 AS interactions,
                       CASE WHEN e.interaction_id IS NULL THEN e.input_tokens END AS input_tokens,
                       CASE WHEN e.interaction_id IS NULL THEN e.output_tokens END AS output_tokens,
                       (e.status >= 400 OR e.error IS NOT NULL) AS errors,
                       e.latency_ms AS latency_ms,
                       coalesce(e.cache = 'hit', 0) AS replay_hits
                FROM exchanges AS e LEFT JOIN interactions AS i ON i.id = e.interaction_id
                WHERE (:since IS NULL OR e.created_at >= :since) AND (:until IS NULL OR e.created_at < :until)
                UNION ALL
                SELECT date(created_at, 'unixepoch'), upstream, model, 0, 1, input_tokens, output_tokens, 0, NULL, 0
                FROM interactions
                WHERE (:since IS NULL OR created_at >= :since) AND (:until IS NULL OR created_at < :until)
            )
"""


def stats(db: sqlite3.Connection, *, by: tuple[str, ...] = STATS_KEYS, since: float | None = None,
          until: float | None = None) -> list[StatsRow]:
    """Requests, errors and p50 latency from the exchange log; interactions and
    tokens from the nodes (deleted ones still count: they were sent), plus the
    tokens of unstored calls, whose exchange is their only record."""
    unknown = set(by) - set(STATS_KEYS)
    if unknown:
        raise ValueError(f"cannot group by {', '.join(sorted(unknown))}; choose from {', '.join(STATS_KEYS)}")
    keys = ", ".join(by)
    group = f"GROUP BY {keys}" if by else ""
    partition = f"PARTITION BY {keys}" if by else ""
    rows = db.execute(
        f"""
        WITH {_FACTS},
        ranked AS (
            SELECT *,
                   row_number() OVER ({partition} ORDER BY latency_ms IS NULL, latency_ms) AS n,
                   count(latency_ms) OVER ({partition}) AS measured
            FROM facts
        )
        SELECT {keys + "," if by else ""}
               sum(requests), sum(interactions), coalesce(sum(input_tokens), 0),
               coalesce(sum(output_tokens), 0), sum(errors),
               avg(CASE WHEN n IN ((measured + 1) / 2, (measured + 2) / 2) THEN latency_ms END),
               sum(replay_hits)
        FROM ranked {group}
        ORDER BY {keys or "1"}
        """,
        {"since": since, "until": until},
    )
    out = []
    for row in rows:
        key = dict(zip(by, row[: len(by)], strict=True))
        requests, interactions, tokens_in, tokens_out, errors, p50, hits = row[len(by):]
        if requests or interactions:
            out.append(StatsRow(key, requests, interactions, tokens_in, tokens_out, errors, p50, hits))
    return out

def token_usage(db: sqlite3.Connection, *, by: tuple[str, ...], since: float | None = None,
                until: float | None = None) -> list[tuple[dict[str, str | None], str | None, int, int]]:
    """Tokens in and out per --by group and model, for pricing (a price is per model)."""
    keys = ", ".join(by)
    rows = db.execute(
        f"""
        WITH {_FACTS}
        SELECT {keys + "," if by else ""} model, coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0)
        FROM facts GROUP BY {keys + "," if by else ""} model
        """,
        {"since": since, "until": until},
    )
    return [(dict(zip(by, row[: len(by)], strict=True)), *row[len(by):]) for row in rows]
