"""The `recall` command as a newcomer meets it: env, info, serve's start-up, ids, purge, completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.sdk_env import PLACEHOLDER_KEY

from .support.conversations import cli

ROOT = Path(__file__).resolve().parent.parent
RECALL = [sys.executable, "-m", "proxy"]


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands must not pick up a config, a database or a running server of the machine's."""
    for variable in ("RECALL_CONFIG", "RECALL_DB"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)


def _shell(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_env_replay_gives_placeholders_only_where_no_key_is_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "PARALLEL_API_KEY"}}
    env.update(OPENAI_API_KEY="sk-mine", GOOGLE_API_KEY="AIza-mine", RECALL=" ".join(RECALL))
    out = _shell('eval "$($RECALL env --replay)"; echo "$OPENAI_API_KEY|$ANTHROPIC_API_KEY|$PARALLEL_API_KEY|'
                 '${GEMINI_API_KEY-unset}|$GOOGLE_API_KEY|$OPENAI_BASE_URL"', env)
    assert out.strip() == (f"sk-mine|{PLACEHOLDER_KEY}|{PLACEHOLDER_KEY}|unset|AIza-mine|"
                           "http://127.0.0.1:8642/openai/v1")
    plain = _shell('eval "$($RECALL env)"; echo "${ANTHROPIC_API_KEY-unset}"', env)
    assert plain.strip() == "unset"  # without --replay, keys are left alone


def test_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-mine")
    result = cli(None, "env", "--json", "--replay")
    record = json.loads(result.stdout)
    assert record["base_urls"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8642/anthropic"
    assert record["placeholder_keys"]["ANTHROPIC_API_KEY"] == PLACEHOLDER_KEY
    assert "OPENAI_API_KEY" not in record["placeholder_keys"]


class Served:
    """`recall serve` in a subprocess, stopped with SIGTERM by its own pid."""

    log: str = ""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen([*RECALL, "serve", "--port", "0", *args], cwd=cwd, env=dict(os.environ),
                                        stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        self.banner = self.process.stderr.readline()
        assert "listening on" in self.banner, self.banner + self.process.stderr.read()
        self.port = int(self.banner.split("http://127.0.0.1:", 1)[1].split()[0])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        assert self.process.stderr is not None
        self.log = self.process.stderr.read()


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    running: list[Served] = []

    def start(*args: str, cwd: Path = tmp_path) -> Served:
        running.append(Served(list(args), cwd))
        return running[-1]

    yield start
    for server in running:
        if server.process.poll() is None:
            server.stop()


def test_serve_on_a_busy_port_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([*RECALL, "serve", "--port", str(port), "--db", str(tmp_path / "r.db")],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line and "Traceback" not in done.stderr


def test_the_replay_banner_names_what_it_really_serves(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    cassette = tmp_path / "llm.jsonl"
    cassette.write_text('{"recall_cassette": 1}\n')
    only_cassette = served("--mode", "replay", "--cassette", str(cassette), "--db", str(tmp_path / "absent.db"))
    assert f"replaying cassettes {cassette} (no database)" in only_cassette.banner
    assert "recall.db" not in only_cassette.banner
    nothing = served("--mode", "replay")  # XDG_DATA_HOME is empty: the default file does not exist
    assert "nothing to replay" in nothing.banner and str(tmp_path / "data" / "recall" / "recall.db") in nothing.banner


def test_audit_commands_find_a_running_servers_database_from_any_folder(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    (project / "recall.toml").write_text('[storage]\npath = "project.db"\n')  # relative to where serve starts
    server = served(cwd=project)
    runtime = tmp_path / "run" / "recall" / f"{server.port}.json"
    assert json.loads(runtime.read_text())["db"] == str(project / "project.db")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*RECALL, *args], cwd=elsewhere, capture_output=True, text=True, timeout=60)

    listed = run("ls")
    assert listed.returncode == 0 and "no database" not in listed.stderr, listed.stderr
    info = json.loads(run("info", "--json").stdout)
    assert info["database"]["path"] == str(project / "project.db")
    assert info["database"]["why"].startswith(f"served by the recall running on port {server.port}")
    assert info["database"]["exists"] and info["database"]["bytes"] > 0
    assert [r["port"] for r in info["running"]] == [server.port]
    human = run("info").stdout
    assert f"database:  {project / 'project.db'}" in human and "config:    -" in human  # no config in `elsewhere`
    explicit = run("info", "--json", "--db", str(tmp_path / "other.db"))
    assert json.loads(explicit.stdout)["database"] == {"backend": "sqlite", "path": str(tmp_path / "other.db"),
                                                       "why": "--db", "exists": False, "bytes": None}

    server.stop()
    assert not runtime.exists()
    assert "no database at" in run("ls").stderr  # the default, once nothing serves


def test_info_names_the_config_and_why(tmp_path: Path) -> None:
    (tmp_path / "recall.toml").write_text('[cache]\nmode = "auto"\n[upstreams.local]\nurl = "http://127.0.0.1:9"\napi = "openai-chat"\n')
    record = json.loads(cli(None, "info", "--json").stdout)
    assert record["config"] == {"path": "recall.toml", "why": "./recall.toml in the current directory"}
    assert record["mode"] == "auto" and record["upstreams"]["local"]["state"] == "emulate"
    assert record["database"]["why"] == "the default" and record["running"] == []


def test_the_demo_needs_no_key_and_shows_recall_keeping_the_conversation(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    import openai

    fake = subprocess.Popen([*RECALL[:2], "proxy.cli.demo_provider", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        url = fake.stdout.readline().strip()
        port = url.rsplit(":", 1)[1]
        config = subprocess.run([*RECALL, "demo", "--port", port, "--print-config"],  # `recall demo` is proxy.cli.demo_provider
                                capture_output=True, text=True, check=True).stdout
        assert "demo" in config.splitlines()[0].lower()  # marked as a demo
        (tmp_path / "recall.toml").write_text(config)
        server = served()  # reads ./recall.toml
        client = openai.OpenAI(api_key="no-key-needed", base_url=f"http://127.0.0.1:{server.port}/demo/v1")
        first = client.responses.create(model="demo", input="Hi, my name is Karthik.")
        second = client.responses.create(model="demo", input="What is my name?", previous_response_id=first.id)
        assert second.output_text == "Your name is Karthik."  # the fake is stateless: recall sent the history
        alone = client.responses.create(model="demo", input="What is my name?")
        assert "don't know" in alone.output_text
        streamed = client.chat.completions.create(model="demo", stream=True,
                                                  messages=[{"role": "user", "content": "my name is Ada"}])
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices).strip() == "Nice to meet you, Ada."
    finally:
        fake.terminate()
        fake.wait(30)


@pytest.fixture
def demo(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The demo model server (python -m proxy.cli.demo_provider) and a recall.toml in tmp_path mounting it as /demo."""
    fake = subprocess.Popen([*RECALL[:2], "proxy.cli.demo_provider", "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert fake.stdout is not None
    port = fake.stdout.readline().strip().rsplit(":", 1)[1]
    (tmp_path / "recall.toml").write_text(f'[upstreams.demo]\nurl = "http://127.0.0.1:{port}"\napi = "openai-chat"\n')
    yield
    fake.terminate()
    fake.wait(30)


def test_access_log_lines_say_model_cache_id_and_the_reason_of_an_error(demo, served) -> None:  # type: ignore[no-untyped-def]
    import openai

    server = served("--mode", "auto")
    client = openai.OpenAI(api_key="k", base_url=f"http://127.0.0.1:{server.port}/demo/v1", max_retries=0)
    first = client.responses.create(model="demo-1", input="Hi, my name is Karthik.")
    again = client.responses.create(model="demo-1", input="Hi, my name is Karthik.")  # replayed
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="demo-1", input="?", previous_response_id="resp_nothing")
    server.stop()
    lines = [line for line in server.log.splitlines() if "/demo/v1/responses" in line]
    assert len(lines) == 3, server.log
    recorded, hit, failed = lines
    assert " POST /demo/v1/responses 200 " in recorded and "model=demo-1 cache=recorded" in recorded
    assert f"id={first.id}" in recorded
    assert "cache=hit" in hit and "model=demo-1" in hit and again.id == first.id
    assert " 400 " in failed and 'error="previous_response_not_found:' in failed
    assert "Traceback" not in server.log


def test_json_log_and_quiet(demo, served) -> None:  # type: ignore[no-untyped-def]
    import openai

    server = served("--log-format", "json")
    client = openai.OpenAI(api_key="k", base_url=f"http://127.0.0.1:{server.port}/demo/v1", max_retries=0)
    reply = client.chat.completions.create(model="demo-2", messages=[{"role": "user", "content": "hello"}])
    server.stop()
    records = [json.loads(line) for line in [server.banner, *server.log.splitlines()]]  # every line is JSON
    (access,) = [r for r in records if r["logger"] == "recall.access"]
    assert access["method"] == "POST" and access["path"] == "/demo/v1/chat/completions" and access["status"] == "200"
    assert access["model"] == "demo-2" and access["cache"] == "live" and access["latency_ms"] > 0
    assert access["interaction_id"] == reply.interaction_id and access["error"] is None  # type: ignore[attr-defined]

    quiet = served("--quiet")
    client = openai.OpenAI(api_key="k", base_url=f"http://127.0.0.1:{quiet.port}/demo/v1", max_retries=0)
    client.chat.completions.create(model="demo-2", messages=[{"role": "user", "content": "hello"}])
    quiet.stop()
    assert "/demo/v1/chat/completions" not in quiet.log


def test_serve_runs_on_uvloop_where_installed_and_on_asyncio_when_asked(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    try:
        import uvloop  # noqa: F401
        default = "uvloop"
    except ImportError:
        default = "asyncio"
    assert served("--db", str(tmp_path / "a.db")).banner.rstrip().endswith(f", {default})")
    config = tmp_path / "recall.toml"
    config.write_text('[server]\nevent_loop = "asyncio"\n')
    assert served("--db", str(tmp_path / "b.db"), "--config", str(config)).banner.rstrip().endswith(", asyncio)")


def test_asking_for_uvloop_where_it_is_not_installed_is_one_line_and_exit_2(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "uvloop.py").write_text('raise ImportError("uvloop is not installed here")\n')
    config = tmp_path / "recall.toml"
    config.write_text('[server]\nevent_loop = "uvloop"\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([*RECALL, "serve", "--port", "0", "--config", str(config), "--db", str(tmp_path / "r.db")],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert 'event_loop = "uvloop"' in line and "pip install uvloop" in line
