"""The offline cache: record once, replay with no network and no key."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from google.genai import _interactions as gi

from proxy.cli.main import main
from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.audit_backends import AuditBackend
from .support.fake_gemini import FakeGemini
from .support.loop_thread import LoopThread
from .test_gemini_interactions import MODEL, client

REAL_KEY = "AIzaSyRealKey-0000000000000000000000000"


def emulated(fake: FakeGemini) -> dict[str, Upstream]:
    return {"gemini": Upstream("gemini", fake.url, "gemini", state="emulate")}


def record_session(recall: Recall) -> dict:
    """An app's traffic: a two-turn chain, a stream, and a relayed generateContent call."""
    c = client(recall, key=REAL_KEY)
    first = c.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    second = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=first.id)
    with httpx.stream("POST", f"{recall.base('gemini')}/v1/interactions", headers={"x-goog-api-key": REAL_KEY},
                      json={"model": MODEL, "input": "stream this", "stream": True}) as answer:
        stream = answer.read()
    relayed = httpx.post(f"{recall.base('gemini')}/v1beta/models/{MODEL}:generateContent",
                         headers={"x-goog-api-key": REAL_KEY},
                         json={"contents": [{"role": "user", "parts": [{"text": "relay"}]}]})
    return {"first": (first.id, first.output_text), "second": (second.id, second.output_text),
            "stream": stream, "relayed": relayed.content, "relayed_cache": relayed.headers["x-recall-cache"]}


def replay_session(recall: Recall, recorded: dict) -> None:
    c = client(recall, key="dummy-key-in-ci")
    first = c.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    assert (first.id, first.output_text) == recorded["first"]
    second = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=first.id)
    assert (second.id, second.output_text) == recorded["second"]
    assert "Karthik" in second.output_text
    with httpx.stream("POST", f"{recall.base('gemini')}/v1/interactions", headers={"x-goog-api-key": "dummy"},
                      json={"model": MODEL, "input": "stream this", "stream": True}) as answer:
        assert answer.headers["x-recall-cache"] == "hit"
        assert answer.read() == recorded["stream"]
    relayed = httpx.post(f"{recall.base('gemini')}/v1beta/models/{MODEL}:generateContent",
                         json={"contents": [{"role": "user", "parts": [{"text": "relay"}]}]})
    assert relayed.content == recorded["relayed"]
    # Recorded ids stay readable by the replaying app's key.
    assert c.interactions.get(second.id).output_text == recorded["second"][1]


def test_record_then_replay_offline_with_another_key(
    recall_factory: RecallFactory, fake_gemini: FakeGemini, loop_thread: LoopThread
) -> None:
    recorded = record_session(recall_factory(emulated(fake_gemini)))
    assert recorded["relayed_cache"] == "live"
    seen = len(fake_gemini.requests)
    loop_thread.run(fake_gemini.stop())
    replaying = recall_factory(emulated(fake_gemini), mode="replay")
    replay_session(replaying, recorded)
    assert len(fake_gemini.requests) == seen


def test_a_miss_names_the_nearest_recording(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    c = client(recall_factory(emulated(fake_gemini)))
    c.interactions.create(model=MODEL, input="What is the capital of France?")
    seen = len(fake_gemini.requests)
    replaying = client(recall_factory(emulated(fake_gemini), mode="replay"))
    with pytest.raises(gi.BadRequestError) as caught:
        replaying.interactions.create(model=MODEL, input="What is the capital of Spain?")
    error = caught.value.body["error"]
    assert error["code"] == "replay_miss"
    assert "no recording matches this request (key " in error["message"]
    assert 'body.input: "What is the capital of France?" -> "What is the capital of Spain?"' in error["message"]
    assert len(fake_gemini.requests) == seen


def test_identical_requests_replay_in_recorded_order(recall_factory: RecallFactory, stateful_gemini: FakeGemini) -> None:
    native = {"gemini": Upstream("gemini", stateful_gemini.url, "gemini")}
    c = client(recall_factory(native))
    recorded = [c.interactions.create(model=MODEL, input="same question").id for _ in range(2)]
    assert recorded == ["v1_fake1", "v1_fake2"]
    replaying = client(recall_factory(native, mode="replay"))
    replayed = [replaying.interactions.create(model=MODEL, input="same question").id for _ in range(3)]
    assert replayed == ["v1_fake1", "v1_fake2", "v1_fake2"]


def test_volatile_fields_do_not_change_the_key(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    recall = recall_factory(emulated(fake_gemini))
    url = f"{recall.base('gemini')}/v1/interactions"
    recorded = httpx.post(url, json={"model": MODEL, "input": "hi", "metadata": {"run": 1}}).json()
    replaying = recall_factory(emulated(fake_gemini), mode="replay")
    replayed = httpx.post(f"{replaying.base('gemini')}/v1/interactions",
                          content=b'{"metadata": {"run": 2}, "input": "hi",   "model": "' + MODEL.encode() + b'"}')
    assert replayed.status_code == 200
    assert replayed.json()["id"] == recorded["id"]


def test_auto_mode_replays_hits_and_records_misses(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    record_session(recall_factory(emulated(fake_gemini)))
    auto = recall_factory(emulated(fake_gemini), mode="auto")
    seen = len(fake_gemini.requests)
    hit = httpx.post(f"{auto.base('gemini')}/v1/interactions", json={"model": MODEL, "input": "Hi, my name is Karthik."})
    assert hit.headers["x-recall-cache"] == "hit"
    assert len(fake_gemini.requests) == seen
    miss = httpx.post(f"{auto.base('gemini')}/v1/interactions", json={"model": MODEL, "input": "something new"})
    assert miss.status_code == 200 and miss.headers["x-recall-cache"] == "miss"
    assert len(fake_gemini.requests) == seen + 1
    again = httpx.post(f"{auto.base('gemini')}/v1/interactions", json={"model": MODEL, "input": "something new"})
    assert again.headers["x-recall-cache"] == "hit" and again.json()["id"] == miss.json()["id"]
    stats = CliRunner().invoke(main, ["stats", "--db", str(auto.db_path), "--json"])
    assert json.loads(stats.output)["total"]["replay_hits"] == 2


def test_cassette_round_trip_without_a_database(
    recall_factory: RecallFactory, fake_gemini: FakeGemini, loop_thread: LoopThread, tmp_path: Path
) -> None:
    recall = recall_factory(emulated(fake_gemini))
    recorded = record_session(recall)
    cassette = tmp_path / "session.jsonl"
    result = CliRunner().invoke(main, ["cassette", "export", "--db", str(recall.db_path), "-o", str(cassette)])
    assert result.exit_code == 0, result.output
    text = cassette.read_text()
    assert REAL_KEY not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0] == {"recall_cassette": 1}
    kinds = {line.get("kind") for line in lines[1:]}
    assert kinds == {"interaction", "exchange", "event"}
    loop_thread.run(fake_gemini.stop())
    replaying = recall_factory(emulated(fake_gemini), mode="replay", cassettes=[str(cassette)], db_name="absent.db")
    replay_session(replaying, recorded)
    assert not (tmp_path / "absent.db").exists()


def test_cassette_import_loads_into_a_database(recall_factory: RecallFactory, fake_gemini: FakeGemini,
                                               tmp_path: Path) -> None:
    recall = recall_factory(emulated(fake_gemini))
    recorded = record_session(recall)
    cassette = tmp_path / "session.jsonl"
    CliRunner().invoke(main, ["cassette", "export", "--db", str(recall.db_path), "-o", str(cassette)])
    target = tmp_path / "imported.db"
    result = CliRunner().invoke(main, ["cassette", "import", str(cassette), "--db", str(target)])
    assert result.exit_code == 0, result.output
    assert "3 interactions" in result.output
    replaying = recall_factory(emulated(fake_gemini), mode="replay", db_name="imported.db")
    replay_session(replaying, recorded)


def test_export_masks_key_patterns_found_in_bodies(recall_factory: RecallFactory, fake_gemini: FakeGemini,
                                                   tmp_path: Path) -> None:
    recall = recall_factory(emulated(fake_gemini))
    leaked = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    app = client(recall)  # kept alive: a collected genai.Client closes its connection pool
    app.interactions.create(model=MODEL, input=f"my key is {leaked}")
    cassette = tmp_path / "leak.jsonl"
    result = CliRunner().invoke(main, ["cassette", "export", "--db", str(recall.db_path), "-o", str(cassette)])
    assert result.exit_code == 0
    assert leaked not in cassette.read_text()
    assert "<masked openai api key>" in cassette.read_text()
    assert "masked a secret in" in result.output and "openai api key" in result.output


def test_cassette_import_refuses_a_file_that_is_not_one(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text('{"hello": 1}\n')
    result = CliRunner().invoke(main, ["cassette", "import", str(bogus), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1
    assert "not a recall cassette" in result.output


def test_imported_recordings_are_searchable(recall_factory: RecallFactory, fake_gemini: FakeGemini,
                                            tmp_path: Path, audit_backend: AuditBackend) -> None:
    recall = recall_factory(emulated(fake_gemini))
    app = client(recall)
    app.interactions.create(model=MODEL, input="Tell me about the Zanzibar archipelago.")
    cassette = tmp_path / "search.jsonl"
    CliRunner().invoke(main, ["cassette", "export", "--db", str(recall.db_path), "-o", str(cassette)])
    target = audit_backend.empty(tmp_path / "imported.db")
    CliRunner().invoke(main, ["cassette", "import", str(cassette), "--db", str(target)])
    found = CliRunner().invoke(main, ["search", "Zanzibar", "--db", str(target), "--json"])
    assert found.exit_code == 0, found.output
    assert "Zanzibar" in found.output


def test_recorded_timing_replays_a_stream_at_its_pace(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    import time

    fake_gemini.stream_delay = 0.05
    recall = recall_factory(emulated(fake_gemini))
    body = {"model": MODEL, "input": "one two three four five six seven", "stream": True}
    with httpx.stream("POST", f"{recall.base('gemini')}/v1/interactions", json=body) as answer:
        recorded = answer.read()
    span_ms = recall.query("SELECT max(at_ms) - min(at_ms) FROM stream_events")[0][0]
    assert span_ms > 200
    replaying = recall_factory(emulated(fake_gemini), mode="replay", replay_timing="recorded")
    started = time.monotonic()
    with httpx.stream("POST", f"{replaying.base('gemini')}/v1/interactions", json=body) as answer:
        assert answer.read() == recorded
    assert time.monotonic() - started >= 0.8 * span_ms / 1000  # the gaps between events are kept


def test_cassette_import_twice_changes_nothing_and_a_rerecording_replaces(
        recall_factory: RecallFactory, fake_gemini: FakeGemini, tmp_path: Path) -> None:
    import sqlite3

    recall = recall_factory(emulated(fake_gemini))
    recorded = record_session(recall)
    cassette = tmp_path / "session.jsonl"
    CliRunner().invoke(main, ["cassette", "export", "--db", str(recall.db_path), "-o", str(cassette)])
    target = tmp_path / "imported.db"

    def rows() -> list[tuple]:
        with sqlite3.connect(target) as db:
            return db.execute("SELECT cache_key, response_body FROM exchanges ORDER BY cache_key, id").fetchall()

    for _ in range(2):
        result = CliRunner().invoke(main, ["cassette", "import", str(cassette), "--db", str(target)])
        assert result.exit_code == 0, result.output
        if _ == 0:
            once = rows()
    assert rows() == once and len(once) == len([ln for ln in cassette.read_text().splitlines() if '"exchange"' in ln])

    # The same requests recorded anew: the new answers replace the old, none queue behind them.
    lines = cassette.read_text().splitlines()
    rerecorded = tmp_path / "rerecorded.jsonl"
    rerecorded.write_text("\n".join(ln.replace("Karthik", "Kartik") for ln in lines) + "\n")
    CliRunner().invoke(main, ["cassette", "import", str(rerecorded), "--db", str(target)])
    after = rows()
    assert len(after) == len(once)
    assert not any(b"Karthik" in (body or b"") for _, body in after)
    assert recorded  # the session really recorded something to replace


def test_stats_keep_a_replay_hits_model_group_by_day_model_and_price_it(
        recall_factory: RecallFactory, fake_gemini: FakeGemini, audit_backend: AuditBackend) -> None:
    recall = recall_factory(emulated(fake_gemini), mode="auto")
    app = client(recall)
    import sqlite3

    app.interactions.create(model=MODEL, input="Hi, my name is Karthik.")   # a miss: forwarded and recorded
    # A recording whose exchange row names no model (a relayed call, an older cassette): its
    # interaction does, and a hit on it must count under that model, not under none.
    with sqlite3.connect(recall.db_path) as db:
        db.execute("UPDATE exchanges SET model = NULL")
    app.interactions.create(model=MODEL, input="Hi, my name is Karthik.")   # the same again: a replay hit
    assert recall.query("SELECT model, interaction_id FROM exchanges WHERE cache = 'hit'") == [(None, None)]
    assert recall.query("SELECT count(DISTINCT cache_key) FROM exchanges") == [(1,)]  # the hit's row keeps its key
    app.interactions.create(model="my-own-finetune", input="Unpriced, surely.")
    for _ in range(2):  # a relayed call (recall stores no model for it): recorded, then replayed
        relayed = httpx.post(f"{recall.base('gemini')}/v1beta/models/{MODEL}:generateContent",
                             json={"contents": [{"role": "user", "parts": [{"text": "relay"}]}]})
    assert relayed.headers["x-recall-cache"] == "hit"
    assert recall.query("SELECT count(*) FROM exchanges WHERE model IS NULL AND path LIKE '%generateContent'") == [(2,)]

    db = str(audit_backend.of(recall.db_path))

    def report(*by: str) -> dict:
        result = CliRunner().invoke(main, ["stats", "--db", db, "--json", *by])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    rows = {r["model"]: r for r in report("--by", "day,model")["rows"]}
    assert report("--by", "day,model")["by"] == ["day", "model"]
    assert set(rows) == {MODEL, "my-own-finetune"}  # the hit is not a row of its own with no model
    assert (rows[MODEL]["requests"], rows[MODEL]["replay_hits"]) == (4, 2)  # the relayed pair counts here too
    # Priced from genai-prices' table; a model it does not know is unknown, never free.
    assert rows[MODEL]["cost_usd"] > 0 and rows[MODEL]["unpriced_models"] == []
    assert rows["my-own-finetune"]["cost_usd"] is None
    assert rows["my-own-finetune"]["unpriced_models"] == ["my-own-finetune"]
    total = report()["total"]
    assert total["cost_usd"] is None and total["unpriced_models"] == ["my-own-finetune"]
    assert report("--by", "day", "--by", "model")["rows"] == report("--by", "day,model")["rows"]

    text = CliRunner().invoke(main, ["stats", "--db", db, "--by", "model"])
    lines = {line.split()[0]: line.split() for line in text.stdout.splitlines()[1:]}
    assert lines["my-own-finetune"][-1] == "unknown" and float(lines[MODEL][-1]) > 0
    bad = CliRunner().invoke(main, ["stats", "--db", db, "--by", "day,colour"])
    assert bad.exit_code == 2 and "cannot group by colour" in bad.output
