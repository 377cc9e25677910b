"""`recall cassette export|import`: recordings in and out of portable JSONL files."""

from __future__ import annotations

from pathlib import Path

import click

from ..audit.render import dumps
from ..files import open_private_for_writing
from ..replay.cassette import export_cassette, load_records, read_cassette
from ..store.records import StoreError
from .audit import opened_audit, resolve_id
from .common import config_and_db_options, json_option, since_option


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
    target = Path(output)
    partial = target.with_suffix(target.suffix + ".partial")
    with opened_audit(config_path, db_path) as audit:
        if thread is not None:
            thread = resolve_id(thread, audit)
        try:
            # A cassette holds conversations: 0600 like the database it comes from.
            with open_private_for_writing(partial) as out:
                report = export_cassette(audit, out, thread=thread, since=since, upstream=upstream)
        except LookupError as exc:
            partial.unlink(missing_ok=True)
            raise click.ClickException(str(exc)) from None
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
    try:
        records = list(read_cassette(Path(file)))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with opened_audit(config_path, db_path, create=True) as audit:
        try:
            counts = load_records(audit, records)
        except (StoreError, KeyError) as exc:  # the database refused a row, or a record lacks a field
            raise click.ClickException(f"{file}: cannot be loaded: {exc}") from None
        where = audit.location
    if as_json:
        click.echo(dumps({"file": file, "database": where, "interactions": counts["interaction"],
                          "exchanges": counts["exchange"], "events": counts["event"]}))
        return
    click.echo(f"loaded {file}: {counts['interaction']} interactions, {counts['exchange']} exchanges, "
               f"{counts['event']} stream events", err=True)
