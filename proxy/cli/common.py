"""What every `recall` command shares: the --config and --db options and loading them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from aiohttp import web

from ..audit.when import parse_duration, parse_moment
from ..config import DEFAULT_DB_REASON, Config, ConfigError, explain_db_path, load_config
from .runtime import running_servers

config_option = click.option(
    "--config", "config_path", metavar="PATH",
    help="Config file (default: RECALL_CONFIG, ./recall.toml, ~/.config/recall/config.toml).",
)
db_option = click.option(
    "--db", "db_path", metavar="PATH",
    help="Database file (default: RECALL_DB, [storage] path, ~/.local/share/recall/recall.db).",
)


def config_and_db_options(command: Callable[..., Any]) -> Callable[..., Any]:
    return config_option(db_option(command))


def load_config_or_exit(config_path: str | None) -> Config:
    """The config, or exit 2 with one line naming the file, the key and the reason."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo(f"recall: bad config: {exc}", err=True)
        sys.exit(2)


def exit_cannot_listen(host: str, port: int, exc: OSError) -> NoReturn:
    """One line for a port that is taken (or a host that is not ours), then exit 2: no traceback."""
    click.echo(f"recall: cannot listen on {host}:{port}: {exc.strerror or exc};"
               " choose another --port (0 picks a free one)", err=True)
    sys.exit(2)


async def listen_on_loopback(app: web.Application, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app` on 127.0.0.1:`port` (0 picks a free one): the runner and the bound port,
    or one line and exit 2 when the port cannot be had."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        exit_cannot_listen("127.0.0.1", port, exc)
    return runner, runner.addresses[0][1]


def db_path_of(config_path: str | None, db_path: str | None) -> Path:
    return locate_database(db_path, load_config_or_exit(config_path))[0]


def locate_database(db_path: str | None, config: Config) -> tuple[Path, str]:
    """The database a command reads, and why.

    --db, RECALL_DB and [storage] path win. Without them, a running `recall serve`
    (proxy/cli/runtime.py) names the file it serves, so a command typed in another
    folder reads the same database; only with no server running is it the default."""
    path, why = explain_db_path(db_path, config)
    if why != DEFAULT_DB_REASON:
        return path, why
    serving = {record["db"]: record for record in running_servers() if record.get("db")}
    if len(serving) == 1:
        ((db, record),) = serving.items()
        return Path(db), f"served by the recall running on port {record['port']} (pid {record['pid']})"
    if len(serving) > 1 and str(path.resolve()) not in serving:
        listed = "; ".join(f"port {r['port']}: {db}" for db, r in serving.items())
        raise click.ClickException(f"several recall servers are running on different databases ({listed});"
                                   " pass --db PATH to choose one")
    return path, why


class _Moment(click.ParamType):
    name = "WHEN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_moment(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


MOMENT = _Moment()
DURATION = _Duration()
since_option = click.option("--since", type=MOMENT, help="From this time on: 2026-01-31, 2026-01-31T09:30 (UTC) or 7d (ago).")
until_option = click.option("--until", type=MOMENT, help="Before this time (same forms as --since).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
