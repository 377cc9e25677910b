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
