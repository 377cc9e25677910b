"""The audit commands (ls, show, tree, search, export, stats) over a database that a
running recall filled from the real google-genai SDK."""

from __future__ import annotations

import json
import os
import pty
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.model import Turn

from .conftest import Recall
from .support.audit_backends import AuditBackend
from .support.conversations import FORK_MARKER, MODEL, Conversations, cli, client, have_conversations
from .support.fake_gemini import FakeGemini

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands must not pick up a config from the machine running the tests."""
    monkeypatch.delenv("RECALL_CONFIG", raising=False)
    monkeypatch.delenv("RECALL_DB", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))  # nor a recall serve running on the machine
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def convs(recall: Recall) -> Conversations:
    return have_conversations(recall.url)


def as_json(result) -> object:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- ls ------------------------------------------------------------------------------


def test_ls_lists_threads_newest_first(recall: Recall, convs: Conversations, audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    threads = as_json(cli(db, "ls", "--json"))
    assert [t["thread_id"] for t in threads] == [convs.generate.id, convs.first.id]
    newest, chat = threads
    assert newest["upstreams"] == ["gemgen"] and newest["interactions"] == 1
    assert newest["title"] == "Tell me about the okapi of Zanzibar."
    assert chat["interactions"] == 3 and chat["upstreams"] == ["gemini"] and chat["models"] == [MODEL]
    mine = [convs.first, convs.name_question, convs.fork]
    assert chat["input_tokens"] == sum(t.usage.total_input_tokens for t in mine)
    assert chat["output_tokens"] == sum(t.usage.total_output_tokens for t in mine)
    assert chat["title"] == convs.inputs[convs.first.id]
    assert chat["last_activity"] >= chat["started"]

    text = cli(db, "ls")
    assert text.exit_code == 0
    header, first_row, second_row = text.stdout.splitlines()
    assert header.split()[:4] == ["THREAD", "UPSTREAM", "MODEL", "TURNS"]
    assert first_row.startswith(convs.generate.id) and "gemgen" in first_row and "5/6" in first_row
    assert second_row.startswith(convs.first.id) and "Hi, my name is Karthik" in second_row


def test_ls_filters(recall: Recall, convs: Conversations, audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)

    def ids(*args: str) -> list[str]:
        return [t["thread_id"] for t in as_json(cli(db, "ls", "--json", *args))]

    assert ids("--upstream", "gemgen") == [convs.generate.id]
    assert ids("--upstream", "nowhere") == []
    assert ids("--model", MODEL, "--limit", "1") == [convs.generate.id]
    assert ids("--since", "1h") == [convs.generate.id, convs.first.id]
    assert ids("--since", "2999-01-01") == []
    assert ids("--until", "2000-01-01") == []
    empty = cli(db, "ls", "--model", "other")
    assert empty.exit_code == 0 and empty.stdout == "" and "no conversations" in empty.stderr
    bad = cli(db, "ls", "--since", "last tuesday")
    assert bad.exit_code == 2 and "not a date, a time or a duration" in bad.stderr


def test_commands_refuse_a_missing_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for args in (["ls"], ["show", "v1_x"], ["search", "x"], ["export"], ["stats"], ["purge", "--older-than", "1d"]):
        result = cli(missing, *args)
        assert result.exit_code == 1
        assert f"no database at {missing}" in result.stderr
    assert not missing.exists()


# -- show and tree ---------------------------------------------------------------------


def test_show_prints_the_thread_up_to_the_id(recall: Recall, convs: Conversations, audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    result = cli(db, "show", convs.name_question.id)
    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith(f"thread {convs.first.id}")
    assert convs.fork.id not in text  # another branch
    assert text.index(convs.first.id + "  ") < text.index(convs.name_question.id)
    assert "  user   Hi, my name is Karthik. I like to play cricket." in text
    assert f"  model  {convs.name_question.output_text}" in text
    assert f"{convs.name_question.usage.total_input_tokens} in / 7 out tokens" in text

    shown = as_json(cli(db, "show", convs.name_question.id, "--json"))
    assert shown["thread_id"] == convs.first.id
    records = shown["interactions"]
    assert [r["id"] for r in records] == [convs.first.id, convs.name_question.id]
    assert records[1]["parent_id"] == convs.first.id and records[1]["depth"] == 1
    assert Turn.from_json(records[1]["input"][0]).text == "What is my name?"
    assert Turn.from_json(records[1]["output"][0]).text == convs.name_question.output_text
    assert records[1]["usage"]["input_tokens"] == convs.name_question.usage.total_input_tokens


def test_show_raw_prints_the_recorded_exchanges(recall: Recall, convs: Conversations,
                                                audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    raw = cli(db, "show", convs.first.id, "--raw")
    assert raw.exit_code == 0
    lines = raw.stdout.splitlines()
    assert lines[0] == f"## {convs.first.id}"
    assert lines[1].startswith("POST /v1/interactions -> 200 in ")
    assert '> {"model":"gemini-3-flash-preview","input":"Hi, my name is Karthik. I like to play cricket."}' in lines
    assert any(line.startswith("< {") and convs.first.id in line for line in lines)
    assert not any("key-A" in line or "x-goog-api-key" in line for line in lines)

    shown = as_json(cli(db, "show", convs.first.id, "--raw", "--json"))
    (exchange,) = shown["interactions"][0]["exchanges"]
    assert exchange["status"] == 200 and exchange["method"] == "POST"
    assert json.loads(exchange["request_body"])["input"] == convs.inputs[convs.first.id]
    assert json.loads(exchange["response_body"])["id"] == convs.first.id


def test_show_renders_calls_results_media_and_collapsed_thoughts(recall: Recall, audit_backend: AuditBackend) -> None:
    thought = "The user wants the weather, so call the tool."
    app = client(recall.base("gemini"))
    turn = app.interactions.create(model=MODEL, input=[
        {"type": "user_input", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"type": "thought", "signature": "c2lnbmF0dXJl", "summary": [{"type": "text", "text": thought}]},
        {"type": "function_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"type": "function_result", "call_id": "call_1", "name": "get_weather", "result": {"sky": "clear"}},
        {"type": "user_input", "content": [{"type": "text", "text": "Thanks. A picture:"},
                                           {"type": "image", "data": "iVBORw0KGgpmYWtl", "mime_type": "image/png"}]},
    ])
    db = audit_backend.of(recall.db_path)
    text = cli(db, "show", turn.id).stdout
    assert '→ get_weather({"city":"Paris"})' in text
    assert '← get_weather: {"sky":"clear"}' in text
    assert "[image image/png, 12 B]" in text
    assert f"[thought: {len(thought)} chars, --thoughts to show]" in text and thought not in text
    assert f"(thought) {thought}" in cli(db, "show", turn.id, "--thoughts").stdout
    # Calls and results are searchable too.
    hits = as_json(cli(db, "search", "sky", "clear", "--json"))
    assert [h["interaction_id"] for h in hits] == [turn.id]


def test_show_marks_deleted_turns_and_refuses_unknown_ids(recall: Recall, convs: Conversations,
                                                          audit_backend: AuditBackend) -> None:
    app = client(recall.base("gemini"))
    app.interactions.delete(convs.first.id)
    db = audit_backend.of(recall.db_path)
    text = cli(db, "show", convs.name_question.id).stdout
    assert f"{convs.first.id}  [deleted " in text and "Karthik. I like" not in text
    assert "What is my name?" in text
    records = as_json(cli(db, "show", convs.name_question.id, "--json"))["interactions"]
    assert records[0]["status"] == "deleted" and "input" not in records[0] and records[0]["deleted"]
    unknown = cli(db, "show", "v1_nosuchthing")
    assert unknown.exit_code == 1 and "no interaction 'v1_nosuchthing'" in unknown.stderr


def test_tree_draws_every_branch(recall: Recall, convs: Conversations, audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    result = cli(db, "tree", convs.fork.id)
    assert result.exit_code == 0
    root, left, right = result.stdout.splitlines()
    assert root.startswith(convs.first.id + "  ")
    assert left.startswith(f"├─ {convs.name_question.id}  ")
    assert right.startswith(f"└─ {convs.fork.id} *  ")  # the id asked about is starred
    assert "'What is my name?'" in left

    tree = as_json(cli(db, "tree", convs.name_question.id, "--json"))
    assert tree["thread_id"] == convs.first.id
    (top,) = tree["tree"]
    assert top["id"] == convs.first.id
    assert [c["id"] for c in top["children"]] == [convs.name_question.id, convs.fork.id]
    assert top["children"][0]["output_text"] == convs.name_question.output_text
    assert all(c["children"] == [] for c in top["children"])


# -- search ----------------------------------------------------------------------------


def test_search_finds_inputs_and_outputs(recall: Recall, convs: Conversations, audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    (hit,) = as_json(cli(db, "search", "cricket", "--json"))
    assert hit["interaction_id"] == convs.first.id and hit["thread_id"] == convs.first.id
    assert "play **cricket**" in hit["input_snippet"]
    # Words only the model said: the hit is on the output side.
    (hit,) = as_json(cli(db, "search", "Your", "name", "--json"))
    assert hit["interaction_id"] == convs.name_question.id
    assert hit["output_snippet"] == "[2 user messages] **Your** **name** is Karthik."
    # Punctuation is just text, not query syntax.
    (hit,) = as_json(cli(db, "search", "What is my name?", "--json"))
    assert hit["interaction_id"] == convs.name_question.id

    text = cli(db, "search", "okapi")
    assert text.exit_code == 0
    first_line, *snippets = text.stdout.splitlines()
    assert first_line.startswith(convs.generate.id) and f"thread {convs.generate.id}" in first_line
    assert snippets[0] == "  input:  Tell me about the okapi of Zanzibar."  # piped: no Markdown markers


def test_search_misses_filters_and_fts_syntax(recall: Recall, convs: Conversations,
                                              audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    miss = cli(db, "search", "platypus")
    assert miss.exit_code == 0 and miss.stdout == "" and "no interaction holds 'platypus'" in miss.stderr
    assert as_json(cli(db, "search", "platypus", "--json")) == []
    # Unstored calls are not searchable: nothing of them was written.
    assert as_json(cli(db, "search", "yourself", "--json")) == []
    either = as_json(cli(db, "search", "--fts", "cricket OR okapi", "--json"))
    assert {h["interaction_id"] for h in either} == {convs.first.id, convs.generate.id}
    assert as_json(cli(db, "search", "--fts", "crick*", "--json"))[0]["interaction_id"] == convs.first.id
    only = as_json(cli(db, "search", "--fts", "cricket OR okapi", "--upstream", "gemgen", "--json"))
    assert [h["interaction_id"] for h in only] == [convs.generate.id]
    assert as_json(cli(db, "search", "cricket", "--since", "2999-01-01", "--json")) == []
    assert len(as_json(cli(db, "search", "name", "--limit", "2", "--json"))) == 2
    bad = cli(db, "search", "--fts", "cricket OR (")
    assert bad.exit_code == 2 and "cannot search for 'cricket OR ('" in bad.stderr


def test_deleting_takes_words_out_of_the_search(recall: Recall, convs: Conversations) -> None:
    app = client(recall.base("gemini"))
    app.interactions.delete(convs.fork.id)
    assert as_json(cli(recall.db_path, "search", FORK_MARKER, "--json")) == []
    assert FORK_MARKER.lower().encode() not in recall.db_bytes()  # not even as an index term


# -- export ----------------------------------------------------------------------------


def read_jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_export_jsonl_round_trip(recall: Recall, convs: Conversations, audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    result = cli(db, "export")
    assert result.exit_code == 0 and result.stderr == ""  # piped: no progress bar
    records = read_jsonl(result.stdout)
    by_id = {r["id"]: r for r in records}
    assert set(by_id) == {t.id for t in convs.stored}
    # Thread by thread, parents before children.
    assert [r["id"] for r in records][:1] == [convs.first.id]
    for turn in convs.stored:
        record = by_id[turn.id]
        (said,) = [Turn.from_json(t) for t in record["input"]]
        (answered,) = [Turn.from_json(t) for t in record["output"]]
        assert (said.role, said.text) == ("user", convs.inputs[turn.id])
        assert (answered.role, answered.text) == ("model", turn.output_text)
        assert record["usage"]["input_tokens"] == turn.usage.total_input_tokens
        assert record["model"] == MODEL and record["status"] == "completed"
    assert by_id[convs.fork.id]["parent_id"] == convs.first.id
    assert by_id[convs.fork.id]["thread_id"] == convs.first.id
    assert by_id[convs.generate.id]["thread_id"] == convs.generate.id
    assert by_id[convs.generate.id]["upstream"] == "gemgen"


def test_export_filters_tombstones_and_file_output(recall: Recall, convs: Conversations, tmp_path: Path,
                                                   audit_backend: AuditBackend) -> None:
    app = client(recall.base("gemini"))
    app.interactions.delete(convs.fork.id)
    out = tmp_path / "thread.jsonl"
    db = audit_backend.of(recall.db_path)
    result = cli(db, "export", "--thread", convs.name_question.id, "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    records = read_jsonl(out.read_text())
    assert [r["id"] for r in records] == [convs.first.id, convs.name_question.id, convs.fork.id]
    tombstone = records[2]
    assert tombstone["status"] == "deleted" and "input" not in tombstone and "output" not in tombstone
    assert tombstone["parent_id"] == convs.first.id
    assert cli(db, "export", "--since", "2999-01-01").stdout == ""
    unknown = cli(db, "export", "--thread", "v1_nope")
    assert unknown.exit_code == 1 and "no interaction 'v1_nope'" in unknown.stderr


def test_export_markdown(recall: Recall, convs: Conversations, audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    text = cli(db, "export", "--format", "md").stdout
    assert text.startswith(f"## Thread {convs.first.id}\n")
    assert f"## Thread {convs.generate.id}\n" in text
    assert "**user:** What is my name?\n" in text
    assert f"**model:** {convs.name_question.output_text}\n" in text
    assert f"_continues {convs.first.id}_" in text  # the fork does not follow the node above it


def test_export_shows_progress_on_a_terminal_only(recall: Recall, convs: Conversations, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "proxy", "export", "--db", str(recall.db_path), "-o", str(out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, cwd=ROOT, timeout=60,
        )
    finally:
        os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: everything is read
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert done.returncode == 0
    assert b"exporting" in seen and b"100%" in seen
    assert len(read_jsonl(out.read_text())) == len(convs.stored)


# -- stats -----------------------------------------------------------------------------


def test_stats_match_what_was_sent(recall: Recall, convs: Conversations, audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    report = as_json(cli(db, "stats", "--json"))
    total = report["total"]
    assert total["requests"] == convs.requests
    assert total["interactions"] == len(convs.stored)
    assert total["input_tokens"] == convs.input_tokens
    assert total["output_tokens"] == convs.output_tokens
    assert total["errors"] == 1
    latencies = [row[0] for row in recall.query("SELECT latency_ms FROM exchanges")]
    assert len(latencies) == convs.requests
    assert total["p50_latency_ms"] == round(statistics.median(latencies), 1)

    rows = {(r["upstream"], r["model"]): r for r in report["rows"]}
    assert report["by"] == ["day", "upstream", "model"]
    assert {r["day"] for r in report["rows"]} == {convs.first.created[:10]}
    gemgen = rows[("gemgen", MODEL)]
    assert (gemgen["requests"], gemgen["interactions"], gemgen["input_tokens"], gemgen["output_tokens"]) == (
        1, 1, convs.generate.usage.total_input_tokens, convs.generate.usage.total_output_tokens)
    chat = rows[("gemini", MODEL)]
    # Four answered requests, three stored (one was store=false: counted, not kept).
    assert (chat["requests"], chat["interactions"], chat["errors"]) == (4, 3, 0)
    failed = rows[("gemini", None)]  # the failed call never named a stored model
    assert (failed["requests"], failed["errors"], failed["interactions"]) == (1, 1, 0)

    text = cli(db, "stats", "--by", "upstream")
    assert text.exit_code == 0
    header, *body = text.stdout.splitlines()
    assert header.split() == ["UPSTREAM", "REQUESTS", "INTERACTIONS", "TOKENS", "IN", "TOKENS", "OUT", "ERRORS", "REPLAY", "HITS", "P50", "MS", "COST", "USD"]
    assert body[0].split()[:6] == ["gemgen", "1", "1", str(convs.generate.usage.total_input_tokens),
                                   str(convs.generate.usage.total_output_tokens), "0"]
    assert body[-1].split()[:6] == ["total", str(convs.requests), "4", str(convs.input_tokens),
                                    str(convs.output_tokens), "1"]
    assert as_json(cli(db, "stats", "--json", "--since", "2999-01-01"))["rows"] == []


# -- env and config check ------------------------------------------------------------------


def test_env_points_each_sdk_at_recall(recall: Recall, fake_gemini: FakeGemini, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import anthropic
    import openai
    import parallel
    from google import genai

    port = recall.url.rsplit(":", 1)[1]
    config = tmp_path / "recall.toml"
    config.write_text(f'[server]\nport = {port}\n[upstreams.local]\nurl = "http://127.0.0.1:8080"\napi = "openai-chat"\n')
    result = cli(None, "env", "--config", str(config))
    assert result.exit_code == 0
    exports = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines()
                   if line.startswith("export "))
    assert exports == {
        "GOOGLE_GEMINI_BASE_URL": f"{recall.url}/gemini",
        "OPENAI_BASE_URL": f"{recall.url}/openai/v1",
        "ANTHROPIC_BASE_URL": f"{recall.url}/anthropic",
        "PARALLEL_BASE_URL": f"{recall.url}/parallel",
    }
    assert f"# local (openai-chat): set your SDK's base_url to {recall.url}/local" in result.stdout
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    # Each SDK takes its base URL from the environment...
    assert str(openai.OpenAI(api_key="k").base_url) == f"{recall.url}/openai/v1/"
    assert str(anthropic.Anthropic(api_key="k").base_url) == f"{recall.url}/anthropic/"
    assert str(parallel.Parallel(api_key="k").base_url) == f"{recall.url}/parallel/"
    # ...and an app with no base_url in its code now talks to recall.
    app = genai.Client(api_key="k", http_options={"retry_options": {"attempts": 1}})
    turn = app.interactions.create(model=MODEL, input="Reached through the environment.")
    assert recall.query("SELECT id FROM interactions") == [(turn.id,)]
    assert len(fake_gemini.requests) == 1


def test_env_on_a_wildcard_host_with_tokens(tmp_path: Path) -> None:
    config = tmp_path / "public.toml"
    config.write_text('[server]\nhost = "0.0.0.0"\nport = 9000\ntokens = ["t0ken"]\n')
    result = cli(None, "env", "--config", str(config))
    assert "export OPENAI_BASE_URL=http://127.0.0.1:9000/openai/v1" in result.stdout
    assert "X-Recall-Token" in result.stdout and "t0ken" not in result.stdout


def test_config_check(tmp_path: Path) -> None:
    good = cli(tmp_path / "r.db", "config", "check", str(ROOT / "config.example.toml"))
    assert good.exit_code == 0
    assert good.stdout.startswith(f"{ROOT / 'config.example.toml'}: ok\n")
    assert "/local" in good.stdout and "api openai-chat, emulate" in good.stdout
    assert f"database: {tmp_path / 'r.db'} (not created yet)" in good.stdout

    bad = tmp_path / "bad.toml"
    bad.write_text('[upstreams.gemini]\nstate = "sometimes"\n')
    for args in (["config", "check", str(bad)], ["config", "check", "--config", str(bad)]):
        result = cli(tmp_path / "r.db", *args)
        assert result.exit_code == 2
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert str(bad) in line and "[upstreams.gemini] state" in line and "must be one of native, emulate" in line

    missing = cli(tmp_path / "r.db", "config", "check", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 2 and "nope.toml: file: does not exist" in missing.stderr

    none = cli(tmp_path / "r.db", "config", "check")
    assert none.exit_code == 0 and "no config file found" in none.stdout and "built-in defaults" in none.stdout


# -- what a newcomer expects of the command line -------------------------------------------


def test_ids_may_be_shortened_to_a_unique_start(recall: Recall, convs: Conversations,
                                                audit_backend: AuditBackend) -> None:
    full = convs.name_question.id
    # The shortest start of it that no other id shares, as git abbreviates hashes.
    others = [c.id for c in (convs.first, convs.fork, convs.generate)]
    short = next(full[:n] for n in range(4, len(full)) if not any(o.startswith(full[:n]) for o in others))
    db = audit_backend.of(recall.db_path)
    shown = as_json(cli(db, "show", short, "--json"))
    assert shown["interactions"][-1]["id"] == full
    assert cli(db, "tree", short).stdout == cli(db, "tree", full).stdout
    exported = cli(db, "export", "--thread", short).stdout
    assert exported == cli(db, "export", "--thread", full).stdout and exported

    shared = "v1_"  # every Interactions id starts so: the error lists the candidates
    many = cli(db, "show", shared)
    assert many.exit_code == 1 and "starts more than one interaction id" in many.stderr
    assert convs.first.id in many.stderr and convs.name_question.id in many.stderr
    none = cli(db, "rm", "v1_zzzzzz_nothing")
    assert none.exit_code == 1 and "no interaction 'v1_zzzzzz_nothing'" in none.stderr


def test_show_last_and_n_for_limits(recall: Recall, convs: Conversations, audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    last = as_json(cli(db, "show", "--last", "--json"))
    assert last["interactions"][-1]["id"] == convs.generate.id  # the newest stored turn
    assert cli(db, "show").exit_code == 2  # neither an ID nor --last
    assert len(as_json(cli(db, "ls", "-n", "1", "--json"))) == 1
    assert len(as_json(cli(db, "search", "--fts", "cricket OR okapi", "-n", "1", "--json"))) == 1


def test_ls_fits_the_terminal_width(recall: Recall, convs: Conversations, monkeypatch: pytest.MonkeyPatch,
                                    audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    wide = cli(db, "ls").stdout.splitlines()
    assert any(len(line) > 100 for line in wide)  # piped: nothing is cut
    monkeypatch.setenv("COLUMNS", "100")
    narrow = cli(db, "ls").stdout.splitlines()
    assert len(narrow) == len(wide) and all(len(line) <= 100 for line in narrow)
    assert narrow[1].startswith(convs.generate.id) and narrow[1].endswith("…")


def test_version_and_json_everywhere(recall: Recall, convs: Conversations, tmp_path: Path,
                                     audit_backend: AuditBackend) -> None:
    from proxy import __version__

    assert cli(None, "-V").stdout == f"recall, version {__version__}\n"
    checked = as_json(cli(tmp_path / "r.db", "config", "check", "--json", str(ROOT / "config.example.toml")))
    assert checked["ok"] is True and checked["upstreams"]["local"]["api"] == "openai-chat"
    bad = tmp_path / "bad.toml"
    bad.write_text('[cache]\nmode = "sometimes"\n')
    refused = cli(tmp_path / "r.db", "config", "check", "--json", str(bad))
    assert refused.exit_code == 2
    assert json.loads(refused.stdout) == {"ok": False, "file": str(bad), "key": "[cache] mode",
                                          "reason": "must be one of live, replay, auto; got 'sometimes'"}
    cassette = tmp_path / "c.jsonl"
    db = audit_backend.of(recall.db_path)
    written = as_json(cli(db, "cassette", "export", "-o", str(cassette), "--json"))
    assert written["file"] == str(cassette) and written["interactions"] == 4
    loaded = as_json(cli(audit_backend.empty(tmp_path / "copy.db"), "cassette", "import", str(cassette), "--json"))
    assert loaded["interactions"] == 4 and loaded["exchanges"] == written["exchanges"]


def test_shell_completion_is_clicks(tmp_path: Path) -> None:
    env = {**os.environ, "_RECALL_COMPLETE": "bash_source"}
    script = subprocess.run([sys.executable, "-m", "proxy"], env=env, capture_output=True, text=True, timeout=60)
    assert "_recall_completion" in script.stdout
    env.update(_RECALL_COMPLETE="bash_complete", COMP_WORDS="recall sh", COMP_CWORD="1")
    words = subprocess.run([sys.executable, "-m", "proxy"], env=env, capture_output=True, text=True, timeout=60)
    assert "plain,show" in words.stdout.splitlines()


def test_show_raw_rebuilds_what_an_emulated_turn_sent_upstream(recall: Recall, convs: Conversations,
                                                               audit_backend: AuditBackend) -> None:
    db = audit_backend.of(recall.db_path)
    shown = as_json(cli(db, "show", convs.name_question.id, "--raw", "--json"))
    first, second = (record["exchanges"][0]["upstream_request"] for record in shown["interactions"])
    assert first["rebuilt"] is True and second["matches_recorded_digest"] is True  # byte for byte what was sent
    sent = json.dumps(second["body"])
    assert "Hi, my name is Karthik" in sent and "What is my name?" in sent  # the chain went along
    assert "Hi, my name is Karthik" in json.dumps(first["body"]) and "What is my name?" not in json.dumps(first["body"])

    text = cli(db, "show", convs.name_question.id, "--raw").stdout
    assert "sent upstream (REBUILT from the chain, not recorded; its digest matches" in text
    assert any(line.startswith("^ POST ") for line in text.splitlines()), text

    # Erase the first turn: the chain is no longer what was sent, and the output says so.
    assert cli(db, "rm", convs.first.id).exit_code == 0
    after = cli(db, "show", convs.name_question.id, "--raw").stdout
    assert "its digest DIFFERS from the one recorded" in after
