"""What the `recall` commands share: the --config, --db, --since/--until and --json options and
their types; loading the config and finding the database; the upstream lines; listening on
loopback and waiting for a signal to stop (serve, ui, demo)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from aiohttp import web

from ..audit.when import parse_duration, parse_moment
from ..config import (
    DEFAULT_DB_REASON,
    Config,
    ConfigError,
    explain_db_path,
    explain_db_url,
    is_postgres_url,
    load_config,
)
from ..store.locations import Location
from .runtime import running_servers

config_option = click.option(
    "--config", "config_path", metavar="PATH",
    help="Config file (default: RECALL_CONFIG, ./recall.toml, ~/.config/recall/config.toml).",
)
db_option = click.option(
    "--db", "db_path", metavar="PATH|URL",
    help="Database file, or a postgresql:// URL (default: RECALL_DB_URL, [storage] url, RECALL_DB,"
         " [storage] path, ~/.local/share/recall/recall.db).",
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


async def serve_on_loopback(app: web.Application, port: int, announce: Callable[[int], None]) -> None:
    """Serve `app` on 127.0.0.1:`port` (0 picks a free one) until SIGINT or SIGTERM; `announce`
    is told the bound port once it listens. A port that cannot be had is one line and exit 2."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        exit_cannot_listen("127.0.0.1", port, exc)
    announce(runner.addresses[0][1])
    await until_stopped()
    await runner.cleanup()


async def until_stopped() -> None:
    """Return on SIGINT (Ctrl-C) or SIGTERM, so that a serving command shuts down cleanly on either."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_until_stopped(serving: Coroutine[Any, Any, None],
                      new_loop: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
    """Run a serving command's coroutine (which awaits until_stopped) on a loop `new_loop` makes
    (loop_factory; asyncio's by default); a Ctrl-C that comes before its handlers are set stops it
    quietly too."""
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(serving)
    except KeyboardInterrupt:
        pass


def loop_factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the loop `event_loop` names ("auto": uvloop where it is installed; None: asyncio's).
    uvloop asked for by name and not installed stops the command with one line."""
    if event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if event_loop == "uvloop":
            click.echo('recall: [server] event_loop = "uvloop", but uvloop is not installed here;'
                       ' install it (pip install uvloop), or set event_loop = "auto"', err=True)
            sys.exit(2)
        return None
    return uvloop.new_event_loop


def loop_name() -> str:
    """The running event loop's kind, as the serve banner names it."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


def upstream_states(config: Config) -> dict[str, dict[str, str]]:
    """Each upstream by name, sorted: its url, api and state (emulate or native)."""
    return {name: {"url": u.url, "api": u.api, "state": "emulate" if u.emulates else "native"}
            for name, u in sorted(config.upstreams.items())}


def upstream_lines(states: dict[str, dict[str, str]]) -> list[str]:
    """One line per upstream of upstream_states, as serve, info and config check print them."""
    return [f"  /{name:<10} -> {u['url']} (api {u['api']}, {u['state']})" for name, u in states.items()]


SQLITE_SCHEME = "sqlite://"


def parse_location(text: str) -> Location:
    """A database as a user names it: a postgresql:// URL, a `sqlite://` URL whose rest is the
    file's path (`sqlite:///srv/recall.db` is /srv/recall.db), or a plain path."""
    if is_postgres_url(text):
        return text
    return Path(text.removeprefix(SQLITE_SCHEME)).expanduser()


def store_of(config_path: str | None, db_path: str | None) -> Location:
    """The database a command works on: a postgresql:// URL or a SQLite file (locate_store)."""
    return locate_store(db_path, load_config_or_exit(config_path))[0]


def locate_store(db_path: str | None, config: Config) -> tuple[Location, str]:
    """The database a command works on, and why: a PostgreSQL URL when --db, RECALL_DB_URL or
    [storage] url names one (config.explain_db_url), else the SQLite file (locate_database).
    A RECALL_DB_URL that is not a postgresql:// URL is a bad config: one line, exit 2."""
    try:
        url, why = explain_db_url(db_path, config)
    except ConfigError as exc:
        click.echo(f"recall: bad config: {exc}", err=True)
        sys.exit(2)
    if url is not None:
        return url, why
    return locate_database(db_path, config)


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


if TYPE_CHECKING:
    _FloatParam = click.ParamType[float]
else:  # click before 8.4 has no generic ParamType, and `click>=8.1` is what recall asks for
    _FloatParam = click.ParamType


class _ParsedFloat(_FloatParam):
    """An option whose text `parse` reads as a float; its ValueError becomes click's usage error."""

    def __init__(self, name: str, parse: Callable[[str], float]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


MOMENT = _ParsedFloat("WHEN", parse_moment)  # an absolute time, or an age such as 7d
DURATION = _ParsedFloat("DURATION", parse_duration)
since_option = click.option("--since", type=MOMENT, help="From this time on: 2026-01-31, 2026-01-31T09:30 (UTC) or 7d (ago).")
until_option = click.option("--until", type=MOMENT, help="Before this time (same forms as --since).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
