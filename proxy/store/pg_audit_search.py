"""`recall search` on PostgreSQL: the same FTS5-syntax queries, matched as substrings.

The AuditStore takes a query in SQLite FTS5's syntax (search.fts_query): quoted words, and
with --fts also OR, NOT, AND, parentheses, "phrases" and prefix*. Here that syntax is parsed
into a condition on the node's searchable text (`search_input`, `search_output`, written by
the store with search.searchable_text):

- every word or phrase matches anywhere in the text, case-insensitively (ILIKE, served by
  the pg_trgm indexes of migration m002): `pars` finds "parsing", where FTS5 matches whole
  words only; a prefix `pars*` is the same substring;
- ranking: ts_rank over the weighted tsvector (input above output) of the words, whole
  words first, then the newest. FTS5 ranks by bm25, so the order of hits may differ from
  SQLite's; the set of hits is SQLite's and more (words found inside longer words).

Snippets are cut here, in Python, around the first hit of a side: sixteen words with every
match wrapped in HIT_START/HIT_END, as FTS5's snippet() marks them (a hit inside a word is
marked alone: `**crick**et`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .pg_audit_reads import THREAD_TITLE
from .records import HIT_END, HIT_START, SearchHit

if TYPE_CHECKING:
    import asyncpg

# Words in a snippet (FTS5's snippet() is asked for 16 tokens).
SNIPPET_WORDS = 16
_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"]|"")*)"|([^\s()"]+))')


@dataclass(slots=True)
class Condition:
    """A parsed query as SQL, its parameters, and the words it looks for (to rank and mark)."""

    sql: str
    params: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


class _Parser:
    """FTS5's query grammar: OR binds loosest, then AND (or two terms side by side), then NOT."""

    def __init__(self, query: str, first_param: int) -> None:
        self.query = query
        self.tokens = self._lex(query)
        self.at = 0
        self.params: list[str] = []
        self.words: list[str] = []
        self.first_param = first_param

    def _lex(self, query: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(query.rstrip()):
            match = _TOKEN.match(query, pos)
            if match is None:
                raise ValueError(f"cannot search for {query!r}: unbalanced quote")
            opening, closing, quoted, bare = match.groups()
            if opening or closing:
                tokens.append(("(" if opening else ")", ""))
            elif quoted is not None:
                tokens.append(("term", quoted.replace('""', '"')))
            elif bare in ("AND", "OR", "NOT"):
                tokens.append((bare, ""))
            else:
                tokens.append(("term", bare.removesuffix("*")))
            pos = match.end()
        return tokens

    def _peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def _fail(self, why: str) -> ValueError:
        return ValueError(f"cannot search for {self.query!r}: {why}")

    def parse(self) -> str:
        if not self.tokens:
            raise self._fail("give at least one word to search for")
        sql = self._or()
        if self.at != len(self.tokens):
            raise self._fail(f"unexpected {self.tokens[self.at][0]!r}")
        return sql

    def _or(self) -> str:
        parts = [self._and()]
        while self._peek() == "OR":
            self.at += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def _and(self) -> str:
        parts = [self._not()]
        while self._peek() in ("AND", "term", "("):
            if self._peek() == "AND":
                self.at += 1
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def _not(self) -> str:
        sql = self._primary(negated=False)
        while self._peek() == "NOT":
            self.at += 1
            sql = f"({sql} AND NOT {self._primary(negated=True)})"
        return sql

    def _primary(self, *, negated: bool) -> str:
        kind = self._peek()
        if kind == "(":
            self.at += 1
            sql = self._or()
            if self._peek() != ")":
                raise self._fail("a '(' is never closed")
            self.at += 1
            return sql
        if kind != "term":
            raise self._fail("a word is missing" if kind is None else f"unexpected {kind!r}")
        word = self.tokens[self.at][1]
        self.at += 1
        if not word.strip():
            raise self._fail("an empty phrase matches nothing")
        if not negated:
            self.words.append(word)
        self.params.append("%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        n = self.first_param + len(self.params) - 1
        return f"(i.search_input ILIKE ${n} OR i.search_output ILIKE ${n})"


def parse(query: str, first_param: int) -> Condition:
    """The SQL condition for an FTS5-syntax query, its parameters numbered from `first_param`.
    ValueError, naming the query, when it cannot be read."""
    parser = _Parser(query, first_param)
    sql = parser.parse()
    if not parser.words:
        raise ValueError(f"cannot search for {query!r}: it only says what must not be there")
    return Condition(sql, parser.params, parser.words)


def snippet(text: str | None, words: list[str]) -> str | None:
    """SNIPPET_WORDS words of `text` from a little before the first hit of any of `words` (all of
    a shorter text), each hit marked; None when none of them is in `text`."""
    if not text:
        return None
    hits = re.compile("|".join(re.escape(word) for word in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    first = hits.search(text)
    if first is None:
        return None
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    at = next(n for n, (_, end) in enumerate(spans) if end > first.start())
    start = max(0, min(at - SNIPPET_WORDS // 4, len(spans) - SNIPPET_WORDS))
    stop = min(len(spans), start + SNIPPET_WORDS)
    begin, end = spans[start][0], spans[stop - 1][1]
    cut = hits.sub(lambda m: f"{HIT_START}{m.group(0)}{HIT_END}", text[begin:end])
    return ("…" if start else "") + cut + ("…" if stop < len(spans) else "")


async def search(db: asyncpg.Connection, query: str, *, limit: int, offset: int, since: float | None,
                 until: float | None, upstream: str | None) -> list[SearchHit]:
    """Best matches first (see the module's docstring for what matches and how it ranks)."""
    condition = parse(query, first_param=7)
    # Each word as a quoted prefix lexeme of to_tsquery: nodes holding it as a word (or a word's start) rank first.
    ranked = " | ".join("'" + word.replace("\\", "\\\\").replace("'", "''") + "':*" for word in condition.words)
    rows: list[Any] = await db.fetch(
        f"""
        SELECT i.id, i.root_id, i.created_at, i.upstream, i.model, i.search_input, i.search_output,
               {THREAD_TITLE.format(root="i.root_id")}
        FROM interactions AS i
        WHERE i.deleted_at IS NULL AND {condition.sql}
          AND ($1::float8 IS NULL OR i.created_at >= $1) AND ($2::float8 IS NULL OR i.created_at < $2)
          AND ($3::text IS NULL OR i.upstream = $3)
        ORDER BY ts_rank(i.search_vector, to_tsquery('simple', $4)) DESC, i.created_at DESC, i.id
        LIMIT $5 OFFSET $6
        """,
        since, until, upstream, ranked, limit, offset, *condition.params,
    )
    return [SearchHit(row[0], row[1], row[2], row[3], row[4], snippet(row[5], condition.words),
                      snippet(row[6], condition.words), row[7]) for row in rows]
