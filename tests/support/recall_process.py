"""recall as a real process: `python -m proxy serve --config ... --db ... --port 0`.

For the tests that need what only a process has: SIGKILL, SIGTERM, the command
line's start-up checks and its log on stderr.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from proxy.config import Upstream

_LISTENING = re.compile(r"listening on http://(?P<host>[^\s]+):(?P<port>\d+)")


def write_config(path: Path, upstreams: dict[str, Upstream], **server: object) -> Path:
    """A TOML config with these upstreams and [server] keys."""
    lines = ["[server]"]
    for key, value in server.items():
        lines.append(f"{key} = {_toml(value)}")
    for name, upstream in upstreams.items():
        lines += [f"[upstreams.{name}]", f'url = "{upstream.url}"', f'api = "{upstream.api}"',
                  f'state = "{upstream.state}"', f"timeout_s = {upstream.timeout_s}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


class RecallProcess:
    def __init__(self, config: Path | None, db: Path, log: Path, *args: str,
                 preexec: Callable[[], None] | None = None) -> None:
        self.config, self.db, self.log_path, self.args = config, db, log, args
        # Run in the child before recall starts (e.g. a lower open-files limit).
        self.preexec = preexec
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 20) -> RecallProcess:
        command = [sys.executable, "-m", "proxy", "serve", "--db", str(self.db), *self.args]
        if self.config is not None:
            command += ["--config", str(self.config)]
        if "--port" not in self.args:
            command += ["--port", "0"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        offset = len(self.log())  # a restart appends to the same log: read only this run's lines
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=Path(__file__).resolve().parents[2], preexec_fn=self.preexec)
        deadline = time.monotonic() + timeout
        while not (found := _LISTENING.search(self.log()[offset:])):
            if self.process.poll() is not None:
                raise RuntimeError(f"recall exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"recall did not start:\n{self.log()}")
            time.sleep(0.05)
        host = "127.0.0.1" if found.group("host") in ("0.0.0.0", "::") else found.group("host")
        self.url = f"http://{host}:{found.group('port')}"
        while True:
            try:
                if httpx.get(f"{self.url}/_recall/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"recall does not answer on {self.url}:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all, as in a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the process to exit by itself; returns its exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
