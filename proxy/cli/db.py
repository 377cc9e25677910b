"""`recall db migrate` (for deploy hooks) and `recall db copy` (moving a team's history between
SQLite and PostgreSQL). Thin: the work and every statement are in proxy/store/ (locations.py,
copy.py)."""

from __future__ import annotations

import click

from ..audit.render import dumps
from ..store.copy import copy_database
from ..store.locations import migrate, shown
from ..store.records import StoreError
from .common import config_and_db_options, json_option, parse_location, store_of


@click.group()
def db() -> None:
    """Prepare a database, or copy one into another (SQLite and PostgreSQL)."""


@db.command("migrate")
@config_and_db_options
@json_option
def migrate_command(config_path: str | None, db_path: str | None, as_json: bool) -> None:
    """Bring the database's schema to this version, and say what was applied.

    For deploy hooks: run it once before starting several recall instances on one
    PostgreSQL (they also migrate on start, one at a time, under a lock). A SQLite
    file that does not exist is created.
    """
    location = store_of(config_path, db_path)
    try:
        applied, version = migrate(location)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    where = shown(location)
    if as_json:
        click.echo(dumps({"database": where, "applied": applied, "version": version}))
    elif applied:
        click.echo(f"{where}: applied {', '.join(applied)}; schema version {version}")
    else:
        click.echo(f"{where}: up to date (schema version {version}), nothing applied")


_LOCATION_HELP = "a postgresql:// URL, or sqlite:///path/to/file.db (or just the path)"


@db.command("copy")
@click.option("--from", "source", required=True, metavar="DB", help=f"The database to copy: {_LOCATION_HELP}.")
@click.option("--to", "target", required=True, metavar="DB",
              help=f"The database to copy into: {_LOCATION_HELP}; a missing SQLite file is created.")
@click.option("--append", is_flag=True,
              help="Add to a target that already holds rows (rows it has are kept; exchanges are added).")
@json_option
def copy_command(source: str, target: str, append: bool, as_json: bool) -> None:
    """Copy every interaction, exchange, stream event and conversation of one database into another.

    Ids and bytes are kept; the search index is made again on the target. A target that
    already holds rows is refused unless --append. All or nothing: a copy that fails
    leaves the target as it was.
    """
    try:
        copied = copy_database(parse_location(source), parse_location(target), append=append)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(dumps({"from": shown(parse_location(source)), "to": shown(parse_location(target)),
                          "copied": copied}))
        return
    click.echo(f"copied {copied['interactions']} interactions, {copied['exchanges']} exchanges,"
               f" {copied['stream_events']} stream events, {copied['openai_conversations']} conversations"
               f" ({copied['openai_conversation_items']} items) from {shown(parse_location(source))}"
               f" to {shown(parse_location(target))}")
