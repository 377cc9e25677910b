"""`recall info`: what recall would use here, and why: version, config, database, mode, upstreams."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..audit.render import dumps
from ..config import explain_config_file
from .common import config_and_db_options, json_option, load_config_or_exit, locate_database
from .runtime import running_servers


def _size(path: Path) -> int | None:
    """Bytes on disk, the write-ahead log included (it holds the newest writes)."""
    if not path.exists():
        return None
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def info_record(config_path: str | None, db_path: str | None) -> dict[str, Any]:
    config_file, config_why = explain_config_file(config_path)
    config = load_config_or_exit(config_path)
    database, db_why = locate_database(db_path, config)
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "config": {"path": str(config_file) if config_file else None, "why": config_why},
        "database": {"path": str(database), "why": db_why, "exists": database.exists(), "bytes": _size(database)},
        "mode": config.mode,
        "listen": f"{config.host}:{config.port}",
        "upstreams": {name: {"url": u.url, "api": u.api, "state": "emulate" if u.emulates else "native"}
                      for name, u in sorted(config.upstreams.items())},
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
    click.echo(f"database:  {database['path']} ({database['why']}; {_human_size(database['bytes'])})")
    click.echo(f"mode:      {record['mode']}")
    click.echo(f"listen:    {record['listen']}")
    click.echo("upstreams:")
    for name, upstream in record["upstreams"].items():
        click.echo(f"  /{name:<10} -> {upstream['url']} (api {upstream['api']}, {upstream['state']})")
    if record["running"]:
        click.echo("running:")
        for server in record["running"]:
            click.echo(f"  port {server['port']} (pid {server['pid']}, mode {server['mode']}): {server['db'] or '-'}")
    else:
        click.echo("running:   no recall serve is running")
