"""The pytest plugin: a test suite records once through recall, then runs offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from .support.brain import answer
from .support.fake_gemini import FakeGemini
from .support.loop_thread import LoopThread

SAMPLE = '''
import openai
from google import genai


def test_app(recall_proxy):
    chat = openai.OpenAI(api_key="sk-proj-real-key-000000000000000000000")
    reply = chat.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "Hi, my name is Karthik."}])
    assert "Karthik" in reply.choices[0].message.content

    gemini = genai.Client(api_key="AIzaSyRealKey-0000000000000000000000000")
    first = gemini.interactions.create(model="gemini-test", input="Hi, my name is Karthik.")
    second = gemini.interactions.create(model="gemini-test", input="What is my name?",
                                        previous_interaction_id=first.id)
    assert "Your name is Karthik." in second.output_text
    print("SEEN", reply.id, first.id, second.id)
'''


async def start_fake_chat() -> tuple[web.AppRunner, str, list]:
    """A minimal stateless Chat Completions server."""
    seen: list = []

    async def complete(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        texts = [m["content"] for m in body["messages"] if m["role"] == "user"]
        return web.json_response({
            "id": f"chatcmpl-{len(seen)}", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer(texts)}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        })

    app = web.Application()
    app.router.add_post("/v1/chat/completions", complete)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", seen


def seen_ids(result: pytest.RunResult) -> list[str]:
    line = next(line for line in result.outlines if "SEEN " in line)
    return line.split("SEEN ", 1)[1].split()


def test_record_in_auto_mode_then_replay_offline(
    pytester: pytest.Pytester, fake_gemini: FakeGemini, loop_thread: LoopThread
) -> None:
    chat_runner, chat_url, chat_seen = loop_thread.run(start_fake_chat())
    pytester.makefile(".toml", recall=f"""
[upstreams.openai]
url = "{chat_url}"
[upstreams.gemini]
url = "{fake_gemini.url}"
state = "emulate"
""")
    pytester.makeini("[pytest]\nrecall_config = recall.toml\n")
    pytester.makepyfile(test_sample=SAMPLE)

    recording = pytester.runpytest_subprocess("-s", "--recall-mode=auto")
    recording.assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_sample" / "test_app.jsonl"
    assert cassette.exists()
    text = cassette.read_text()
    assert "sk-proj-real-key" not in text and "AIzaSyRealKey" not in text
    assert all(json.loads(line) for line in text.splitlines())
    calls = (len(chat_seen), len(fake_gemini.requests))
    assert calls == (1, 2)

    loop_thread.run(chat_runner.cleanup())
    loop_thread.run(fake_gemini.stop())
    replaying = pytester.runpytest_subprocess("-s")  # replay is the default mode
    replaying.assert_outcomes(passed=1)
    assert seen_ids(replaying) == seen_ids(recording)
    assert (len(chat_seen), len(fake_gemini.requests)) == calls
    assert cassette.read_text() == text  # replaying appends nothing


def test_replay_without_a_cassette_says_how_to_record(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest_subprocess("-s", "--recall-mode=replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no recording matches this request*--mode auto*"])
    assert not (Path(pytester.path) / "cassettes").exists()


def test_a_project_with_its_own_proxy_package_keeps_its_pytest(pytester: pytest.Pytester) -> None:
    """Installing recall must not break `pytest` in a project whose package is also called `proxy`."""
    pytester.mkpydir("proxy")
    (pytester.path / "proxy" / "pytest_plugin.py").write_text("raise RuntimeError('not recall')\n")
    (pytester.path / "proxy" / "__init__.py").write_text("WHO = 'the project'\n")
    pytester.makepyfile(test_mine="""
import os

import proxy


def test_uses_its_own_package():
    assert proxy.WHO == 'the project'


def test_recall_still_works_beside_it(recall_proxy):
    assert os.environ["OPENAI_BASE_URL"] == recall_proxy.url + "/openai/v1"
    assert proxy.WHO == 'the project'
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # `python -m pytest`: the project's dir is first on sys.path
    result.assert_outcomes(passed=2)
    assert "Error while loading plugin" not in result.stderr.str()
