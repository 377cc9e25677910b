"""The pytest plugin: a test suite records once through recall, then runs offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from .support.brain import answer
from .support.fake_gemini import FakeGemini
from .support.loop_thread import LoopThread
from .support.serving import start_on_loopback

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
    runner, url = await start_on_loopback(app)
    return runner, url, seen


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
    cassette = pytester.path / "cassettes" / "test_sample" / "test_app.jsonl"
    result.stdout.fnmatch_lines([f"*no recording matches this request*There is no cassette at {cassette}*"
                                 "`pytest --recall-record-mode=once test_sample.py::test_app`*"])
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


KEYLESS = '''
import anthropic
import openai
import parallel
from google import genai


def test_chat(recall_proxy):
    # Every SDK constructor needs a key; in replay they get placeholders.
    genai.Client(), anthropic.Anthropic(), parallel.Parallel()
    reply = openai.OpenAI().chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "Hi, my name is Karthik."}])
    print("SEEN", reply.id)
'''
KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "PARALLEL_API_KEY")


def test_record_modes_and_keyless_replay(pytester: pytest.Pytester, loop_thread: LoopThread,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    chat_runner, chat_url, chat_seen = loop_thread.run(start_fake_chat())
    pytester.makefile(".toml", recall=f'[upstreams.openai]\nurl = "{chat_url}"\napi = "openai-chat"\n')
    pytester.makeini("[pytest]\nrecall_config = recall.toml\n")
    pytester.makepyfile(test_keys=KEYLESS)
    cassette = pytester.path / "cassettes" / "test_keys" / "test_chat.jsonl"
    for variable in (*KEY_VARIABLES, "RECALL_MODE", "RECALL_RECORD_MODE"):
        monkeypatch.delenv(variable, raising=False)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", *args)

    keyless = run()  # none, the default: no cassette yet, so the miss says how to record it
    keyless.assert_outcomes(failed=1)
    keyless.stdout.fnmatch_lines(["*--recall-record-mode=once*"])
    assert chat_seen == []

    def real_keys() -> None:  # recording forwards: the SDKs need real keys, and recall gives none
        for variable in KEY_VARIABLES:
            monkeypatch.setenv(variable, f"real-{variable}")
        monkeypatch.delenv("GEMINI_API_KEY")  # google-genai warns when both are set

    real_keys()
    first = run("--recall-record-mode=once")  # records: the cassette does not exist
    first.assert_outcomes(passed=1)
    recorded = cassette.read_text()
    assert len(chat_seen) == 1
    again = run("--recall-record-mode=once")  # exists now: replayed, nothing forwarded or written
    again.assert_outcomes(passed=1)
    assert seen_ids(again) == seen_ids(first) and len(chat_seen) == 1 and cassette.read_text() == recorded

    for variable in KEY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    replay = run()  # none, with no key set anywhere: the SDKs start on placeholders
    replay.assert_outcomes(passed=1)
    assert seen_ids(replay) == seen_ids(first) and len(chat_seen) == 1

    real_keys()
    rerecorded = run("--recall-record-mode=all")  # forwards again and replaces the cassette
    rerecorded.assert_outcomes(passed=1)
    assert len(chat_seen) == 2 and seen_ids(rerecorded) != seen_ids(first)
    assert cassette.read_text().count('"kind":"exchange"') == 1
    assert seen_ids(first)[0] not in cassette.read_text()

    pytester.makepyfile(test_keys=KEYLESS + KEYLESS.split("def test_chat")[1].join(["\ndef test_more", ""])
                        .replace("Karthik.", "Karthik!"))
    more = run("--recall-record-mode=new_episodes")  # test_chat replays; test_more records its miss
    more.assert_outcomes(passed=2)
    assert len(chat_seen) == 3
    assert (pytester.path / "cassettes" / "test_keys" / "test_more.jsonl").exists()
    loop_thread.run(chat_runner.cleanup())


def test_the_old_mode_names_still_work_and_bad_values_are_refused(pytester: pytest.Pytester,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_modes="def test_mode(recall_proxy):\n    print('MODE', recall_proxy.record_mode)\n")
    monkeypatch.delenv("RECALL_RECORD_MODE", raising=False)
    monkeypatch.setenv("RECALL_MODE", "auto")
    pytester.runpytest_subprocess("-s").stdout.fnmatch_lines(["*MODE new_episodes*"])
    flags = pytester.runpytest_subprocess("-s", "--recall-record-mode=all")  # a flag beats the environment
    flags.stdout.fnmatch_lines(["*MODE all*"])
    monkeypatch.setenv("RECALL_RECORD_MODE", "sometimes")
    monkeypatch.delenv("RECALL_MODE")
    bad = pytester.runpytest_subprocess("-s")
    assert "RECALL_RECORD_MODE must be one of none, once, new_episodes, all; got 'sometimes'" in bad.stdout.str() + bad.stderr.str()


def test_a_plugin_that_cannot_load_warns_once_and_breaks_nothing(pytester: pytest.Pytester,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """If recall's package cannot be loaded at all, the project's own tests still run, with one warning."""
    import recall_pytest_plugin

    # A copy of the entry module in a folder with no recall package beside it: it looks there, and fails.
    elsewhere = pytester.mkdir("elsewhere")
    (elsewhere / "recall_pytest_plugin.py").write_text(Path(recall_pytest_plugin.__file__).read_text())
    monkeypatch.setenv("PYTHONPATH", str(elsewhere))
    pytester.makepyfile(test_mine="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:recall", "-p", "recall_pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*recall's pytest plugin is off*the recall_proxy fixture is unavailable*"])
