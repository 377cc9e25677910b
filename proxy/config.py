"""Configuration: the TOML file, its defaults, and where files live.

Every key is optional. A bad file raises ConfigError naming the file, the key
and the reason in one line, which `recall serve` prints before exiting 2.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .codecs import BUILTIN_URLS, STATEFUL_APIS, UPSTREAM_CODECS, known_window
from .model import DEFAULT_CONTEXT_MAX_CHARS

# What an upstream's `api` may say: the wire APIs recall has a codec to call (codecs/__init__.py).
UPSTREAM_APIS = tuple(UPSTREAM_CODECS)
STATES = ("native", "emulate")
MODES = ("live", "replay", "auto")


class ConfigError(Exception):
    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    url: str
    api: str
    state: str = "native"
    api_key_env: str | None = None
    timeout_s: float = 600.0
    # Where recall folds a conversation into one input (api = "parallel" in
    # emulate mode): at most this many characters of earlier turns go with it.
    context_max_chars: int = DEFAULT_CONTEXT_MAX_CHARS
    # A provider's stream ends as failed after this long without an event (default: timeout_s)
    # or this long in all: one that trickles forever after its app left must not hold a
    # connection, a task and an in-progress node for ever.
    stream_idle_s: float | None = None
    stream_max_s: float = 7200.0
    # The model's context window in tokens, for every model of this upstream, and per model
    # (`context_window = {"gpt-4o" = 128000}`); None: the known windows (codecs/windows.py).
    context_window: int | None = None
    context_windows: tuple[tuple[str, int], ...] = ()

    def window_for(self, model: str | None) -> int | None:
        """The context window of `model` on this upstream: a per-model setting, the upstream's,
        or the model's published window; None when none is known."""
        for name, tokens in self.context_windows:
            if name == model:
                return tokens
        return self.context_window or known_window(model)

    @property
    def stream_limits(self) -> dict[str, Any]:
        """The keyword arguments of sse.iter_events for this upstream's streams."""
        return {"idle_s": self.stream_idle_s or self.timeout_s, "max_s": self.stream_max_s, "upstream": self.name}

    @property
    def emulates(self) -> bool:
        """recall keeps this upstream's conversations: asked to, or its provider cannot."""
        return self.state == "emulate" or self.api not in STATEFUL_APIS


# Every provider whose codec names a root URL is mounted under its `api` value.
BUILTIN_UPSTREAMS: dict[str, Upstream] = {api: Upstream(api, url, api) for api, url in BUILTIN_URLS.items()}


@dataclass(slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8642
    tokens: list[str] = field(default_factory=list)
    max_body_mb: int = 32
    # On SIGTERM, requests in flight get this long to finish before they are cut.
    shutdown_grace_s: float = 10.0
    # Host names (besides loopback ones) requests may be addressed to, and web origins
    # whose pages may call recall (proxy/origin.py).
    allowed_hosts: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)
    # Requests answered at once; past it, 503. 0: sized from the open-files limit (proxy/limits.py).
    max_connections: int = 0
    # The event loop `recall serve` runs on: "auto" takes uvloop where it is installed (about a
    # fifth less CPU per turn, docs/PERFORMANCE.md), "asyncio" the standard library's.
    event_loop: str = "auto"
    db_path: str | None = None
    # A PostgreSQL database shared by several instances ([storage] url, RECALL_DB_URL): wins over db_path.
    db_url: str | None = None
    # Instances replaying one session together on a shared PostgreSQL name it alike
    # (RECALL_REPLAY_SESSION): the n-th identical request of the session gets the n-th recording.
    replay_session: str | None = None
    log_unstored: bool = True
    retention_days: int = 0
    # Recently active threads whose chains are read into memory in the background at start
    # (proxy/store/chain_cache.py): their first turn after a start does not rebuild them. 0: none.
    warm_chains: int = 32
    mode: str = "live"
    ignore_fields: list[str] = field(default_factory=lambda: ["user", "metadata", "stream_options"])
    upstreams: dict[str, Upstream] = field(default_factory=lambda: dict(BUILTIN_UPSTREAMS))
    source: str | None = None
    # Set from the command line only: cassette files to serve from, and whether a
    # replayed stream keeps its recorded pace.
    cassettes: list[str] = field(default_factory=list)
    replay_timing: str = "fast"
    # What a replay miss tells the app to do to record it (the pytest plugin names its flag).
    miss_hint: str | None = None


EVENT_LOOPS = ("auto", "uvloop", "asyncio")

# section -> key -> (attribute on Config, expected type, allowed values or None)
_SCALARS: dict[str, dict[str, tuple[str, type | tuple[type, ...], tuple[Any, ...] | None]]] = {
    "server": {
        "host": ("host", str, None),
        "port": ("port", int, None),
        "tokens": ("tokens", list, None),
        "max_body_mb": ("max_body_mb", int, None),
        "shutdown_grace_s": ("shutdown_grace_s", (int, float), None),
        "allowed_hosts": ("allowed_hosts", list, None),
        "cors_origins": ("cors_origins", list, None),
        "max_connections": ("max_connections", int, None),
        "event_loop": ("event_loop", str, EVENT_LOOPS),
    },
    "storage": {
        "path": ("db_path", str, None),
        "url": ("db_url", str, None),
        "log_unstored": ("log_unstored", bool, None),
        "retention_days": ("retention_days", int, None),
        "warm_chains": ("warm_chains", int, None),
    },
    "cache": {
        "mode": ("mode", str, MODES),
        "ignore_fields": ("ignore_fields", list, None),
    },
}

_UPSTREAM_KEYS: dict[str, tuple[type | tuple[type, ...], tuple[Any, ...] | None]] = {
    "url": (str, None),
    "api": (str, UPSTREAM_APIS),
    "state": (str, STATES),
    "api_key_env": (str, None),
    "timeout_s": ((int, float), None),
    "context_max_chars": (int, None),
    "stream_idle_s": ((int, float), None),
    "stream_max_s": ((int, float), None),
    "context_window": ((int, dict), None),
}


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", float: "a number"}
    if isinstance(expected, tuple):
        return "a number of tokens or a table of model = tokens" if dict in expected else "a number"
    return names.get(expected, expected.__name__)


def _check(source: str, key: str, value: Any, expected: type | tuple[type, ...], allowed: tuple[Any, ...] | None) -> Any:
    # bool is an int in Python; a port of `true` is still a mistake.
    if isinstance(value, bool) and expected is not bool:
        raise ConfigError(source, key, f"must be {_type_name(expected)}, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(source, key, f"must be {_type_name(expected)}, got {value!r}")
    if allowed is not None and value not in allowed:
        raise ConfigError(source, key, f"must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    """Build a Config from parsed TOML, checking every key."""
    config = Config(source=source)
    for section, values in data.items():
        if section == "upstreams":
            if not isinstance(values, dict):
                raise ConfigError(source, "upstreams", "must be a table of [upstreams.NAME] tables")
            for name, table in values.items():
                config.upstreams[name] = _parse_upstream(source, name, table, config.upstreams.get(name))
            continue
        if section not in _SCALARS:
            raise ConfigError(source, f"[{section}]", f"unknown section; known: {', '.join([*_SCALARS, 'upstreams'])}")
        if not isinstance(values, dict):
            raise ConfigError(source, f"[{section}]", "must be a table")
        for key, value in values.items():
            spec = _SCALARS[section].get(key)
            if spec is None:
                known = ", ".join(_SCALARS[section])
                raise ConfigError(source, f"[{section}] {key}", f"unknown key; known keys: {known}")
            attr, expected, allowed = spec
            setattr(config, attr, _check(source, f"[{section}] {key}", value, expected, allowed))
    _validate(config, source)
    return config


def _parse_upstream(source: str, name: str, table: Any, base: Upstream | None) -> Upstream:
    where = f"[upstreams.{name}]"
    if not name or not all(c.isalnum() or c in "-_" for c in name) or name.startswith("_"):
        raise ConfigError(source, where, "a name is letters, digits, '-' and '_' and does not start with '_'")
    if not isinstance(table, dict):
        raise ConfigError(source, where, "must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _UPSTREAM_KEYS:
            raise ConfigError(source, f"{where} {key}", f"unknown key; known keys: {', '.join(_UPSTREAM_KEYS)}")
        values[key] = _check(source, f"{where} {key}", value, *_UPSTREAM_KEYS[key])
    if base is None:
        for required in ("url", "api"):
            if required not in values:
                raise ConfigError(source, f"{where} {required}", "is required for an upstream that is not built in")
        upstream = Upstream(name=name, url=values["url"], api=values["api"])
    else:
        upstream = base
    if isinstance(values.get("context_window"), dict):
        values["context_windows"] = _model_windows(source, f"{where} context_window", values.pop("context_window"))
    upstream = replace(upstream, **values)
    if not upstream.url.startswith(("http://", "https://")):
        raise ConfigError(source, f"{where} url", f"must start with http:// or https://; got {upstream.url!r}")
    if upstream.timeout_s <= 0:
        raise ConfigError(source, f"{where} timeout_s", "must be greater than 0")
    if upstream.context_max_chars <= 0:
        raise ConfigError(source, f"{where} context_max_chars", "must be greater than 0")
    if upstream.context_window is not None and upstream.context_window <= 0:
        raise ConfigError(source, f"{where} context_window", "must be a number of tokens greater than 0")
    for key in ("stream_idle_s", "stream_max_s"):
        value = getattr(upstream, key)
        if value is not None and value <= 0:
            raise ConfigError(source, f"{where} {key}", "must be greater than 0 seconds")
    return replace(upstream, url=upstream.url.rstrip("/"), timeout_s=float(upstream.timeout_s))


def _model_windows(source: str, key: str, table: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """`context_window = {"model" = tokens, …}`: each model's window, checked."""
    windows = []
    for model, tokens in table.items():
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
            raise ConfigError(source, f"{key}.{model}", f"must be a number of tokens greater than 0; got {tokens!r}")
        windows.append((model, tokens))
    return tuple(windows)


def _validate(config: Config, source: str) -> None:
    if not 0 < config.port < 65536:
        raise ConfigError(source, "[server] port", f"must be between 1 and 65535; got {config.port}")
    if config.max_body_mb <= 0:
        raise ConfigError(source, "[server] max_body_mb", "must be greater than 0")
    if config.shutdown_grace_s < 0:
        raise ConfigError(source, "[server] shutdown_grace_s", "must be 0 or more seconds")
    if config.warm_chains < 0:
        raise ConfigError(source, "[storage] warm_chains", "must be 0 (warm none at start) or more")
    if config.retention_days < 0:
        raise ConfigError(source, "[storage] retention_days", "must be 0 (keep forever) or more")
    if config.db_url is not None and not is_postgres_url(config.db_url):
        raise ConfigError(source, "[storage] url", _NOT_POSTGRES.format(scheme=config.db_url.split(":", 1)[0]))
    for key, items in (("[server] tokens", config.tokens), ("[cache] ignore_fields", config.ignore_fields),
                       ("[server] allowed_hosts", config.allowed_hosts), ("[server] cors_origins", config.cors_origins)):
        if not all(isinstance(item, str) and item for item in items):
            raise ConfigError(source, key, "must be a list of non-empty strings")
    if config.max_connections < 0:
        raise ConfigError(source, "[server] max_connections", "must be 0 (sized from the open-files limit) or more")
    for host in config.allowed_hosts:
        if "/" in host or " " in host:
            raise ConfigError(source, "[server] allowed_hosts",
                              f"{host!r} is not a host name; write a name or name:port, e.g. \"recall.internal\"")
    for origin in config.cors_origins:
        check_origin(source, origin)


def check_origin(source: str, origin: str) -> None:
    """A web origin is scheme://host[:port], nothing more; `*` would let every page spend the key."""
    scheme, sep, rest = origin.partition("://")
    if origin.strip() == "*":
        raise ConfigError(source, "[server] cors_origins", "'*' would let any web page use recall; name the origins")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest.rstrip("/"):
        raise ConfigError(source, "[server] cors_origins",
                          f"{origin!r} is not an origin; write scheme://host[:port], e.g. \"http://localhost:3000\"")


def find_config_file(explicit: str | None) -> Path | None:
    """--config > RECALL_CONFIG > ./recall.toml > $XDG_CONFIG_HOME/recall/config.toml."""
    return explain_config_file(explicit)[0]


def explain_config_file(explicit: str | None) -> tuple[Path | None, str]:
    """The config file recall reads, and why that one (for `recall info`)."""
    if explicit:
        return Path(explicit).expanduser(), "--config"
    if env := os.environ.get("RECALL_CONFIG"):
        return Path(env).expanduser(), "RECALL_CONFIG"
    local = Path("recall.toml")
    if local.is_file():
        return local, "./recall.toml in the current directory"
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    user = xdg / "recall" / "config.toml"
    if user.is_file():
        return user, "the user config file"
    return None, "none found (RECALL_CONFIG, ./recall.toml, ~/.config/recall/config.toml): built-in defaults"


def load_config(explicit: str | None = None) -> Config:
    path = find_config_file(explicit)
    if path is None:
        return Config()
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "file", "does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "file", f"cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "syntax", str(exc)) from None
    return parse_config(data, source)


def resolve_db_path(explicit: str | None, config: Config) -> Path:
    """--db > RECALL_DB > [storage] path > $XDG_DATA_HOME/recall/recall.db."""
    return explain_db_path(explicit, config)[0]


DEFAULT_DB_REASON = "the default"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_NOT_POSTGRES = "must be a postgresql:// URL (got {scheme}:…); for a SQLite file, set [storage] path or RECALL_DB"


def is_postgres_url(location: str) -> bool:
    return location.startswith(POSTGRES_SCHEMES)


def explain_db_url(explicit: str | None, config: Config) -> tuple[str | None, str]:
    """The PostgreSQL database to use, and why: --db given a postgresql:// URL > RECALL_DB_URL >
    [storage] url. (None, "") when none is named: the SQLite file (explain_db_path) is used."""
    if explicit:
        return (explicit, "--db") if is_postgres_url(explicit) else (None, "")
    if env := os.environ.get("RECALL_DB_URL"):
        if not is_postgres_url(env):
            raise ConfigError("RECALL_DB_URL", "value", _NOT_POSTGRES.format(scheme=env.split(":", 1)[0]))
        return env, "RECALL_DB_URL"
    if config.db_url:
        return config.db_url, f"[storage] url in {config.source}"
    return None, ""



def explain_db_path(explicit: str | None, config: Config) -> tuple[Path, str]:
    """The database file, and why that one (DEFAULT_DB_REASON when nothing names one)."""
    for chosen, why in ((explicit, "--db"), (os.environ.get("RECALL_DB"), "RECALL_DB"),
                        (config.db_path, f"[storage] path in {config.source}")):
        if chosen:
            return Path(chosen).expanduser(), why
    xdg = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return xdg / "recall" / "recall.db", DEFAULT_DB_REASON
