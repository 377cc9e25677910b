"""`recall cassette export|import`: recordings in and out of portable JSONL files."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import click

from .cassette import export_cassette, insert_records, read_cassette
from .config import ConfigError, load_config, resolve_db_path
from .store.migrations import migrate


def _database(db_path: str | None, config_path: str | None, *, must_exist: bool) -> sqlite3.Connection:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"recall: bad config: {exc}", err=True)
        sys.exit(2)
    path = resolve_db_path(db_path, config)
    if must_exist and not path.exists():
        click.echo(f"recall: no database at {path}; pass --db PATH", err=True)
        sys.exit(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db)
    return db


@click.group()
def cassette() -> None:
    """Move recordings in and out of cassette files (JSONL, no secrets)."""


@cassette.command("export")
@click.option("--db", "db_path", metavar="PATH", help="Database file.")
@click.option("--config", "config_path", metavar="PATH", help="Config file.")
@click.option("--thread", metavar="ID", help="Only the conversation this interaction belongs to.")
@click.option("--since", metavar="WHEN", help="Only what was recorded since: 7d, 12h, 30m, or a date.")
@click.option("--upstream", metavar="NAME", help="Only this upstream.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True, help="Cassette file to write.")
def export_command(db_path: str | None, config_path: str | None, thread: str | None, since: str | None,
                   upstream: str | None, output: str) -> None:
    """Write recordings to a cassette file."""
    db = _database(db_path, config_path, must_exist=True)
    target = Path(output)
    partial = target.with_suffix(target.suffix + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            report = export_cassette(db, out, thread=thread, since=since, upstream=upstream)
    except (LookupError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        click.echo(f"recall: {exc}", err=True)
        sys.exit(2)
    partial.replace(target)
    click.echo(f"wrote {target}: {report.interactions} interactions, {report.exchanges} exchanges, "
               f"{report.events} stream events", err=True)
    for line in report.masked:
        click.echo(f"masked a secret in {line}", err=True)


@cassette.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", "db_path", metavar="PATH", help="Database file.")
@click.option("--config", "config_path", metavar="PATH", help="Config file.")
def import_command(file: str, db_path: str | None, config_path: str | None) -> None:
    """Load a cassette file into a database."""
    db = _database(db_path, config_path, must_exist=False)
    try:
        records = list(read_cassette(Path(file)))
    except ValueError as exc:
        click.echo(f"recall: {exc}", err=True)
        sys.exit(2)
    db.execute("BEGIN IMMEDIATE")
    try:
        counts = insert_records(db, iter(records))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    click.echo(f"loaded {file}: {counts['interaction']} interactions, {counts['exchange']} exchanges, "
               f"{counts['event']} stream events", err=True)
