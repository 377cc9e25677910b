"""`recall ui`: the command that serves the conversation viewer on its own, read-only, on loopback."""

from __future__ import annotations

import click

from ..viewer import create_viewer_app
from .audit import opened_audit
from .common import config_and_db_options, load_config_or_exit, run_until_stopped, serve_on_loopback, store_of

DEFAULT_PORT = 8643  # beside the proxy's 8642


@click.command()
@config_and_db_options
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port on 127.0.0.1 (0 picks a free one).")
def ui(config_path: str | None, db_path: str | None, port: int) -> None:
    """Serve the conversation viewer on its own (http://127.0.0.1:PORT/_recall/).

    Prints the URL and opens nothing. Reads the same database as `recall serve`,
    whether or not it runs; [server] tokens apply here too.
    """
    config = load_config_or_exit(config_path)
    database = store_of(config_path, db_path)
    with opened_audit(config_path, db_path) as audit:  # exists, is a recall database, migrated
        where = audit.location

    def announce(bound: int) -> None:
        click.echo(f"http://127.0.0.1:{bound}/_recall/")
        click.echo(f"recall viewer (read-only) on {where}; Ctrl-C stops it", err=True)

    run_until_stopped(serve_on_loopback(create_viewer_app(config, database), port, announce))
