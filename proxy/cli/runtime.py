"""Where a running `recall serve` says which database it serves.

The audit commands read the same file as the server, but a relative
`[storage] path`, or a config in another folder, means a command typed
elsewhere would look at the default database instead. So `recall serve` writes
one small JSON file per listening port, `$XDG_RUNTIME_DIR/recall/<port>.json`
(else `$XDG_CACHE_HOME/recall/run/<port>.json`, `~/.cache/recall/run/`),
holding its pid, address, mode, config and absolute database path, and removes
it when it stops. A file whose process is gone is stale and ignored (and
removed). Commands that were given no database fall back to these.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import orjson


def runtime_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "recall"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "recall" / "run"


def announce(*, port: int, host: str, db: Path | None, mode: str, config: str | None, version: str) -> Path:
    """Write this server's runtime file (atomically, readable by its owner only)."""
    folder = runtime_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"{port}.json"
    record = {"pid": os.getpid(), "host": host, "port": port, "db": str(db.resolve()) if db else None,
              "mode": mode, "config": str(Path(config).resolve()) if config else None, "version": version,
              "started_at": time.time()}
    partial = folder / f".{port}.json.{os.getpid()}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(record))
    partial.replace(target)
    return target


def withdraw(path: Path) -> None:
    """Remove our runtime file, unless another server has since taken the port's file."""
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        if orjson.loads(path.read_bytes()).get("pid") == os.getpid():
            path.unlink()


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, though not ours
        return True
    return True


def running_servers() -> list[dict[str, Any]]:
    """The `recall serve` processes running now, by port; stale files are removed on the way."""
    folder = runtime_dir()
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if not isinstance(record, dict) or not _alive(record.get("pid")):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        record["file"] = str(path)
        found.append(record)
    return found
