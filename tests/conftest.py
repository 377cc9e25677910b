"""Fixtures: a real recall and real fake providers on loopback, and a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proxy.cli.common import loop_factory
from proxy.config import EVENT_LOOPS, Config, Upstream
from proxy.http.app import start
from tests.support.contract import VIOLATIONS, load_all
from tests.support.contract.tap import check_recall
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_gemini import FakeGemini
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_parallel import FakeParallel
from tests.support.loop_thread import LoopThread
from tests.support.matrix import UPSTREAM_APIS, fakes_by_api
from tests.support.serving import running
from tests.support.stores import Backend

pytest_plugins = ["pytester", "tests.support.rigs", "tests.support.figures", "tests.support.profiles",
                  "tests.support.viewer_fixtures"]


@pytest.fixture(scope="session")
def provider_contracts_loaded() -> None:
    load_all()  # before any server answers: loading on their loop would stall them


@pytest.fixture(autouse=True)
def provider_contracts(provider_contracts_loaded: None) -> Iterator[None]:
    """Fails a test in which a fake provider or recall sent an answer off its provider's
    published contract (tests/support/contract; docs/FIDELITY.md). The answers are checked
    on the servers' thread as they are sent; this fixture is set up first and torn down
    last, after the servers have stopped, so every answer of the test has been seen."""
    VIOLATIONS.take()  # what a session-wide server sent between tests belongs to no test
    yield
    found = VIOLATIONS.take()
    if found:
        pytest.fail(f"{len(found)} answer(s) off the providers' contracts:\n" + "\n".join(f"- {v}" for v in found[:20]),
                    pytrace=False)


@pytest.fixture(scope="session")
def loop_thread(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    thread = LoopThread(loop_factory(request.config.getoption("--recall-loop")))
    yield thread
    thread.close()


@pytest.fixture
def fake_gemini(loop_thread: LoopThread) -> Iterator[FakeGemini]:
    yield from running(loop_thread, FakeGemini())


@pytest.fixture
def stateful_gemini(loop_thread: LoopThread) -> Iterator[FakeGemini]:
    yield from running(loop_thread, FakeGemini(stateful=True))


@pytest.fixture
def fake_anthropic(loop_thread: LoopThread) -> Iterator[FakeAnthropic]:
    yield from running(loop_thread, FakeAnthropic())


@pytest.fixture
def fake_parallel(loop_thread: LoopThread) -> Iterator[FakeParallel]:
    yield from running(loop_thread, FakeParallel())


@pytest.fixture
def fake_openai(loop_thread: LoopThread) -> Iterator[FakeOpenAI]:
    """A zero-data-retention OpenAI: stateless, answers from the history it is sent."""
    yield from running(loop_thread, FakeOpenAI())


@pytest.fixture
def stateful_openai(loop_thread: LoopThread) -> Iterator[FakeOpenAI]:
    yield from running(loop_thread, FakeOpenAI(stateful=True))


@pytest.fixture
def chat_only_openai(loop_thread: LoopThread) -> Iterator[FakeOpenAI]:
    """A Chat-Completions-only server, like vLLM, Ollama or llama.cpp."""
    yield from running(loop_thread, FakeOpenAI(chat_only=True))


@pytest.fixture
def stateful_parallel(loop_thread: LoopThread) -> Iterator[FakeParallel]:
    yield from running(loop_thread, FakeParallel(stateful=True))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--recall-store", choices=("sqlite", "postgres"), default=os.environ.get("RECALL_TEST_STORE"),
                     help="the database recall_factory's recalls run on: a SQLite file (default) or a fresh"
                          " PostgreSQL database each (also RECALL_TEST_STORE=postgres)")
    parser.addoption("--recall-loop", choices=EVENT_LOOPS, default=os.environ.get("RECALL_TEST_LOOP", "auto"),
                     help="the event loop the test servers (recall and the fakes) run on, as [server] event_loop"
                          " picks it for `recall serve`: auto (uvloop where installed), uvloop, asyncio")


def on_postgres(config: pytest.Config) -> bool:
    """Whether this run puts the `recall` fixtures on PostgreSQL (--recall-store=postgres)."""
    return config.getoption("--recall-store") == "postgres"


@dataclass
class Recall:
    url: str
    database: str | Path  # a SQLite file's Path, or a PostgreSQL URL (--recall-store=postgres)
    config: Config

    def base(self, upstream: str) -> str:
        return f"{self.url}/{upstream}"

    @property
    def db_path(self) -> Path:
        """The SQLite file; a test that reads the file itself (its bytes, the CLI on it) skips on PostgreSQL."""
        if not isinstance(self.database, Path):
            pytest.skip("reads recall's SQLite file itself; this run stores in PostgreSQL")
        return self.database

    def db_bytes(self) -> bytes:
        """Every byte recall has on disk: the database and its WAL."""
        data = b""
        for suffix in ("", "-wal", "-shm"):
            path = Path(str(self.db_path) + suffix)
            if path.exists():
                data += path.read_bytes()
        return data

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Rows of the database, on either backend (`?` markers; plain SQL both understand)."""
        if isinstance(self.database, Path):
            with sqlite3.connect(self.database) as db:
                return db.execute(sql, params).fetchall()
        return asyncio.run(Backend("postgres", self.database).query(sql, *params))


    def search_entries(self, word: str | None = None) -> int:
        """Entries of the full-text index (holding `word`, if given): SQLite's FTS5 table, or
        PostgreSQL's searchable text columns."""
        if isinstance(self.database, Path):
            if word is None:
                return int(self.query("SELECT count(*) FROM search_keys")[0][0])
            return int(self.query("SELECT count(*) FROM search_index WHERE search_index MATCH ?", word)[0][0])
        where = "search_input IS NOT NULL OR search_output IS NOT NULL"
        if word is None:
            return int(self.query(f"SELECT count(*) FROM interactions WHERE {where}")[0][0])
        return int(self.query("SELECT count(*) FROM interactions WHERE search_vector @@ plainto_tsquery('simple', ?)",
                              word)[0][0])


RecallFactory = Callable[..., Recall]


@pytest.fixture
def recall_factory(loop_thread: LoopThread, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RecallFactory]:
    """Starts recalls on loopback; on a SQLite file in tmp_path, or with --recall-store=postgres on
    a fresh PostgreSQL database (one per db_name: recalls given the same name share it)."""
    runners = []
    databases: dict[str, str] = {}

    def make(upstreams: dict[str, Upstream] | None = None, *, db_name: str = "recall.db", **settings: object) -> Recall:
        config = Config(host="127.0.0.1", port=0, **settings)  # type: ignore[arg-type]
        if upstreams:
            config.upstreams.update(upstreams)
        database: str | Path = tmp_path / db_name
        if on_postgres(request.config):
            if db_name not in databases:
                databases[db_name] = request.getfixturevalue("postgres_server").new_database()
            database = databases[db_name]
        runner, port = loop_thread.run(start(config, database, check_recall(config)))
        runners.append(runner)
        return Recall(f"http://127.0.0.1:{port}", database, config)

    yield make
    for runner in runners:
        loop_thread.run(runner.cleanup())


@pytest.fixture
def openai_recall(recall_factory: RecallFactory, fake_openai: FakeOpenAI, chat_only_openai: FakeOpenAI) -> Recall:
    """recall in front of a zero-data-retention OpenAI (`openai`, emulate) and a Chat-only server (`local`)."""
    return recall_factory({
        "openai": Upstream("openai", fake_openai.url, "openai", state="emulate"),
        "local": Upstream("local", chat_only_openai.url, "openai-chat"),
    })


@pytest.fixture
def recall(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> Recall:
    """recall with the fake Gemini mounted three ways: emulate, native-looking, and generateContent."""
    return recall_factory({
        "gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate"),
        "gemgen": Upstream("gemgen", fake_gemini.url, "gemini-generate"),
    })


# -- the translation matrix (tests/test_matrix.py, tests/test_translation.py) ----------------


@pytest.fixture(scope="session")
def matrix_fakes(loop_thread: LoopThread) -> Iterator[dict[str, Any]]:
    """One stateless fake provider per upstream `api`, shared by the matrix tests."""
    started = fakes_by_api()
    for fake in started.values():
        loop_thread.run(fake.start())
    yield started
    for fake in started.values():
        loop_thread.run(fake.stop())


@pytest.fixture(scope="session")
def matrix_recall(loop_thread: LoopThread, matrix_fakes: dict[str, Any],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recall]:
    """One recall with every upstream api mounted under its own name, recall keeping the state."""
    config = Config(host="127.0.0.1", port=0)
    config.upstreams = {api: Upstream(api, matrix_fakes[api].url, api, state="emulate") for api in UPSTREAM_APIS}
    db_path = tmp_path_factory.mktemp("matrix") / "recall.db"
    runner, port = loop_thread.run(start(config, db_path, check_recall(config)))
    yield Recall(f"http://127.0.0.1:{port}", db_path, config)
    loop_thread.run(runner.cleanup())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real PostgreSQL for the session (tests/support/postgres.py); each test takes its
    own database from it with `pg_url`. Its cluster lives in a directory of /tmp's own, not
    pytest's: pytest's are private to root, and the server runs as the postgres user."""
    from tests.support.postgres import PostgresServer, binaries

    if binaries() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI: PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer.start(Path(tempfile.mkdtemp(prefix="recall-pg-")))
    yield server
    server.close()


@pytest.fixture
def pg_url(postgres_server: Any) -> str:
    """The URL of a fresh, empty PostgreSQL database of the test's own."""
    return str(postgres_server.new_database())


@pytest.fixture(params=["sqlite", "postgres"])
def audit_backend(request: pytest.FixtureRequest) -> Any:
    """The audit commands' backend (tests/support/audit_backends.py): the SQLite file recall
    wrote, or a PostgreSQL database it was copied into."""
    from tests.support.audit_backends import AuditBackend

    if request.param == "postgres":
        return AuditBackend("postgres", request.getfixturevalue("postgres_server").new_database)
    return AuditBackend("sqlite")
