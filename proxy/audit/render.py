"""Text and JSON forms of what the audit queries return.

Text is for people (aligned tables, a transcript, a tree); JSON is for
scripts and holds every figure the text shows. Times are UTC throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from ..model import COMPACTION, FUNCTION_CALL, FUNCTION_RESULT, MEDIA_KINDS, TEXT, THOUGHT, Interaction, Part, Turn
from ..store.records import HIT_END, HIT_START, Exchange, Node, Removed, SearchHit, StatsRow, ThreadSummary
from .when import short_utc, utc

Style = Callable[[str], str]


def _plain(text: str) -> str:
    return text


def dumps(value: Any) -> str:
    """Indented JSON for --json output."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def clip(text: str | None, width: int) -> str:
    """One line of at most `width` characters."""
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def table(headers: list[str], rows: Iterable[list[str]], *, right: Iterable[int] = (),
          width: int | None = None) -> Iterator[str]:
    """Aligned columns; columns listed in `right` (numbers) are right-aligned, the last one is not padded.

    With `width`, lines are made to fit in it: the last column (free text) is clipped
    first, down to a few characters, then the widest other text columns. The first
    column (ids) and numbers are never cut: a clipped id or figure would be wrong."""
    body = [headers, *rows]
    widths = [max(len(row[i]) for row in body) for i in range(len(headers))]
    right = set(right)
    if width is not None and len(headers) > 1:
        last, least = len(headers) - 1, 8
        over = sum(widths) + 2 * last - width
        widths[last] -= min(max(over, 0), max(widths[last] - least, 0))
        over = sum(widths) + 2 * last - width
        while over > 0:
            text = [i for i in range(1, last) if i not in right and widths[i] > least]
            if not text:
                break
            widest = max(text, key=lambda i: widths[i])
            cut = min(over, widths[widest] - least)
            widths[widest] -= cut
            over -= cut
        body = [[cell if len(cell) <= widths[i] else clip(cell, widths[i]) for i, cell in enumerate(row)]
                for row in body]
    for row in body:
        cells = [
            cell if i == len(row) - 1 and i not in right else (cell.rjust if i in right else cell.ljust)(widths[i])
            for i, cell in enumerate(row)
        ]
        yield "  ".join(cells).rstrip()


def _tokens(value: int | None) -> str:
    return "-" if value is None else str(value)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- parts and turns -------------------------------------------------------------


def _size(data: str) -> str:
    size = len(data) * 3 // 4  # base64
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"


def part_text(part: Part, *, thoughts: bool = False) -> str:
    """One part as text: its words, a call or result on one line, a thought
    collapsed to its length unless `thoughts`, media as kind and size."""
    if part.kind == TEXT:
        return part.text or ""
    if part.kind == THOUGHT:
        if thoughts and part.text:
            return f"(thought) {part.text}"
        return f"[thought: {len(part.text or '')} chars, --thoughts to show]" if part.text else "[thought]"
    if part.kind == FUNCTION_CALL:
        return f"→ {part.name}({_json_text(part.arguments or {})})"
    if part.kind == FUNCTION_RESULT:
        marker = " (error)" if part.is_error else ""
        return f"← {part.name or part.call_id or 'result'}{marker}: {_json_text(part.result)}"
    if part.kind in MEDIA_KINDS:
        where = part.uri or (_size(part.data) if part.data else "no data")
        return f"[{part.kind} {part.mime_type or ''}, {where}]".replace(" ,", ",")
    if part.kind == COMPACTION:
        if part.text:
            return f"[compaction: the conversation before it, summarised] {part.text}"
        return f"[compaction: the conversation before it, compacted by the provider (opaque, " \
               f"{len(part.signature or '')} chars)]"
    return f"[{part.kind}]"


def turn_text(turn: Turn, *, thoughts: bool = False) -> str:
    return "\n".join(part_text(p, thoughts=thoughts) for p in turn.parts)


def first_user_text(node: Node) -> str:
    for turn in node.interaction.input:
        text = turn.text
        if text:
            return text
    return ""


def last_reply_text(node: Node) -> str:
    texts = [turn.text for turn in node.interaction.output if turn.text]
    return texts[-1] if texts else ""


# -- interactions as JSON -------------------------------------------------------------


def interaction_record(node: Node) -> dict[str, Any]:
    """The JSON form of one stored interaction (one line of `recall export`).

    A tombstone keeps its place in the tree (id, thread, parent) and says when it
    was deleted; it has no content.
    """
    it = node.interaction
    record: dict[str, Any] = {
        "id": it.id,
        "thread_id": it.root_id,
        "parent_id": it.parent_id,
        "depth": node.depth,
        "status": it.status,
        "upstream": it.upstream,
        "front": it.front,
        "mode": it.mode,
        "model": it.model,
        "owner": it.owner,
        "created": utc(it.created),
        "updated": utc(it.updated),
        "usage": it.usage.to_json(),
    }
    if node.deleted:
        record["deleted"] = utc(node.deleted_at)
        return record
    record["input"] = [t.to_json() for t in it.input]
    record["output"] = [t.to_json() for t in it.output]
    if it.request:
        record["request"] = it.request
    if cut := it.truncation:
        record["truncation"] = cut
    if it.error:
        record["error"] = it.error
    if it.provider_id and it.provider_id != it.id:
        record["provider_id"] = it.provider_id
    return record


def _body_text(body: bytes | None) -> str | None:
    return None if body is None else body.decode("utf-8", "replace")


def exchange_record(ex: Exchange) -> dict[str, Any]:
    return {
        "interaction_id": ex.interaction_id,
        "created": utc(ex.created),
        "method": ex.method,
        "path": ex.path,
        "status": ex.status,
        "latency_ms": ex.latency_ms,
        "stored": ex.stored,
        "request_headers": ex.request_headers,
        "request_body": _body_text(ex.request_body),
        "response_headers": ex.response_headers,
        "response_body": _body_text(ex.response_body),
        "upstream_digest": ex.upstream_digest,
        "error": ex.error,
    }


# -- ls ------------------------------------------------------------------------


def thread_record(t: ThreadSummary) -> dict[str, Any]:
    return {
        "thread_id": t.thread_id,
        "interactions": t.interactions,
        "upstreams": t.upstreams,
        "models": t.models,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "started": utc(t.started),
        "last_activity": utc(t.last_activity),
        "title": t.title,
        "failed": t.failed,
        "in_progress": t.in_progress,
    }


def thread_table(threads: list[ThreadSummary], *, width: int | None = None) -> Iterator[str]:
    """The threads as a table; the first message is clipped to 50 characters, or to fit `width`."""
    rows = [
        [t.thread_id, ",".join(t.upstreams), ",".join(t.models) or "-", str(t.interactions),
         short_utc(t.last_activity), f"{_tokens(t.input_tokens)}/{_tokens(t.output_tokens)}", clip(t.title, 50)]
        for t in threads
    ]
    yield from table(["THREAD", "UPSTREAM", "MODEL", "TURNS", "LAST (UTC)", "TOKENS IN/OUT", "FIRST MESSAGE"],
                     rows, right=(3, 5), width=width)


# -- show --------------------------------------------------------------------------


def _indented(label: str, text: str, width: int = 7) -> Iterator[str]:
    lines = text.splitlines() or [""]
    yield f"  {label:<{width}}{lines[0]}"
    for line in lines[1:]:
        yield f"  {'':<{width}}{line}"


def node_header(node: Node) -> str:
    it = node.interaction
    if node.deleted:
        return f"{it.id}  [deleted {short_utc(node.deleted_at)}: content erased]"
    usage = it.usage
    figures = f"{_tokens(usage.input_tokens)} in / {_tokens(usage.output_tokens)} out"
    if usage.thought_tokens:
        figures += f" / {usage.thought_tokens} thought"
    return f"{it.id}  {short_utc(it.created)}  {it.upstream}  {it.model or '-'}  {it.status}  {figures} tokens"


def cut_text(it: Interaction) -> str | None:
    """What a truncated call left out (pipeline/window.py), in a line; None when nothing."""
    cut = it.truncation
    if not cut:
        return None
    window = f" to fit a window of {cut['window']} tokens" if cut.get("window") else ""
    fresh = f", {cut['newly_dropped']} newly" if cut.get("newly_dropped") else ""
    return (f"{cut.get('turns_dropped', 0)} earlier turns left out{window} (after the first turns, up to"
            f" {cut.get('resume_at')}{fresh})")


def transcript(nodes: list[Node], *, thoughts: bool = False) -> Iterator[str]:
    """The thread root → node, turn by turn."""
    if nodes:
        yield f"thread {nodes[0].interaction.root_id}"
    for node in nodes:
        yield ""
        yield node_header(node)
        if node.deleted:
            continue
        if cut := cut_text(node.interaction):
            yield from _indented("cut", cut)
        for turn in [*node.interaction.input, *node.interaction.output]:
            yield from _indented(turn.role, turn_text(turn, thoughts=thoughts))
        if node.interaction.error:
            yield from _indented("error", node.interaction.error)


def _body_lines(prefix: str, body: bytes | None) -> Iterator[str]:
    if not body:
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        yield f"{prefix} <{len(body)} bytes, not UTF-8 text>"
        return
    for line in text.splitlines():
        yield f"{prefix} {line}"


def raw_exchanges(node: Node, exchanges: list[Exchange],
                  rebuilt: dict[int, Any] | None = None) -> Iterator[str]:
    """A node's recorded HTTP exchanges, request (>) then response (<); for an emulated turn,
    the upstream request rebuilt from the chain (`rebuilt`, by exchange position; proxy/audit/rebuild.py)."""
    yield f"## {node.interaction.id}"
    if not exchanges:
        yield "(no recorded exchange: erased, or never stored)" if node.deleted else "(no recorded exchange)"
    for position, ex in enumerate(exchanges):
        latency = f" in {ex.latency_ms:.0f} ms" if ex.latency_ms is not None else ""
        yield f"{ex.method} {ex.path} -> {ex.status}{latency}  ({utc(ex.created)}, upstream {ex.upstream})"
        for name, value in (ex.request_headers or {}).items():
            yield f"> {name}: {value}"
        yield from _body_lines(">", ex.request_body)
        for name, value in (ex.response_headers or {}).items():
            yield f"< {name}: {value}"
        yield from _body_lines("<", ex.response_body)
        again = (rebuilt or {}).get(position)
        if again is not None and again.problem is None:
            how = ("its digest matches the one recorded, so this is what was sent" if again.matches else
                   f"its digest DIFFERS from the one recorded (sha256 {(ex.upstream_digest or '')[:16]}…): the chain"
                   " or the config changed since, so this only approximates what was sent")
            yield f"  sent upstream (REBUILT from the chain, not recorded; {how}):"
            yield f"^ {again.method} {again.path}"
            yield from _body_lines("^", orjson.dumps(again.body, option=orjson.OPT_INDENT_2))
        elif ex.upstream_digest:
            reason = f" ({again.problem})" if again is not None else ""
            yield f"  (sent upstream: sha256 {ex.upstream_digest}; not stored, and not rebuilt{reason})"
        if ex.error:
            yield f"  error: {ex.error}"
        yield ""


# -- tree -------------------------------------------------------------------------------


def _children(nodes: list[Node]) -> dict[str | None, list[Node]]:
    by_parent: dict[str | None, list[Node]] = {}
    known = {n.interaction.id for n in nodes}
    for node in nodes:
        parent = node.interaction.parent_id
        by_parent.setdefault(parent if parent in known else None, []).append(node)
    return by_parent


def _tree_label(node: Node, mark: str | None) -> str:
    it = node.interaction
    star = " *" if it.id == mark else ""
    if node.deleted:
        return f"{it.id}{star}  [deleted]"
    said = clip(first_user_text(node), 40)
    reply = clip(last_reply_text(node), 40)
    cut = it.truncation
    dropped = f"  [cut: {cut.get('turns_dropped', 0)} turns left out]" if cut else ""
    compacted = "  [compaction: history starts here]" if compacts(node) else ""
    return f"{it.id}{star}  {short_utc(it.created)}  {said!r} → {reply!r}{dropped}{compacted}"


def compacts(node: Node) -> bool:
    """Whether a node holds a compaction: a chain continued from it is rebuilt from there on."""
    return not node.deleted and any(p.kind == COMPACTION for t in node.interaction.turns() for p in t.parts)


def tree_lines(nodes: list[Node], *, mark: str | None = None) -> Iterator[str]:
    """The branches of a thread, drawn; `mark` is starred."""
    by_parent = _children(nodes)

    def walk(node: Node, prefix: str, last: bool, top: bool) -> Iterator[str]:
        branch = "" if top else ("└─ " if last else "├─ ")
        yield f"{prefix}{branch}{_tree_label(node, mark)}"
        kids = by_parent.get(node.interaction.id, [])
        inner = prefix if top else prefix + ("   " if last else "│  ")
        for i, child in enumerate(kids):
            yield from walk(child, inner, i == len(kids) - 1, False)

    for root in by_parent.get(None, []):
        yield from walk(root, "", True, True)


def tree_record(nodes: list[Node]) -> list[dict[str, Any]]:
    """The same tree as nested JSON: each node with its `children`."""
    by_parent = _children(nodes)

    def build(node: Node) -> dict[str, Any]:
        it = node.interaction
        return {
            "id": it.id,
            "status": it.status,
            "created": utc(it.created),
            "model": it.model,
            "input_text": None if node.deleted else first_user_text(node),
            "output_text": None if node.deleted else last_reply_text(node),
            "truncation": it.truncation or None,
            "compaction": compacts(node),
            "children": [build(child) for child in by_parent.get(it.id, [])],
        }

    return [build(root) for root in by_parent.get(None, [])]


# -- search --------------------------------------------------------------------------------


def hit_snippet(snippet: str, highlight: Style = _plain) -> str:
    """A snippet on one line, the matched words passed through `highlight`."""
    out, rest = [], " ".join(snippet.split())
    while HIT_START in rest:
        before, _, tail = rest.partition(HIT_START)
        word, _, rest = tail.partition(HIT_END)
        out += [before, highlight(word)]
    return "".join([*out, rest])


def markdown_bold(word: str) -> str:
    return f"**{word}**"


def search_record(hit: SearchHit) -> dict[str, Any]:
    """A hit as JSON; matched words in the snippets are **bold** (Markdown)."""
    return {
        "interaction_id": hit.interaction_id,
        "thread_id": hit.thread_id,
        "created": utc(hit.created),
        "upstream": hit.upstream,
        "model": hit.model,
        "title": hit.title,
        "input_snippet": hit.input_snippet and hit_snippet(hit.input_snippet, markdown_bold),
        "output_snippet": hit.output_snippet and hit_snippet(hit.output_snippet, markdown_bold),
    }


def search_lines(hits: list[SearchHit], highlight: Style = _plain) -> Iterator[str]:
    for hit in hits:
        yield f"{hit.interaction_id}  {short_utc(hit.created)}  {hit.upstream}  thread {hit.thread_id}"
        for side, snippet in (("input", hit.input_snippet), ("output", hit.output_snippet)):
            if snippet:
                yield f"  {side + ':':<8}{hit_snippet(snippet, highlight)}"


# -- stats ---------------------------------------------------------------------------------


def stats_record(row: StatsRow) -> dict[str, Any]:
    return {
        **row.key,
        "requests": row.requests,
        "interactions": row.interactions,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "errors": row.errors,
        "replay_hits": row.replay_hits,
        "p50_latency_ms": None if row.p50_latency_ms is None else round(row.p50_latency_ms, 1),
        "cost_usd": None if row.cost_usd is None else round(row.cost_usd, 6),
        "unpriced_models": row.unpriced_models,
    }


def stats_table(rows: list[StatsRow], total: StatsRow | None, by: tuple[str, ...]) -> Iterator[str]:
    def cells(row: StatsRow, key: list[str]) -> list[str]:
        p50 = "-" if row.p50_latency_ms is None else f"{row.p50_latency_ms:.1f}"
        cost = "unknown" if row.cost_usd is None else f"{row.cost_usd:.6f}"
        return [*key, str(row.requests), str(row.interactions), str(row.input_tokens), str(row.output_tokens),
                str(row.errors), str(row.replay_hits), p50, cost]

    body = [cells(row, [row.key[k] or "-" for k in by]) for row in rows]
    if total is not None and by:
        body.append(cells(total, ["total", *[""] * (len(by) - 1)]))
    headers = [k.upper() for k in by] + ["REQUESTS", "INTERACTIONS", "TOKENS IN", "TOKENS OUT", "ERRORS", "REPLAY HITS", "P50 MS", "COST USD"]
    yield from table(headers, body, right=range(len(by), len(headers)))


# -- rm and purge ---------------------------------------------------------------------------


def removed_record(removed: Removed, freed_bytes: int | None) -> dict[str, Any]:
    return {"interactions": removed.interactions, "exchanges": removed.exchanges, "threads": removed.threads,
            "freed_bytes": freed_bytes}


def removed_line(removed: Removed, freed_bytes: int | None) -> str:
    line = (f"erased {removed.interactions} interaction(s), {removed.exchanges} exchange(s);"
            f" {removed.threads} thread(s) removed entirely")
    if freed_bytes is not None:
        line += f"; freed {max(freed_bytes, 0) / 1024:.1f} KB"
    return line
