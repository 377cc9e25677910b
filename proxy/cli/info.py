"""The commands that say how recall is set up here: `recall info` (what recall would use, and
why: version, config, database, mode, upstreams), `recall env` (the exports that point each SDK
at recall) and `recall config check`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..audit.render import dumps
from ..config import (
    Config,
    ConfigError,
    explain_config_file,
    explain_db_path,
    explain_db_url,
    find_config_file,
    load_config,
    resolve_db_path,
)
from ..sdk_env import base_urls, env_lines, placeholder_key_lines, placeholder_keys
from ..store.locations import is_postgres, shown
from .common import (
    config_and_db_options,
    config_option,
    json_option,
    load_config_or_exit,
    locate_store,
    upstream_lines,
    upstream_states,
)
from .runtime import running_servers


def _size(path: Path) -> int | None:
    """Bytes on disk, the write-ahead log included (it holds the newest writes)."""
    if not path.exists():
        return None
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def info_record(config_path: str | None, db_path: str | None) -> dict[str, Any]:
    config_file, config_why = explain_config_file(config_path)
    config = load_config_or_exit(config_path)
    location, db_why = locate_store(db_path, config)
    if is_postgres(location):
        database: dict[str, Any] = {"backend": "postgresql", "url": shown(location), "why": db_why}
    else:
        path = Path(location)
        database = {"backend": "sqlite", "path": str(path), "why": db_why, "exists": path.exists(),
                    "bytes": _size(path)}
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "config": {"path": str(config_file) if config_file else None, "why": config_why},
        "database": database,
        "mode": config.mode,
        "listen": f"{config.host}:{config.port}",
        "upstreams": upstream_states(config),
        "running": [{k: r.get(k) for k in ("port", "pid", "host", "mode", "db", "config")} for r in running_servers()],
    }


def _human_size(size: int | None) -> str:
    if size is None:
        return "not created yet"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@click.command()
@config_and_db_options
@json_option
def info(config_path: str | None, db_path: str | None, as_json: bool) -> None:
    """Show what recall uses here, and why: version, config file, database, mode, upstreams.

    Also lists the `recall serve` processes running for this user.
    """
    record = info_record(config_path, db_path)
    if as_json:
        click.echo(dumps(record))
        return
    config, database = record["config"], record["database"]
    click.echo(f"recall {record['version']} (Python {record['python']})")
    click.echo(f"config:    {config['path'] or '-'} ({config['why']})")
    if database["backend"] == "postgresql":
        click.echo(f"database:  PostgreSQL at {database['url']} ({database['why']})")
    else:
        click.echo(f"database:  {database['path']} ({database['why']}; {_human_size(database['bytes'])})")
    click.echo(f"mode:      {record['mode']}")
    click.echo(f"listen:    {record['listen']}")
    click.echo("upstreams:")
    for line in upstream_lines(record["upstreams"]):
        click.echo(line)
    if record["running"]:
        click.echo("running:")
        for server in record["running"]:
            click.echo(f"  port {server['port']} (pid {server['pid']}, mode {server['mode']}): {server['db'] or '-'}")
    else:
        click.echo("running:   no recall serve is running")


@click.command()
@config_option
@click.option("--replay", is_flag=True,
              help="Also give every SDK whose key variable is unset a placeholder key (replay sends no key anywhere).")
@json_option
def env(config_path: str | None, replay: bool, as_json: bool) -> None:
    """Print the base-URL exports that point each SDK at recall.

    Use as: eval "$(recall env)". With --replay, SDKs that refuse to start
    without a key get a placeholder where none is set (a set key is kept).
    """
    config = load_config_or_exit(config_path)
    backend, where = _database_named(config)
    if as_json:
        record: dict[str, Any] = {"base_urls": base_urls(config), "database": {"backend": backend, "location": where}}
        if replay:
            record["placeholder_keys"] = placeholder_keys(os.environ)
        click.echo(dumps(record))
        return
    for line in [*env_lines(config), *(placeholder_key_lines() if replay else [])]:
        click.echo(line)
    click.echo(f"# recall keeps its records in {'PostgreSQL at' if backend == 'postgresql' else 'the SQLite file'} {where}")


def _database_named(config: Config) -> tuple[str, str]:
    """The backend the settings name and where it is (a URL's password hidden), without asking a
    running server which file it serves (`recall info` does that)."""
    try:
        url, _ = explain_db_url(None, config)
    except ConfigError as exc:
        click.echo(f"recall: bad config: {exc}", err=True)
        sys.exit(2)
    return ("postgresql", shown(url)) if url else ("sqlite", str(explain_db_path(None, config)[0]))


@click.group("config")
def config_group() -> None:
    """Check the config file."""


@config_group.command("check")
@click.argument("file", required=False, metavar="[PATH]")
@config_and_db_options
@json_option
def config_check(file: str | None, config_path: str | None, db_path: str | None, as_json: bool) -> None:
    """Validate a config file (PATH, or the one `recall serve` would read).

    Exits 2 with the file, the key and the reason on one line if it is bad.
    """
    path = find_config_file(file or config_path)
    if as_json:
        try:
            config = load_config(str(path) if path else None)
        except ConfigError as exc:
            click.echo(dumps({"ok": False, "file": exc.source, "key": exc.key, "reason": exc.reason}))
            sys.exit(2)
        database = resolve_db_path(db_path, config)
        click.echo(dumps({"ok": True, "file": str(path) if path else None, "database": str(database),
                          "database_exists": Path(database).exists(), "mode": config.mode,
                          "upstreams": upstream_states(config)}))
        return
    if path is None:
        click.echo("no config file found (RECALL_CONFIG, ./recall.toml, ~/.config/recall/config.toml):"
                   " the built-in defaults apply")
    config = load_config_or_exit(str(path) if path else None)
    if path is not None:
        click.echo(f"{path}: ok")
    for line in upstream_lines(upstream_states(config)):
        click.echo(line)
    database = resolve_db_path(db_path, config)
    click.echo(f"  database: {database}{'' if Path(database).exists() else ' (not created yet)'}")


SETUP_COMMANDS: list[click.Command] = [info, env, config_group]
