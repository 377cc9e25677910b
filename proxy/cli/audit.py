"""The `recall` commands that read or erase what the database holds: ls, show, tree,
search, export, stats, rm and purge.

Thin on purpose: each command parses its options, asks proxy.audit for the
data and prints one of its renderings. No SQL lives here.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click

from ..audit.export import FORMATS, write_jsonl, write_markdown
from ..audit.prices import price_rows, pricing_available
from ..audit.rebuild import Rebuilt, rebuild_upstream_request
from ..audit.render import (
    clip,
    dumps,
    exchange_record,
    interaction_record,
    raw_exchanges,
    removed_line,
    removed_record,
    search_lines,
    search_record,
    stats_record,
    stats_table,
    thread_record,
    thread_table,
    transcript,
    tree_lines,
    tree_record,
)
from ..audit.when import utc
from ..pipeline.spill import whole_audit
from ..store.locations import open_audit
from ..store.protocol import AuditStore
from ..store.records import STATS_KEYS, THREAD_STATUSES, IdNotFound, Removed, StoreError, WalBusy
from ..store.search import fts_query
from .common import (
    DURATION,
    config_and_db_options,
    json_option,
    load_config_or_exit,
    since_option,
    store_of,
    until_option,
)


@contextmanager
def opened_audit(config_path: str | None, db_path: str | None, *, create: bool = False) -> Iterator[AuditStore]:
    """The database a command works on (a SQLite file or a postgresql:// URL), closed after it;
    `create` makes a missing file (private to its owner). A database that cannot be used, at
    the start or while the command runs, is one line and exit 1."""
    location = store_of(config_path, db_path)
    try:
        audit = open_audit(location, create=create)
    except FileNotFoundError:
        raise click.ClickException(f"no database at {location}: start `recall serve` to create one,"
                                   " or pass --db PATH") from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield audit
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        audit.close()


def _echo_lines(lines: Iterator[str]) -> None:
    for line in lines:
        click.echo(line)


def _unknown(interaction_id: str, audit: AuditStore) -> click.ClickException:
    return click.ClickException(f"no interaction '{interaction_id}' in {audit.location}")


def resolve_id(given: str, audit: AuditStore) -> str:
    """A full id from an id or a unique start of one; else an error listing the candidates."""
    try:
        return audit.complete_id(given)
    except IdNotFound as missing:
        if not missing.candidates:
            raise _unknown(given, audit) from None
        shown = ", ".join(missing.candidates[:10]) + (", …" if len(missing.candidates) > 10 else "")
        raise click.ClickException(f"'{given}' starts more than one interaction id ({shown}); give more of it") from None


def terminal_width() -> int | None:
    """Columns to fit tables into: $COLUMNS, else the terminal's; none when piped (keep every character)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None



@click.command("ls")
@config_and_db_options
@click.option("--upstream", help="Only threads with an interaction through this upstream.")
@click.option("--model", help="Only threads with an interaction on this model.")
@click.option("--status", type=click.Choice(THREAD_STATUSES), help="Only threads with an interaction in this state.")
@since_option
@until_option
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many threads.")
@json_option
def ls(config_path: str | None, db_path: str | None, upstream: str | None, model: str | None, status: str | None,
       since: float | None, until: float | None, limit: int, as_json: bool) -> None:
    """List conversations (threads), most recently active first."""
    with opened_audit(config_path, db_path) as audit:
        threads = audit.threads(upstream=upstream, model=model, since=since, until=until, limit=limit, status=status)
    if as_json:
        click.echo(dumps([thread_record(t) for t in threads]))
    elif threads:
        _echo_lines(thread_table(threads, width=terminal_width()))
    else:
        click.echo("no conversations match", err=True)


@click.command()
@click.argument("interaction_id", metavar="ID", required=False)
@config_and_db_options
@click.option("--last", is_flag=True, help="Show the newest interaction's conversation (no ID needed).")
@click.option("--raw", is_flag=True, help="Print the recorded HTTP exchanges instead of the transcript.")
@click.option("--thoughts", is_flag=True, help="Show the model's thoughts in full (collapsed by default).")
@json_option
def show(interaction_id: str | None, config_path: str | None, db_path: str | None, last: bool, raw: bool,
         thoughts: bool, as_json: bool) -> None:
    """Show the conversation up to ID (or a unique start of it), turn by turn.

    Roles, text, tool calls and results, thoughts (collapsed), tokens and times;
    deleted turns are marked.
    """
    if (interaction_id is None) == (not last):
        raise click.UsageError("give an interaction ID or --last (not both)")
    with opened_audit(config_path, db_path) as audit:
        if last:
            interaction_id = audit.last_id()
            if interaction_id is None:
                raise click.ClickException(f"nothing recorded yet in {audit.location}")
        interaction_id = resolve_id(str(interaction_id), audit)
        nodes = [whole_audit(audit, node) for node in audit.chain(interaction_id)]
        if not nodes:
            raise _unknown(interaction_id, audit)
        exchanges = {n.interaction.id: audit.exchanges(n.interaction.id) for n in nodes} if raw else {}
    rebuilt: dict[str, dict[int, Rebuilt]] = {}
    if raw:  # emulated turns: what recall sent upstream is rebuilt from the chain (only its digest is stored)
        config = load_config_or_exit(config_path)
        for i, node in enumerate(nodes):
            rebuilt[node.interaction.id] = {
                position: again for position, ex in enumerate(exchanges[node.interaction.id])
                if (again := rebuild_upstream_request(nodes[: i + 1], ex, config)) is not None}
    if as_json:
        records = [interaction_record(n) for n in nodes]
        if raw:
            for record in records:
                record["exchanges"] = [exchange_record(ex) for ex in exchanges[record["id"]]]
                for position, again in rebuilt[record["id"]].items():
                    record["exchanges"][position]["upstream_request"] = again.record()
        click.echo(dumps({"thread_id": nodes[0].interaction.root_id, "interactions": records}))
    elif raw:
        for node in nodes:
            _echo_lines(raw_exchanges(node, exchanges[node.interaction.id], rebuilt[node.interaction.id]))
    else:
        _echo_lines(transcript(nodes, thoughts=thoughts))


@click.command()
@click.argument("interaction_id", metavar="ID")
@config_and_db_options
@json_option
def tree(interaction_id: str, config_path: str | None, db_path: str | None, as_json: bool) -> None:
    """Draw every branch of the thread ID belongs to (ID is starred)."""
    with opened_audit(config_path, db_path) as audit:
        interaction_id = resolve_id(interaction_id, audit)
        node = audit.node(interaction_id)
        if node is None:
            raise _unknown(interaction_id, audit)
        thread_id = node.interaction.root_id or interaction_id
        nodes = audit.thread(thread_id)
    if as_json:
        click.echo(dumps({"thread_id": thread_id, "tree": tree_record(nodes)}))
    else:
        _echo_lines(tree_lines(nodes, mark=interaction_id))


@click.command()
@click.argument("words", nargs=-1, required=True)
@config_and_db_options
@click.option("--fts", is_flag=True, help='Read the words as an SQLite FTS5 query (OR, NOT, "a phrase", prefix*).')
@click.option("--upstream", help="Only interactions through this upstream.")
@since_option
@until_option
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many hits.")
@json_option
def search(words: tuple[str, ...], config_path: str | None, db_path: str | None, fts: bool, upstream: str | None,
           since: float | None, until: float | None, limit: int, as_json: bool) -> None:
    """Full-text search over every stored input and output.

    Lists the interactions that hold every one of WORDS, best match first.
    """
    try:
        query = fts_query(" ".join(words), raw=fts)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with opened_audit(config_path, db_path) as audit:
        try:
            hits = audit.search(query, limit=limit, since=since, until=until, upstream=upstream)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(dumps([search_record(hit) for hit in hits]))
    elif hits:
        # Bold on a terminal; plain text when piped, so grep and files get the words as stored.
        _echo_lines(search_lines(hits, _bold if sys.stdout.isatty() else _as_is))
    else:
        click.echo(f"no interaction holds {' '.join(words)!r}", err=True)


def _as_is(word: str) -> str:
    return word


def _bold(word: str) -> str:
    return click.style(word, bold=True)


def _progress_wanted(out: TextIO) -> bool:
    """A bar on stderr when someone watches it and the export is not printing there too."""
    return sys.stderr.isatty() and not out.isatty()


@click.command()
@config_and_db_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True,
              help="jsonl: one interaction per line; md: Markdown for people.")
@since_option
@until_option
@click.option("--thread", "thread_of", metavar="ID", help="Only the thread this interaction belongs to.")
@click.option("--thoughts", is_flag=True, help="md: show thoughts in full.")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8", lazy=True), default="-",
              help="Write here instead of standard output.")
def export(config_path: str | None, db_path: str | None, fmt: str, since: float | None, until: float | None,
           thread_of: str | None, thoughts: bool, output: TextIO) -> None:
    """Export stored interactions as JSON Lines or Markdown.

    Streams thread by thread; deleted interactions appear as content-free tombstones.
    """
    with opened_audit(config_path, db_path) as audit:
        thread_id = None
        if thread_of is not None:
            thread_of = resolve_id(thread_of, audit)
            node = audit.node(thread_of)
            if node is None:
                raise _unknown(thread_of, audit)
            thread_id = node.interaction.root_id
        nodes = (whole_audit(audit, node) for node in audit.export_rows(since=since, until=until, thread=thread_id))
        if _progress_wanted(output):
            total = audit.count(since=since, until=until, thread=thread_id)
            with click.progressbar(nodes, length=total, label="exporting", file=sys.stderr) as bar:
                _write(fmt, bar, output, thoughts)
        else:
            _write(fmt, nodes, output, thoughts)


def _write(fmt: str, nodes: Any, out: TextIO, thoughts: bool) -> None:
    if fmt == "md":
        write_markdown(nodes, out, thoughts=thoughts)
    else:
        write_jsonl(nodes, out)


def _stats_keys(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """--by day,model or --by day --by model, as the viewer's ?by= takes them."""
    asked = [key.strip() for value in values for key in value.split(",") if key.strip()]
    unknown = sorted(set(asked) - set(STATS_KEYS))
    if unknown:
        raise click.BadParameter(f"cannot group by {', '.join(unknown)}; choose from {', '.join(STATS_KEYS)}"
                                 " (comma-separated or repeated)")
    return tuple(k for k in STATS_KEYS if k in asked)


@click.command()
@config_and_db_options
@click.option("--by", "by", multiple=True, callback=_stats_keys, metavar="KEYS",
              help="Group by day, upstream, model: comma-separated (day,model) or repeated; default: all three.")
@since_option
@until_option
@json_option
def stats(config_path: str | None, db_path: str | None, by: tuple[str, ...], since: float | None,
          until: float | None, as_json: bool) -> None:
    """Usage figures by day (UTC), upstream and model.

    Requests, interactions, tokens in and out, errors, replay hits, median (p50)
    latency, and the cost at list prices (genai-prices; `unknown` for a model it
    has no price for, never 0).
    """
    by = by or STATS_KEYS
    with opened_audit(config_path, db_path) as audit:
        rows = audit.stats(by=by, since=since, until=until)
        totals = audit.stats(by=(), since=since, until=until)
        price_rows(rows, audit.token_usage(by=by, since=since, until=until))
        price_rows(totals, audit.token_usage(by=(), since=since, until=until))
    total = totals[0] if totals else None
    if not pricing_available():
        click.echo("recall: costs are unknown without the price table: pip install 'recall-proxy[cost]'", err=True)
    if as_json:
        click.echo(dumps({"by": list(by), "rows": [stats_record(r) for r in rows],
                          "total": stats_record(total) if total else None}))
    elif rows:
        _echo_lines(stats_table(rows, total, by))
    else:
        click.echo("nothing recorded in that time", err=True)


def _erasing(erase: Callable[[], Removed]) -> tuple[Removed, WalBusy | None]:
    """Run an erase; a WAL that could not be truncated is reported, not hidden."""
    try:
        return erase(), None
    except WalBusy as busy:
        return busy.removed, busy


def _warn_if_busy(busy: WalBusy | None, audit: AuditStore) -> None:
    if busy is not None:  # SQLite only: PostgreSQL has no WAL file of the database's own to truncate
        click.echo(f"recall: {busy}: old copies of the erased pages stay in {audit.location}-wal until its next"
                   " checkpoint; run the command again when nothing is reading the database", err=True)
        sys.exit(1)


@click.command()
@click.argument("interaction_id", metavar="ID")
@config_and_db_options
@click.option("--thread", "whole_thread", is_flag=True, help="Remove the whole thread ID belongs to.")
@json_option
def rm(interaction_id: str, config_path: str | None, db_path: str | None, whole_thread: bool, as_json: bool) -> None:
    """Erase one interaction, or with --thread its whole thread.

    The follow-ups of an erased interaction keep working without it.
    """
    with opened_audit(config_path, db_path) as audit:
        interaction_id = resolve_id(interaction_id, audit)
        node = audit.node(interaction_id)
        if node is None or (node.deleted and not whole_thread):
            raise _unknown(interaction_id, audit)
        before = audit.bytes_on_disk()
        thread_id = node.interaction.root_id or interaction_id
        removed, busy = _erasing(lambda: audit.rm_thread(thread_id) if whole_thread else audit.rm(interaction_id))
        freed = before - audit.bytes_on_disk()
    click.echo(dumps(removed_record(removed, freed)) if as_json else removed_line(removed, freed))
    _warn_if_busy(busy, audit)


@click.command()
@config_and_db_options
@click.option("--older-than", "age", type=DURATION, required=True, help="Erase what is older: 30d, 12h, 2w...")
@click.option("--dry-run", is_flag=True, help="List the threads that would be touched and count what would go; change nothing.")
@json_option
def purge(config_path: str | None, db_path: str | None, age: float, dry_run: bool, as_json: bool) -> None:
    """Erase everything recorded more than --older-than ago.

    Newer follow-ups keep working; a thread with nothing newer goes entirely.
    """
    with opened_audit(config_path, db_path) as audit:
        before = audit.bytes_on_disk()
        cutoff = time.time() - age
        touched = audit.purge_preview(cutoff) if dry_run else []
        removed, busy = _erasing(lambda: audit.purge(cutoff, dry_run=dry_run))
        freed = None if dry_run else before - audit.bytes_on_disk()
    if as_json:
        record = {"before": utc(cutoff), "dry_run": dry_run, **removed_record(removed, freed)}
        if dry_run:
            record["would_touch"] = [{"thread_id": t, "interactions": n, "whole_thread": whole, "title": title}
                                     for t, n, whole, title in touched]
        click.echo(dumps(record))
    else:
        line = removed_line(removed, freed)
        if dry_run:
            for thread_id, count, whole, title in touched:
                what = "whole thread" if whole else f"{count} older interaction(s)"
                click.echo(f"would erase {thread_id}: {what}  {clip(title, 60)}")
        click.echo(f"dry run, nothing changed: would have {line}" if dry_run else f"before {utc(cutoff)}: {line}")
    _warn_if_busy(busy, audit)


AUDIT_COMMANDS: list[click.Command] = [ls, show, tree, search, export, stats, rm, purge]
