"""A real PostgreSQL server for the tests: Debian's binaries, a cluster in a temp directory.

`PostgresServer.start(root)` runs initdb into `root` and `pg_ctl start` on a free loopback
port, as the unprivileged `postgres` user when the tests run as root (initdb refuses root),
and `stop()` ends it. Each test that wants a database asks `new_database()` for a fresh one,
so tests never see each other's rows. `.ci/run` installs the `postgresql` package; where
it is missing the PostgreSQL tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

PASSWORD = "recall-test"
USER = "recall"


def binaries() -> Path | None:
    """Debian's PostgreSQL bin directory (the newest installed), or None."""
    root = Path("/usr/lib/postgresql")
    found = sorted((p for p in root.glob("*/bin") if (p / "pg_ctl").exists()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = port
        self._as_user: list[str] = []

    @classmethod
    def start(cls, root: Path) -> PostgresServer:
        bin_dir = binaries()
        if bin_dir is None:
            raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
        server = cls(bin_dir, root, _free_port())
        server._init()
        server.restart()
        server.sql("postgres", f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}' CREATEDB")
        return server

    def _init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root: the cluster belongs to Debian's postgres user.
            entry = pwd.getpwnam("postgres")
            shutil.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.root.chmod(0o700)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        password_file = self.root / "superuser-password"
        password_file.write_text(PASSWORD)
        if self._as_user:
            shutil.chown(password_file, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
                  f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8")

    def _run(self, tool: str, *args: str) -> str:
        env = {**os.environ, "PGPASSWORD": PASSWORD, "LC_ALL": "C.UTF-8"}
        done = subprocess.run([*self._as_user, str(self.bin_dir / tool), *args], capture_output=True, text=True,
                              env=env, cwd="/", timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def sql(self, database: str, statement: str) -> str:
        return self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-qAt", "-c", statement)

    def url(self, database: str, *, user: str = USER, password: str = PASSWORD) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database owned by the test role; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.sql("postgres", f"CREATE DATABASE {name} OWNER {USER}")
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (it can be started again with `restart`)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Start the server (again). Durability is off: these clusters live for one test run."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                  "start")

    def close(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)
