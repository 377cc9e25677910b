"""The viewer's JSON API (/_recall/api/) over a database that a running recall filled
from the real google-genai SDK; access rules, headers, and `recall ui`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import make_mocked_request

from proxy.config import Upstream
from proxy.model import MODEL as MODEL_ROLE
from proxy.model import TEXT, USER, Interaction, Part, Turn, Usage
from proxy.store.audit_db import AuditDB
from proxy.store.readers import Readers
from proxy.store.sqlite import SQLiteStore
from proxy.viewer.access import ViewerError, check_access
from proxy.viewer.pages import ASSETS, load_assets

from .conftest import RecallFactory
from .support.conversations import MODEL, cli, client, have_conversations
from .support.fake_gemini import FakeGemini
from .support.loop_thread import LoopThread
from .support.viewer_data import XSS_INPUT
from .support.viewer_fixtures import ViewerSite, gemini_upstreams

ROOT = Path(__file__).resolve().parent.parent


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return error["message"]


# -- conversations ---------------------------------------------------------------------


def test_conversations_newest_first_with_their_figures(viewer_site: ViewerSite) -> None:
    data = viewer_site.data
    listed = ok(viewer_site.api("/conversations"))
    ids = [c["thread_id"] for c in listed["conversations"]]
    # Each create starts a thread except the follow-ups; the last thread touched comes first.
    assert ids == [data.xss.id, data.streamed.id, data.rich.id, data.convs.generate.id, data.convs.first.id]
    assert listed["next_cursor"] is None
    chat = listed["conversations"][-1]
    assert chat["interactions"] == 3 and chat["upstreams"] == ["gemini"] and chat["models"] == [MODEL]
    branch = [data.convs.first, data.convs.name_question, data.convs.fork]
    assert chat["input_tokens"] == sum(t.usage.total_input_tokens for t in branch)
    assert chat["output_tokens"] == sum(t.usage.total_output_tokens for t in branch)
    assert chat["title"] == data.convs.inputs[data.convs.first.id]
    assert chat["last_activity"] >= chat["started"]


def test_conversation_filters(viewer_site: ViewerSite) -> None:
    def ids(**params: str) -> list[str]:
        return [c["thread_id"] for c in ok(viewer_site.api("/conversations", **params))["conversations"]]

    data = viewer_site.data
    assert ids(upstream="gemgen") == [data.convs.generate.id]
    assert ids(upstream="nowhere") == []
    assert len(ids(model=MODEL)) == 5
    assert ids(model="other-model") == []
    assert len(ids(since="1h")) == 5
    assert ids(since="2999-01-01") == []
    assert ids(until="2000-01-01") == []


def test_conversations_page_by_cursor(viewer_site: ViewerSite) -> None:
    everything = [c["thread_id"] for c in ok(viewer_site.api("/conversations"))["conversations"]]
    walked, cursor, pages = [], None, 0
    while pages < 10:
        page = ok(viewer_site.api("/conversations", limit="2", **({"cursor": cursor} if cursor else {})))
        walked += [c["thread_id"] for c in page["conversations"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == everything and pages == 3


def test_keyset_pages_match_the_conversations_view(loop_thread: LoopThread, tmp_path: Path) -> None:
    """Pages of any size, walked by cursor, give every live thread once, in the view's order,
    with ties in last activity, branches, deleted turns and filters."""
    path = tmp_path / "paging.db"

    async def build() -> None:
        store = await SQLiteStore.open(path)
        for t in range(23):
            parent = None
            for k in range(1 + t % 3):
                moment = 1_700_000_000.0 + (t // 4) * 10 + k  # threads of four share their times
                node = Interaction(
                    id=f"v1_t{t:02d}_{k}", owner="k_test", upstream=("gemini", "openai")[t % 2], front="gemini-interactions",
                    mode="emulate", model=("m-a", "m-b", "m-c")[(t + k) % 3], status="completed",
                    input=[Turn(USER, [Part(TEXT, text=f"thread {t} turn {k}")])],
                    output=[Turn(MODEL_ROLE, [Part(TEXT, text="ok")])], created=moment, updated=moment,
                    parent_id=parent, usage=Usage(input_tokens=1, output_tokens=1),
                )
                await store.save_interaction(node)
                parent = node.id
        # A thread's newest turn deleted: it moves back to its previous turn's time; a
        # one-turn thread deleted: it leaves the list.
        await store.delete_interaction("v1_t05_2")
        await store.delete_interaction("v1_t09_0")
        await store.close()

    loop_thread.run(build())
    audit = AuditDB.open(path)
    try:
        for filters in ({}, {"model": "m-b"}, {"upstream": "openai"}, {"since": 1_700_000_020.0},
                        {"until": 1_700_000_031.0}):
            expected = [r[0] for r in audit.db.execute(
                """SELECT thread_id FROM conversations AS c
                   WHERE (:model IS NULL OR EXISTS (SELECT 1 FROM interactions AS j WHERE j.root_id = c.thread_id
                          AND j.deleted_at IS NULL AND j.model = :model))
                     AND (:upstream IS NULL OR upstreams LIKE '%' || :upstream || '%')
                     AND (:since IS NULL OR last_activity_at >= :since)
                     AND (:until IS NULL OR last_activity_at < :until)
                   ORDER BY last_activity_at DESC, thread_id""",
                {"model": None, "upstream": None, "since": None, "until": None, **filters})]
            assert "v1_t09_0" not in expected and expected
            for size in (1, 2, 5, 50):
                walked, after = [], None
                for _ in range(len(expected) + 1):  # a cursor that stands still must fail, not hang
                    page = audit.threads(limit=size, after=after, **filters)
                    walked += [t.thread_id for t in page]
                    if len(page) < size:
                        break
                    after = (page[-1].last_activity, page[-1].thread_id)
                assert walked == expected, (filters, size)
    finally:
        audit.close()


# -- search ------------------------------------------------------------------------------


def test_search_marks_the_words_it_matched(viewer_site: ViewerSite) -> None:
    data = viewer_site.data
    hits = ok(viewer_site.api("/search", q="cricket"))["hits"]
    first = next(h for h in hits if h["interaction_id"] == data.convs.first.id)
    assert first["thread_id"] == data.convs.first.id and first["upstream"] == "gemini"
    marked = [s["text"] for s in first["input_snippet"] if s["hit"]]
    assert marked == ["cricket"]
    assert "".join(s["text"] for s in first["input_snippet"]) == data.convs.inputs[data.convs.first.id]
    assert any(s["hit"] for s in first["output_snippet"])
    # The fork's marker is in one input only.
    only = ok(viewer_site.api("/search", q="Zephyrquill"))["hits"]
    assert [h["interaction_id"] for h in only] == [data.convs.fork.id]
    assert ok(viewer_site.api("/search", q="nothingmatchesthis"))["hits"] == []


def test_search_pages_and_fts_syntax(viewer_site: ViewerSite) -> None:
    everything = [h["interaction_id"] for h in ok(viewer_site.api("/search", q="name"))["hits"]]
    assert len(everything) >= 3
    walked, cursor = [], None
    for _ in range(len(everything) + 1):
        page = ok(viewer_site.api("/search", q="name", limit="1", **({"cursor": cursor} if cursor else {})))
        walked += [h["interaction_id"] for h in page["hits"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == everything
    either = ok(viewer_site.api("/search", q="cricket OR okapi", fts="1"))["hits"]
    assert {viewer_site.data.convs.generate.id, viewer_site.data.convs.first.id} <= {h["interaction_id"] for h in either}


# -- one conversation ------------------------------------------------------------------


def test_conversation_by_any_of_its_turns_with_branches(viewer_site: ViewerSite) -> None:
    convs = viewer_site.data.convs
    thread = ok(viewer_site.api(f"/conversations/{convs.fork.id}"))
    assert thread["thread_id"] == convs.first.id and thread["focus"] == convs.fork.id
    by_id = {n["id"]: n for n in thread["nodes"]}
    assert list(by_id) == [convs.first.id, convs.name_question.id, convs.fork.id]  # parents first
    assert by_id[convs.fork.id]["parent_id"] == convs.first.id
    assert [t["role"] for t in by_id[convs.first.id]["input"]] == ["user"]
    assert by_id[convs.name_question.id]["output"][0]["parts"][0]["text"].endswith("Your name is Karthik.")
    [root] = thread["tree"]
    assert root["id"] == convs.first.id
    assert [c["id"] for c in root["children"]] == [convs.name_question.id, convs.fork.id]
    for node in thread["nodes"]:
        assert node["mode"] == "emulate" and node["status"] == "completed"
        served = node["served"]
        assert served["exchanges"] == 1 and served["status"] == 200 and served["cache"] == "live"
        assert served["latency_ms"] > 0 and served["stream_events"] == 0
    assert ok(viewer_site.api(f"/conversations/{convs.first.id}"))["nodes"] == thread["nodes"]


def test_conversation_parts_of_every_kind(viewer_site: ViewerSite) -> None:
    rich = viewer_site.data.rich
    [node] = ok(viewer_site.api(f"/conversations/{rich.id}"))["nodes"]
    kinds = [[p["kind"] for p in turn["parts"]] for turn in node["input"]]
    assert kinds == [["text", "image"], ["thought", "function_call"], ["function_result", "text"]]
    image = node["input"][0]["parts"][1]
    assert image["mime_type"] == "image/png" and image["data"].startswith("iVBORw0KGgo")
    call = node["input"][1]["parts"][1]
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Lima"}
    assert node["input"][2]["parts"][0]["result"] == {"temp_c": 18}


def test_deleted_turn_is_a_tombstone(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    recall = recall_factory(gemini_upstreams(fake_gemini))
    gemini = client(f"{recall.url}/gemini")
    first = gemini.interactions.create(model=MODEL, input="Remember the word tangerine.")
    second = gemini.interactions.create(model=MODEL, input="And then?", previous_interaction_id=first.id)
    gemini.interactions.delete(first.id)
    nodes = ok(httpx.get(f"{recall.url}/_recall/api/conversations/{second.id}"))["nodes"]
    assert [n["id"] for n in nodes] == [first.id, second.id]
    assert nodes[0]["status"] == "deleted" and "deleted" in nodes[0] and "input" not in nodes[0]
    assert ok(httpx.get(f"{recall.url}/_recall/api/interactions/{first.id}/exchanges"))["exchanges"] == []
    assert "tangerine" not in httpx.get(f"{recall.url}/_recall/api/conversations/{first.id}").text
    hits = ok(httpx.get(f"{recall.url}/_recall/api/search", params={"q": "tangerine"}))["hits"]
    assert hits == []


# -- raw exchanges and stream events -----------------------------------------------------------


def test_raw_exchanges_without_credentials(viewer_site: ViewerSite) -> None:
    first = viewer_site.data.convs.first
    answer = viewer_site.api(f"/interactions/{first.id}/exchanges")
    [ex] = ok(answer)["exchanges"]
    assert ex["interaction_id"] == first.id and ex["upstream"] == "gemini"
    assert ex["method"] == "POST" and ex["path"].endswith("/interactions") and ex["status"] == 200
    assert ex["cache"] == "live" and ex["stored"] is True and ex["latency_ms"] > 0
    assert json.loads(ex["request_body"])["input"] == viewer_site.data.convs.inputs[first.id]
    assert json.loads(ex["response_body"])["id"] == first.id
    assert "x-goog-api-key" not in ex["request_headers"] and "user-agent" in ex["request_headers"]
    assert ex["upstream_digest"]  # emulate mode: the rebuilt request's digest, not the request
    assert "key-A" not in answer.text  # the app's API key, anywhere


def test_stream_timeline(viewer_site: ViewerSite) -> None:
    data = viewer_site.data
    timeline = ok(viewer_site.api(f"/interactions/{data.streamed.id}/events"))
    events = timeline["events"]
    # Every event the app got, and the closing `done` the SDK does not surface.
    assert len(events) == data.stream_events + 1
    assert events[0]["event"] == "interaction.created" and events[-1]["event"] == "done"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert data.streamed.id in events[0]["data"]
    times = [e["at_ms"] for e in events]
    assert times == sorted(times)
    assert timeline["first_event_ms"] == times[0] and timeline["last_event_ms"] == times[-1]
    assert sum(e["gap_ms"] for e in events) == pytest.approx(times[-1], abs=0.01)
    gap = timeline["largest_gap"]
    assert gap["gap_ms"] == max(e["gap_ms"] for e in events[1:])
    assert gap["gap_ms"] >= 4  # the fake pauses 5 ms between events
    assert ok(viewer_site.api(f"/conversations/{data.streamed.id}"))["nodes"][0]["served"]["stream_events"] == len(events)
    # A turn that was not streamed has none.
    plain = ok(viewer_site.api(f"/interactions/{data.convs.first.id}/events"))
    assert plain["events"] == [] and plain["first_event_ms"] is None and plain["largest_gap"] is None


# -- stats ----------------------------------------------------------------------------------


def test_stats_per_day_and_model(viewer_site: ViewerSite) -> None:
    stats = ok(viewer_site.api("/stats", by="day,model"))
    assert stats["by"] == ["day", "model"]
    requests = viewer_site.data.convs.requests + 4  # rich, streamed, xss and its follow-up
    assert stats["total"]["requests"] == requests == sum(r["requests"] for r in stats["rows"])
    assert stats["total"]["interactions"] == 8
    assert stats["total"]["errors"] == 1
    assert {r["model"] for r in stats["rows"]} == {MODEL, None}  # the failed call has no model
    assert ok(viewer_site.api("/stats", by="model"))["by"] == ["model"]
    assert ok(viewer_site.api("/stats"))["by"] == ["day", "upstream", "model"]
    assert ok(viewer_site.api("/stats", since="2999-01-01")) == {"by": ["day", "upstream", "model"], "rows": [], "total": None}


def test_info(viewer_site: ViewerSite) -> None:
    info = ok(viewer_site.api("/info"))
    assert info["mode"] == "live" and info["database"] == str(viewer_site.db_path)
    assert info["token_required"] is False and info["version"]


# -- bad requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "words"), [
    ("/conversations", {"limit": "0"}, "limit must be a whole number from 1 to 500"),
    ("/conversations", {"limit": "many"}, "limit must be"),
    ("/conversations", {"limit": "501"}, "limit must be"),
    ("/conversations", {"since": "last tuesday"}, "since: 'last tuesday' is not a date"),
    ("/conversations", {"cursor": "%%%"}, "is not one this viewer gave out"),
    ("/conversations", {"cursor": "MQ"}, "does not belong to the conversation list"),
    ("/search", {}, "q: give at least one word"),
    ("/search", {"q": '"unbalanced', "fts": "true"}, "cannot search for"),
    ("/search", {"q": "name", "cursor": "WzEsImEiXQ"}, "does not belong to a search"),
    ("/stats", {"by": "week"}, "by: cannot group by week; choose from day, upstream, model"),
])
def test_bad_parameters_are_400_with_what_to_fix(viewer_site: ViewerSite, path: str, params: dict, words: str) -> None:
    assert words in refused(viewer_site.api(path, **params), 400, "invalid_request")


def test_unknown_ids_are_404(viewer_site: ViewerSite) -> None:
    for path in ("/conversations/v1_nosuch", "/interactions/v1_nosuch/exchanges", "/interactions/v1_nosuch/events"):
        assert "no interaction 'v1_nosuch'" in refused(viewer_site.api(path), 404, "not_found")


def test_viewer_paths_never_reach_an_upstream(viewer_site: ViewerSite) -> None:
    seen = len(viewer_site.fake.requests)
    base = f"{viewer_site.url}/_recall"
    assert "no viewer endpoint" in refused(httpx.get(f"{base}/api/nothing"), 404, "not_found")
    assert "no viewer endpoint" in refused(httpx.get(f"{base}/elsewhere"), 404, "not_found")
    assert "read-only" in refused(httpx.post(f"{base}/api/conversations", json={}), 405, "read_only")
    assert "read-only" in refused(httpx.delete(f"{base}/api/conversations/{viewer_site.data.xss.id}"), 405, "read_only")
    assert refused(httpx.get(f"{base}/static/secrets.txt"), 404, "not_found")
    moved = httpx.get(base)
    assert moved.status_code == 302 and moved.headers["location"] == "/_recall/"
    assert len(viewer_site.fake.requests) == seen
    assert ok(viewer_site.api(f"/conversations/{viewer_site.data.xss.id}"))  # DELETE changed nothing


# -- the page, its assets and its headers ------------------------------------------------------


def test_page_and_assets_ship_in_the_package(viewer_site: ViewerSite) -> None:
    assets = load_assets()
    page = httpx.get(f"{viewer_site.url}/_recall/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content == assets["index.html"]
    for name, kind in ASSETS.items():
        if name != "index.html":
            answer = httpx.get(f"{viewer_site.url}/_recall/static/{name}")
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
            assert answer.content == assets[name]
    # Nothing from elsewhere (no CDN, no external fonts), and no way for data to become markup or code.
    for name, body in assets.items():
        assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"") and b"https://" not in body, name
        for sink in (b".innerHTML", b".outerHTML", b"insertAdjacentHTML", b"document.write", b"eval(", b"new Function"):
            assert sink not in body, (name, sink)


def test_every_answer_has_the_security_headers(viewer_site: ViewerSite) -> None:
    for path in ("/_recall/", "/_recall/static/viewer.js", "/_recall/api/conversations", "/_recall/api/nothing"):
        headers = httpx.get(viewer_site.url + path).headers
        policy = dict(p.strip().split(" ", 1) for p in headers["content-security-policy"].split(";"))
        assert policy["default-src"] == "'none'"
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"  # no inline, no eval
        assert policy["img-src"] == "'self' data:" and policy["frame-ancestors"] == "'none'"
        assert policy["require-trusted-types-for"] == "'script'"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    assert httpx.get(f"{viewer_site.url}/_recall/api/info").headers["cache-control"] == "no-store"
    # No CORS: another origin's page cannot read the API.
    assert "access-control-allow-origin" not in httpx.get(
        f"{viewer_site.url}/_recall/api/info", headers={"Origin": "http://elsewhere.example"}).headers


def test_stored_markup_comes_back_as_plain_json_strings(viewer_site: ViewerSite) -> None:
    answer = viewer_site.api(f"/conversations/{viewer_site.data.xss.id}")
    assert answer.headers["content-type"] == "application/json"
    assert ok(answer)["nodes"][0]["input"][0]["parts"][0]["text"] == XSS_INPUT


# -- access ---------------------------------------------------------------------------------


def test_tokens_guard_the_api_not_the_page(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    recall = recall_factory(gemini_upstreams(fake_gemini), tokens=["s3cret"])
    api = f"{recall.url}/_recall/api/conversations"
    assert "X-Recall-Token" in refused(httpx.get(api), 401, "unauthenticated")
    refused(httpx.get(api, headers={"X-Recall-Token": "guess"}), 401, "unauthenticated")
    assert ok(httpx.get(api, headers={"X-Recall-Token": "s3cret"})) == {"conversations": [], "next_cursor": None}
    assert ok(httpx.get(f"{recall.url}/_recall/api/info", headers={"X-Recall-Token": "s3cret"}))["token_required"]
    assert httpx.get(f"{recall.url}/_recall/").status_code == 200
    assert httpx.get(f"{recall.url}/_recall/static/viewer.js").status_code == 200


def test_without_tokens_only_loopback_clients() -> None:
    def request(remote: str, host: str = "127.0.0.1:8642", headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return make_mocked_request("GET", "/_recall/api/info", headers={"Host": host, **(headers or {})}).clone(remote=remote)

    check_access(request("127.0.0.1"), [], api=True)
    check_access(request("::1", "[::1]:8642"), [], api=True)
    check_access(request("127.0.0.1", "localhost:8642"), [], api=False)
    for remote in ("192.0.2.10", "2001:db8::1"):
        with pytest.raises(ViewerError) as refusal:
            check_access(request(remote), [], api=False)
        assert refusal.value.status == 403 and "set [server] tokens" in refusal.value.message
    # With tokens, the token decides, wherever the client is.
    check_access(request("192.0.2.10", "recall.internal:8642", {"X-Recall-Token": "t"}), ["t"], api=True)
    with pytest.raises(ViewerError) as refusal:
        check_access(request("192.0.2.10", "recall.internal:8642"), ["t"], api=True)
    assert refusal.value.status == 401


def test_a_foreign_host_name_is_refused(viewer_site: ViewerSite) -> None:
    """A page elsewhere whose host name resolves to 127.0.0.1 (DNS rebinding) gets nothing."""
    answer = viewer_site.api("/conversations", headers={"Host": "attacker.example"})
    assert "'attacker.example'" in refused(answer, 403, "loopback_only")
    assert httpx.get(f"{viewer_site.url}/_recall/", headers={"Host": "attacker.example:80"}).status_code == 403
    assert ok(viewer_site.api("/info", headers={"Host": "localhost"}))


def test_viewer_in_replay_and_auto_modes(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    live = recall_factory(gemini_upstreams(fake_gemini), db_name="modes.db")
    convs = have_conversations(live.url)
    for mode in ("replay", "auto"):
        recall = recall_factory(gemini_upstreams(fake_gemini), db_name="modes.db", mode=mode)
        assert ok(httpx.get(f"{recall.url}/_recall/api/info"))["mode"] == mode
        listed = ok(httpx.get(f"{recall.url}/_recall/api/conversations"))["conversations"]
        assert [c["thread_id"] for c in listed] == [convs.generate.id, convs.first.id]


# -- reads stay off the event loop ---------------------------------------------------------------


def test_a_slow_read_does_not_stall_the_event_loop(loop_thread: LoopThread, tmp_path: Path) -> None:
    path = tmp_path / "slow.db"

    async def scenario() -> tuple[float, int]:
        await (await SQLiteStore.open(path)).close()  # creates and migrates the file
        readers = await Readers.open(path)
        try:
            slow = asyncio.ensure_future(readers.run(lambda db: time.sleep(0.4)))
            worst, ticks = 0.0, 0
            while not slow.done():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                worst, ticks = max(worst, time.perf_counter() - before), ticks + 1
            # The second reader answers while the first is busy.
            busy = asyncio.ensure_future(readers.run(lambda db: time.sleep(0.3)))
            started = time.perf_counter()
            count = await readers.run(lambda db: db.db.execute("SELECT count(*) FROM interactions").fetchone()[0])
            assert time.perf_counter() - started < 0.2 and count == 0
            await busy
            return worst, ticks
        finally:
            await readers.close()

    worst, ticks = loop_thread.run(scenario())
    assert ticks >= 10 and worst < 0.1


def test_readers_cannot_write(loop_thread: LoopThread, tmp_path: Path) -> None:
    path = tmp_path / "ro.db"

    async def scenario() -> None:
        store = await SQLiteStore.open(path)
        await store.close()
        readers = await Readers.open(path)
        try:
            with pytest.raises(Exception, match="readonly|query_only|attempt to write"):
                await readers.run(lambda db: db.db.execute("DELETE FROM interactions"))
        finally:
            await readers.close()

    loop_thread.run(scenario())


# -- recall ui ----------------------------------------------------------------------------------


def test_recall_ui_serves_the_viewer_alone(viewer_site: ViewerSite, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    env.pop("RECALL_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "ui", "--db", str(viewer_site.db_path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/_recall/")
        root = url.removesuffix("/_recall/")
        info = ok(httpx.get(f"{root}/_recall/api/info"))
        assert info["mode"] is None and info["database"] == str(viewer_site.db_path)
        listed = ok(httpx.get(f"{root}/_recall/api/conversations"))["conversations"]
        assert listed[0]["thread_id"] == viewer_site.data.xss.id
        home = httpx.get(f"{root}/")
        assert home.status_code == 302 and home.headers["location"] == "/_recall/"
        assert httpx.get(f"{root}/gemini/v1beta/interactions").status_code == 404  # no proxy here
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "read-only" in err


def test_recall_ui_needs_an_existing_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECALL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    missing = cli(tmp_path / "none.db", "ui")
    assert missing.exit_code == 1 and "no database at" in missing.output
    assert not (tmp_path / "none.db").exists()


def test_native_turns_show_their_exchange_and_take_it_when_erased(
    recall_factory: RecallFactory, stateful_gemini: FakeGemini
) -> None:
    """In native mode the call is relayed as it is; its recorded exchange is filed under the
    interaction the provider answered with, so the viewer shows it and DELETE erases it."""
    recall = recall_factory({"gemini": Upstream("gemini", stateful_gemini.url, "gemini", state="native")})
    gemini = client(f"{recall.url}/gemini")
    turn = gemini.interactions.create(model=MODEL, input="Remember the word persimmon.")
    [node] = ok(httpx.get(f"{recall.url}/_recall/api/conversations/{turn.id}"))["nodes"]
    assert node["mode"] == "native" and node["served"]["exchanges"] == 1 and node["served"]["cache"] == "live"
    [ex] = ok(httpx.get(f"{recall.url}/_recall/api/interactions/{turn.id}/exchanges"))["exchanges"]
    assert "persimmon" in ex["request_body"] and json.loads(ex["response_body"])["id"] == turn.id
    gemini.interactions.delete(turn.id)
    assert ok(httpx.get(f"{recall.url}/_recall/api/interactions/{turn.id}/exchanges"))["exchanges"] == []
    assert b"persimmon" not in recall.db_bytes()


def test_threads_carry_failed_and_running_counts_and_filter_by_status(viewer_site) -> None:  # type: ignore[no-untyped-def]
    """The list's marks and status filter, over a copy where one turn failed and one still runs."""
    import sqlite3
    import tempfile
    from pathlib import Path

    from proxy.store.audit_db import AuditDB

    convs = viewer_site.data.convs
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "recall.db"
        with sqlite3.connect(viewer_site.db_path) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        with sqlite3.connect(copy) as db:
            db.execute("UPDATE interactions SET status = 'failed' WHERE id = ?", (convs.name_question.id,))
            db.execute("UPDATE interactions SET status = 'in_progress' WHERE id = ?", (convs.fork.id,))
        audit = AuditDB.open(copy)
        try:
            (thread,) = [t for t in audit.threads() if t.thread_id == convs.first.id]
            assert (thread.failed, thread.in_progress) == (1, 1)
            assert [t.thread_id for t in audit.threads(status="failed")] == [convs.first.id]
            assert [t.thread_id for t in audit.threads(status="in_progress")] == [convs.first.id]
            (hit,) = audit.search("cricket")
            assert hit.title == "Hi, my name is Karthik. I like to play cricket."
        finally:
            audit.close()
    assert viewer_site.api("/conversations", status="sometimes").status_code == 400
    records = viewer_site.api("/conversations", status="completed").json()["conversations"]
    assert records and all(r["failed"] == 0 and r["in_progress"] == 0 for r in records)
