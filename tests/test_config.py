"""The config file: the example loads, bad files fail with file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from proxy.cli.main import main
from proxy.config import BUILTIN_UPSTREAMS, ConfigError, load_config, resolve_db_path

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_loads_every_key() -> None:
    config = load_config(str(ROOT / "config.example.toml"))
    assert config.port == 8642 and config.mode == "live" and config.log_unstored is True
    assert set(BUILTIN_UPSTREAMS) <= set(config.upstreams)
    local = config.upstreams["local"]
    assert (local.url, local.api, local.emulates) == ("http://127.0.0.1:8080", "openai-chat", True)
    assert config.upstreams["parallel"].context_max_chars == 50000
    assert local.context_window == 8192 and local.window_for("any-model") == 8192


def test_context_windows_per_upstream_per_model_and_known(tmp_path: Path) -> None:
    path = tmp_path / "windows.toml"
    path.write_text('[upstreams.openai]\ncontext_window = { "gpt-4o" = 1000, "tiny" = 50 }\n'
                    '[upstreams.local]\nurl = "http://127.0.0.1:8080"\napi = "openai-chat"\ncontext_window = 4096\n')
    config = load_config(str(path))
    openai = config.upstreams["openai"]
    assert (openai.window_for("gpt-4o"), openai.window_for("tiny")) == (1000, 50)
    # A model the table does not name has its published window (a dated variant included), else none.
    assert openai.window_for("gpt-4o-2024-08-06") == 128_000 and openai.window_for("gpt-4.1") == 1_047_576
    assert openai.window_for("a-model-nobody-knows") is None
    assert config.upstreams["local"].window_for("gpt-4o") == 4096  # the upstream's own setting wins


def test_no_config_gives_the_builtin_upstreams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECALL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config = load_config(None)
    assert config.upstreams == BUILTIN_UPSTREAMS


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[server]\nport = 'eighty'", "[server] port", "must be an integer"),
        ("[server]\nprot = 1", "[server] prot", "unknown key"),
        ("[cache]\nmode = 'sometimes'", "[cache] mode", "must be one of live, replay, auto"),
        ("[server]\nevent_loop = 'fast'", "[server] event_loop", "must be one of auto, uvloop, asyncio"),
        ("[storage]\nwarm_chains = -1", "[storage] warm_chains", "must be 0 (warm none at start) or more"),
        ("[upstreams.local]\napi = 'openai-chat'", "[upstreams.local] url", "is required"),
        ("[upstreams.gemini]\nstate = 'maybe'", "[upstreams.gemini] state", "must be one of native, emulate"),
        ("[upstreams.x]\nurl = 'ftp://h'\napi = 'openai'", "[upstreams.x] url", "must start with http"),
        ("[upstreams.parallel]\ncontext_max_chars = 0", "[upstreams.parallel] context_max_chars",
         "must be greater than 0"),
        ("[upstreams.openai]\ncontext_window = 0", "[upstreams.openai] context_window", "greater than 0"),
        ("[upstreams.openai]\ncontext_window = '8k'", "[upstreams.openai] context_window",
         "must be a number of tokens or a table of model = tokens"),
        ("[upstreams.openai]\ncontext_window = { gpt-4o = -1 }", "[upstreams.openai] context_window.gpt-4o",
         "greater than 0"),
        ("[server\nport = 1", "syntax", ""),
    ],
)
def test_bad_config_names_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


def test_serve_with_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = 0.5\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0] and "[server] port" in lines[0] and "must be an integer" in lines[0]


def test_serve_refuses_public_host_without_tokens(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "--insecure" in result.output


def test_db_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(str(ROOT / "config.example.toml"))
    monkeypatch.setenv("RECALL_DB", str(tmp_path / "env.db"))
    assert resolve_db_path(str(tmp_path / "flag.db"), config) == tmp_path / "flag.db"
    assert resolve_db_path(None, config) == tmp_path / "env.db"
    monkeypatch.delenv("RECALL_DB")
    assert resolve_db_path(None, config) == Path("~/.local/share/recall/recall.db").expanduser()
    config.db_path = None
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert resolve_db_path(None, config) == tmp_path / "recall" / "recall.db"
