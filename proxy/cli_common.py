"""What every `recall` command shares: the --config and --db options and loading them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .audit.when import parse_duration, parse_moment
from .config import Config, ConfigError, load_config, resolve_db_path

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


def db_path_of(config_path: str | None, db_path: str | None) -> Path:
    return resolve_db_path(db_path, load_config_or_exit(config_path))


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
