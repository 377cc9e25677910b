"""`recall cassette export|import`: recordings in and out of portable JSONL files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click

from ..audit.render import dumps
from ..files import open_private_for_writing
from ..replay.cassette import export_cassette, insert_records, read_cassette
from ..store.audit_db import complete_id
from ..store.records import IdNotFound
from ..store.sqlite import open_private, open_sync
from .common import config_and_db_options, db_path_of, json_option, since_option


@click.group()
def cassette() -> None:
    """Move recordings in and out of cassette files (JSONL, no secrets)."""


@cassette.command("export")
@config_and_db_options
@click.option("--thread", metavar="ID", help="Only the conversation this interaction belongs to.")
@since_option
@click.option("--upstream", metavar="NAME", help="Only this upstream.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True, help="Cassette file to write.")
@json_option
def export_command(config_path: str | None, db_path: str | None, thread: str | None, since: float | None,
                   upstream: str | None, output: str, as_json: bool) -> None:
    """Write recordings to a cassette file."""
    path = db_path_of(config_path, db_path)
    try:
        db = open_sync(path)
    except FileNotFoundError:
        raise click.ClickException(f"no database at {path}; pass --db PATH") from None
    if thread is not None:
        try:
            thread = complete_id(db, thread)
        except IdNotFound as missing:
            db.close()
            found = f"; it starts {', '.join(missing.candidates)}" if missing.candidates else ""
            raise click.ClickException(f"no single interaction '{thread}' in {path}{found}") from None
    target = Path(output)
    partial = target.with_suffix(target.suffix + ".partial")
    try:
        # A cassette holds conversations: 0600 like the database it comes from.
        with open_private_for_writing(partial) as out:
            report = export_cassette(db, out, thread=thread, since=since, upstream=upstream)
    except LookupError as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(str(exc)) from None
    finally:
        db.close()
    partial.replace(target)
    if as_json:
        click.echo(dumps({"file": str(target), "interactions": report.interactions, "exchanges": report.exchanges,
                          "events": report.events, "masked": report.masked}))
        return
    click.echo(f"wrote {target}: {report.interactions} interactions, {report.exchanges} exchanges, "
               f"{report.events} stream events", err=True)
    for line in report.masked:
        click.echo(f"masked a secret in {line}", err=True)


@cassette.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@config_and_db_options
@json_option
def import_command(file: str, config_path: str | None, db_path: str | None, as_json: bool) -> None:
    """Load a cassette file into a database (created if missing)."""
    path = db_path_of(config_path, db_path)
    try:
        records = list(read_cassette(Path(file)))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    open_private(path)
    db = open_sync(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            counts = insert_records(db, iter(records))
        except (sqlite3.Error, KeyError) as exc:
            db.execute("ROLLBACK")
            raise click.ClickException(f"{file}: cannot be loaded: {exc}") from None
        db.execute("COMMIT")
    finally:
        db.close()
    if as_json:
        click.echo(dumps({"file": file, "database": str(path), "interactions": counts["interaction"],
                          "exchanges": counts["exchange"], "events": counts["event"]}))
        return
    click.echo(f"loaded {file}: {counts['interaction']} interactions, {counts['exchange']} exchanges, "
               f"{counts['event']} stream events", err=True)
