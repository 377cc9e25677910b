"""No billed call is repeated because of recall's own failure (issue 16, item 6; issue 21).

recall's database lives on a real 4 MB tmpfs that the test fills up (root only: CI runs
as root; skipped elsewhere). A database that cannot take a turn fails it with 503 and
Retry-After before the provider is asked, so the SDK's retries cost nothing; a turn the
provider already answered reaches the app, marked X-Recall-Stored: false.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from proxy.config import Config, Upstream
from proxy.http.app import start
from proxy.store.audit_db import AuditDB

from .support.fake_openai import FakeOpenAI
from .support.loop_thread import LoopThread
from .support.openai_sdk import MODEL

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)"),
]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk; the file that holds them."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


@pytest.fixture
def recall_on(loop_thread: LoopThread, small_disk: Path, fake_openai: FakeOpenAI) -> Iterator[str]:
    config = Config(host="127.0.0.1", port=0)
    config.upstreams = {"openai": Upstream("openai", fake_openai.url, "openai", state="emulate")}
    runner, port = loop_thread.run(start(config, small_disk / "recall.db"))
    yield f"http://127.0.0.1:{port}/openai/v1"
    loop_thread.run(runner.cleanup())


def test_a_full_disk_fails_fast_before_the_provider_is_billed(recall_on: str, small_disk: Path,
                                                              fake_openai: FakeOpenAI,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="recall")
    statuses: list[int] = []
    app = openai.OpenAI(api_key="sk-A", base_url=recall_on, max_retries=2,  # the SDK's default: it retries 503
                        http_client=httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]}))
    assert app.responses.create(model=MODEL, input="Hi, my name is Ada.").output_text
    asked = len(fake_openai.requests)
    filler = fill(small_disk)
    long_input = "Tell me everything. " * 20_000  # new pages, whatever the WAL had room for
    with pytest.raises(openai.InternalServerError) as caught:
        app.with_options(timeout=30).responses.create(model=MODEL, input=long_input)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "5"
    assert caught.value.body["code"] == "store_unavailable"  # type: ignore[index]
    assert "did not send this request to the provider" in caught.value.body["message"]  # type: ignore[index]
    assert statuses[1:] == [503, 503, 503]  # retried by the SDK, as a 503 should be...
    assert len(fake_openai.requests) == asked  # ...and not one of the tries was billed
    said = [r for r in caplog.records if "cannot write its database" in r.getMessage()]
    assert len(said) == 1 and not any(r.exc_info for r in caplog.records)  # once, no traceback
    filler.unlink()
    # Space again: recall serves again, with no restart.
    assert app.responses.create(model=MODEL, input="And now?").status == "completed"


def test_a_turn_answered_when_the_disk_fills_still_reaches_the_app(recall_on: str, small_disk: Path,
                                                                   fake_openai: FakeOpenAI,
                                                                   loop_thread: LoopThread) -> None:
    fake_openai.hold = asyncio.Event()
    app = openai.OpenAI(api_key="sk-A", base_url=recall_on, max_retries=0)
    answers: list[httpx.Response] = []

    def ask() -> None:
        raw = app.responses.with_raw_response.create(model=MODEL, input="Tell me a long story. " * 5_000)
        answers.append(raw.http_response)

    asking = threading.Thread(target=ask)
    asking.start()
    deadline = time.monotonic() + 10
    while not fake_openai.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    filler = fill(small_disk)  # the provider is answering; the node's final write will not fit
    loop_thread.loop.call_soon_threadsafe(fake_openai.hold.set)
    asking.join(30)
    assert answers, "the app got no answer"
    answer = answers[0]
    assert answer.status_code == 200 and answer.json()["output"]
    assert answer.headers["x-recall-stored"] == "false"
    assert len(fake_openai.requests) == 1  # asked once, answered once
    filler.unlink()


def test_a_full_disk_refuses_a_stream_before_the_provider_is_asked(
        recall_on: str, small_disk: Path, fake_openai: FakeOpenAI) -> None:
    """A streamed turn's node is committed before its provider is asked, as a plain turn's is:
    a database that cannot take it is a 503 for each try, none reaches the provider, nothing is kept."""
    statuses: list[int] = []
    app = openai.OpenAI(api_key="sk-A", base_url=recall_on, max_retries=2,
                        http_client=httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]}))
    with app.responses.create(model=MODEL, input="Hi, my name is Ada.", stream=True) as healthy:
        assert [e.type for e in healthy][-1] == "response.completed"
    asked = len(fake_openai.requests)
    filler = fill(small_disk)
    long_input = "Tell me everything. " * 20_000  # new pages, whatever the WAL had room for
    with pytest.raises(openai.InternalServerError) as caught:
        app.with_options(timeout=30).responses.create(model=MODEL, input=long_input, stream=True)
    assert caught.value.status_code == 503 and caught.value.body["code"] == "store_unavailable"  # type: ignore[index]
    assert "did not send this request to the provider" in caught.value.body["message"]  # type: ignore[index]
    assert statuses[1:] == [503, 503, 503]
    assert len(fake_openai.requests) == asked
    filler.unlink()
    with app.responses.create(model=MODEL, input="And now?", stream=True) as again:
        assert [e.type for e in again][-1] == "response.completed"
    audit = AuditDB.open(small_disk / "recall.db")
    try:
        assert audit.count() == 2  # the two streams served; nothing of the refused ones
    finally:
        audit.close()
