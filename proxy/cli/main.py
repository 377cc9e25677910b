"""The `recall` command group and `recall serve` (the proxy itself); every other command is
added to the group from the module that holds it (audit, cassette, db, info, ui, demo_provider)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import orjson

from .. import __version__
from ..auth import is_loopback
from ..config import MODES, Config, ConfigError, check_origin, explain_db_url, resolve_db_path
from ..http.request_log import LOG_LEVELS, configure_logging
from ..pipeline.cache import REPLAY
from ..store.pg_connect import redacted
from .audit import AUDIT_COMMANDS
from .cassette import cassette
from .common import (
    config_and_db_options,
    exit_cannot_listen,
    load_config_or_exit,
    loop_factory,
    loop_name,
    run_until_stopped,
    until_stopped,
    upstream_lines,
    upstream_states,
)
from .db import db
from .demo_provider import main as fake_main
from .info import SETUP_COMMANDS
from .runtime import announce, withdraw
from .ui import ui


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="recall")
def main() -> None:
    """recall: a local-first conversation-state proxy and offline cache for LLM APIs."""


@main.command()
@config_and_db_options
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8642; 0 picks a free one).")
@click.option("--mode", type=click.Choice(MODES), help="live: forward and record; replay: answer from recordings only; auto: replay hits, forward misses.")
@click.option("--cassette", "cassettes", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Serve recordings from this cassette (repeatable); with --mode replay no database is needed.")
@click.option("--replay-timing", type=click.Choice(["fast", "recorded"]), default="fast", show_default=True,
              help="Replay recorded streams at once, or at the pace they were recorded.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without [server] tokens.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Also answer requests addressed to this host name (repeatable; adds to [server] allowed_hosts).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Let web pages of this origin call recall, e.g. http://localhost:3000 (repeatable; adds to [server] cors_origins).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True,
              help="info: one line per request; warning: problems only.")
@click.option("-q", "--quiet", is_flag=True, help="No request lines: warnings and errors only (same as --log-level warning).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object per line (method, path, status, latency_ms, model, cache, interaction_id, error).")
def serve(config_path: str | None, db_path: str | None, host: str | None, port: int | None,
          mode: str | None, cassettes: tuple[str, ...], replay_timing: str, insecure: bool, log_level: str,
          quiet: bool, log_format: str, allowed_hosts: tuple[str, ...], cors_origins: tuple[str, ...]) -> None:
    """Run the proxy."""
    config = load_config_or_exit(config_path)
    config.cassettes = list(cassettes)
    config.replay_timing = replay_timing
    if host is not None:
        config.host = host
    if port is not None:
        config.port = port
    if mode is not None:
        config.mode = mode
    config.allowed_hosts = [*config.allowed_hosts, *allowed_hosts]
    config.cors_origins = [*config.cors_origins, *cors_origins]
    for origin in cors_origins:
        try:
            check_origin("--cors-origin", origin)
        except ConfigError as exc:
            click.echo(f"recall: {exc}", err=True)
            sys.exit(2)
    if not is_loopback(config.host) and not config.tokens and not insecure:
        click.echo(
            f"recall: refusing to listen on {config.host} without a proxy token: anyone who can reach it could"
            " read every stored conversation. Set [server] tokens, or pass --insecure if this is really wanted.",
            err=True,
        )
        sys.exit(2)
    try:
        url, _ = explain_db_url(db_path, config)
    except ConfigError as exc:
        click.echo(f"recall: {exc}", err=True)
        sys.exit(2)
    config.replay_session = os.environ.get("RECALL_REPLAY_SESSION") or None
    database: str | Path = url if url is not None else resolve_db_path(db_path, config)
    # One line per request from recall.access (proxy/http/request_log.py) and recall's errors, on stderr.
    configure_logging(log_level, log_format, quiet)
    new_loop = loop_factory(config.event_loop)
    run_until_stopped(_serve(config, database, _say_json if log_format == "json" else _say_text), new_loop)


def serving_what(config: Config, database: str | Path) -> str:
    """What the banner says is served: replay reads a copy of the database, and perhaps only cassettes."""
    cassettes = ", ".join(config.cassettes)
    if isinstance(database, str):  # a PostgreSQL URL: replay reads it and writes nothing there
        where = redacted(database)
        return f"{'replaying ' if config.mode == REPLAY else ''}db {where}" + (
            f", cassettes {cassettes}" if cassettes else "")
    path = database
    if config.mode != REPLAY:
        return f"db {path}" + (f", cassettes {cassettes}" if cassettes else "")
    if path.exists():
        return f"replaying a copy of {path}" + (f" and cassettes {cassettes}" if cassettes else "")
    if cassettes:
        return f"replaying cassettes {cassettes} (no database)"
    return f"nothing to replay: {path} does not exist and no --cassette was given, so every request will miss"


def _say_text(line: str) -> None:
    click.echo(line, err=True)


def _say_json(line: str) -> None:
    """Start-up and shut-down lines as log objects, so a JSON log has nothing but JSON lines."""
    click.echo(orjson.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "level": "info", "logger": "recall",
                             "message": line.strip()}).decode(), err=True)


async def _serve(config: Config, database: str | Path, say: Callable[[str], None] = _say_text) -> None:
    from ..http.app import start
    from ..store.records import StoreError

    try:
        runner, port = await start(config, database, settle_heap=True)
    except StoreError as exc:
        # One line and exit 2, as for a bad config: the database cannot be used as it is.
        click.echo(f"recall: bad database: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        exit_cannot_listen(config.host, config.port, exc)
    # Audit commands typed in any folder find this database through it (proxy/cli/runtime.py).
    # A PostgreSQL database is not announced: audit commands name it themselves (--db, RECALL_DB_URL).
    path = database if isinstance(database, Path) else None
    announced = announce(port=port, host=config.host,
                         db=path if path is not None and (path.exists() or config.mode != REPLAY) else None,
                         mode=config.mode, config=config.source, version=__version__)
    say(f"recall {__version__} listening on http://{config.host}:{port} (mode {config.mode}, "
        f"{serving_what(config, database)}, {loop_name()})")
    if not is_loopback(config.host) and not config.allowed_hosts:
        say("recall: note: requests must be addressed to a loopback name unless [server] allowed_hosts"
            " (--allowed-host) names the host apps reach this address by")
    for line in upstream_lines(upstream_states(config)):
        say(line)
    await until_stopped()
    say("recall: shutting down")
    withdraw(announced)
    await runner.cleanup()


for _command in (*AUDIT_COMMANDS, *SETUP_COMMANDS, cassette, db, ui):
    main.add_command(_command)
main.add_command(fake_main, name="demo")  # a demo upstream to try recall without a key (not a model)
