"""An app on google-genai 1.56 (the launch material's SDK) works through recall.

1.56 reads `outputs`, uses /v1beta, sends the earlier revision's {role, content}
turns, and sends two User-Agent headers, which aiohttp rejects by default.
The SDK lives in a second virtual environment: RECALL_GENAI156_PYTHON names
its python, or one is created under .venv-genai156 (pip reaches PyPI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Recall
from .support.fake_gemini import FakeGemini

ROOT = Path(__file__).resolve().parent.parent
APP = Path(__file__).resolve().parent / "legacy" / "genai156_app.py"


@pytest.fixture(scope="session")
def genai156_python() -> str:
    if configured := os.environ.get("RECALL_GENAI156_PYTHON"):
        return configured
    venv = ROOT / ".venv-genai156"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "google-genai==1.56.0"], check=True)
    return str(python)


@pytest.mark.legacy_sdk
def test_launch_notebook_flow_on_genai_156(recall: Recall, fake_gemini: FakeGemini, genai156_python: str) -> None:
    version = subprocess.run(
        [genai156_python, "-c", "import google.genai; print(google.genai.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert version == "1.56.0"
    run = subprocess.run([genai156_python, str(APP), recall.base("gemini")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["first_id"].startswith("v1_")
    assert "Your name is Karthik." in seen["second_text"]
    assert seen["second_status"] == "completed"
    assert seen["got_text"] == seen["second_text"]
    assert "Your name is Ada." in seen["stateless_text"]
    assert seen["deleted_get"] == 404
    assert seen["stream_types"][0] == "interaction.start" and seen["stream_types"][-1] == "interaction.complete"
    assert "content.delta" in seen["stream_types"]
    assert seen["stream_text"] == "[1 user messages] You said: Stream to me, I am Karthik."
    assert seen["stream_final_id"].startswith("v1_")
    paths = {r.path for r in fake_gemini.requests}
    assert paths == {"/v1beta/interactions"}
    # The duplicate User-Agent really was sent, folded, and accepted.
    assert all("google-genai-sdk/1.56.0" in r.headers["User-Agent"] for r in fake_gemini.requests)
