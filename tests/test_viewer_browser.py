"""The viewer in a real browser: Debian's Chromium driven by Playwright.

One browser for the module; each test gets a fresh context (its own session
storage). Every page's screenshot is saved under test-artifacts/viewer/.
A page that logs an error (a Content-Security-Policy violation included) or
opens a dialog fails its test. Waits are functions, not expression strings:
Playwright evaluates a string with eval, which the viewer's policy forbids.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Config
from proxy.viewer import create_viewer_app

from .support.loop_thread import LoopThread
from .support.serving import start_on_loopback
from .support.viewer_data import XSS_INPUT
from .support.viewer_fixtures import ViewerSite

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MODEL_SHOWN = "gemini-3-flash-preview"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "viewer"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"no Chromium at {CHROMIUM}: install Debian's (apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Watched:
    """A page with what it said on the side: console errors, uncaught errors, dialogs."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str, wait_for: str) -> Any:
        """Go to `url` and wait until its view is drawn (a hash change keeps the old view a moment)."""
        self.page.goto(url)
        self.page.wait_for_function("() => document.getElementById('main').dataset.ready === location.hash")
        return self.page.wait_for_selector(wait_for)

    def text(self, selector: str = "main") -> str:
        return self.page.inner_text(selector)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def page(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    watched = Watched(context.new_page())
    yield watched
    context.close()
    assert watched.problems == [] and watched.dialogs == []


def viewer(site: ViewerSite, fragment: str = "") -> str:
    return f"{site.url}/_recall/{fragment}"


def test_conversation_list(page: Watched, viewer_site: ViewerSite) -> None:
    data = viewer_site.data
    page.open(viewer(viewer_site), "#conversations")
    rows = page.page.locator("#conversations tbody tr")
    assert rows.count() == 5
    assert data.convs.first.id in rows.nth(4).inner_text()
    first_row = rows.nth(0).inner_text()
    assert data.xss.id in first_row and "gemini" in first_row and MODEL_SHOWN in first_row
    assert page.page.inner_text("#conversations thead").split("\t")[:4] == ["Conversation", "Upstream", "Model", "Turns"]
    assert page.page.inner_text("footer").startswith("recall ") and "mode live" in page.page.inner_text("footer")
    page.screenshot("conversations")

    # Two at a time: the next page holds the next two, newest first.
    page.open(viewer(viewer_site, "#/?limit=2"), "#conversations")
    assert rows.count() == 2 and data.xss.id in rows.nth(0).inner_text()
    page.page.click("text=Next page »")
    page.page.wait_for_selector("text=Page 2")
    assert data.rich.id in rows.nth(0).inner_text() and data.convs.generate.id in rows.nth(1).inner_text()

    # Filters go into the address, so a filtered list can be bookmarked.
    page.open(viewer(viewer_site), "#conversations")
    page.page.fill("#filters input[name=upstream]", "gemgen")
    page.page.click("#filters button")
    page.page.wait_for_function("() => location.hash.includes('upstream=gemgen')")
    page.page.wait_for_function("() => document.querySelectorAll('#conversations tbody tr').length === 1")
    assert data.convs.generate.id in rows.nth(0).inner_text()


def test_search_highlights_and_opens_the_turn(page: Watched, viewer_site: ViewerSite) -> None:
    convs = viewer_site.data.convs
    page.open(viewer(viewer_site), "#conversations")
    page.page.fill("#search-box", "cricket")
    page.page.press("#search-box", "Enter")
    page.page.wait_for_selector("#hits")
    marks = page.page.locator("#hits mark").all_inner_texts()
    assert marks and set(marks) == {"cricket"}
    assert "I like to play cricket" in page.text("#hits")
    page.screenshot("search")
    # Hits are named by their conversation's first message; the id is under it.
    assert convs.first.id in page.text("#hits")
    page.page.click("#hits a:text('Hi, my name is Karthik')")
    page.page.wait_for_selector("#transcript")
    assert page.page.get_attribute(".tree-node.selected", "data-id") == convs.first.id


def test_switch_between_branches(page: Watched, viewer_site: ViewerSite) -> None:
    convs = viewer_site.data.convs
    page.open(viewer(viewer_site, f"#/c/{convs.first.id}"), "#transcript")
    assert page.page.locator("#tree .tree-node").count() == 3
    # The newest branch first: the fork.
    transcript = page.text("#transcript")
    assert "Zephyrquill" in transcript and "What is my name?" not in transcript
    assert "2 follow-ups branch from here" in transcript
    assert set(page.page.locator(".tree-node.on-path").evaluate_all("els => els.map(e => e.dataset.id)")) == {
        convs.first.id, convs.fork.id}
    page.screenshot("conversation")

    page.page.click(f".tree-node[data-id='{convs.name_question.id}']")
    page.page.wait_for_selector(f".tree-node.selected[data-id='{convs.name_question.id}']")
    transcript = page.text("#transcript")
    assert "What is my name?" in transcript and "Your name is Karthik." in transcript
    assert "Zephyrquill" not in transcript
    # And back, through the fork's own links.
    page.page.click(".fork a:text('branch 2')")
    page.page.wait_for_selector(f".tree-node.selected[data-id='{convs.fork.id}']")
    assert "Zephyrquill" in page.text("#transcript")
    meta = page.page.inner_text(f"#node-{convs.fork.id} .meta")
    assert convs.fork.id in meta and "emulate" in meta and "live" in meta and "tokens" in meta


def test_raw_exchange_pretty_printed_without_credentials(page: Watched, viewer_site: ViewerSite) -> None:
    first = viewer_site.data.convs.first
    page.open(viewer(viewer_site, f"#/c/{first.id}"), "#transcript")
    page.page.click(f"#node-{first.id} .node-links a:text('Raw HTTP (1)')")
    page.page.wait_for_selector(".exchange")
    assert page.page.inner_text(".exchange h2").startswith("1. POST /v1/interactions → 200")
    request_body = page.page.locator(".exchange pre.body").nth(0).inner_text()
    assert request_body == '{\n  "model": "gemini-3-flash-preview",\n  "input": "Hi, my name is Karthik. I like to play cricket."\n}'  # indented JSON
    whole = page.text()
    assert "user-agent" in whole and "x-goog-api-key" not in whole and "key-A" not in whole
    page.screenshot("raw-exchange")


def test_stored_markup_is_shown_and_never_runs(page: Watched, viewer_site: ViewerSite) -> None:
    xss = viewer_site.data.xss
    page.open(viewer(viewer_site, f"#/c/{xss.id}"), "#transcript")
    assert XSS_INPUT in page.text("#transcript")
    assert "<b>bold</b>" in page.text("#tree")
    page.screenshot("stored-markup")
    for fragment, ready in (("#/", "#conversations"), ("#/search?q=onerror", "#hits")):
        page.open(viewer(viewer_site, fragment), ready)
        assert "<script>" in page.text() and "onerror=" in page.text()
    state = page.page.evaluate("""() => ({
        ran: window.__recall_xss === undefined ? null : window.__recall_xss,
        elements: document.querySelectorAll('main script, main img:not(.media), main b').length,
        // Trusted Types: even the page's own code could not turn a string into markup.
        innerHTML: (() => { try { document.body.innerHTML = '<b>x</b>'; return 'assigned'; }
                            catch (e) { return e.name; } })(),
    })""")
    assert state == {"ran": None, "elements": 0, "innerHTML": "TypeError"}
    # That refused assignment is the only problem the page reported.
    assert len(page.problems) == 1 and "TrustedHTML" in page.problems[0]
    page.problems.clear()


def test_turn_parts_images_thoughts_and_calls(page: Watched, viewer_site: ViewerSite) -> None:
    rich = viewer_site.data.rich
    page.open(viewer(viewer_site, f"#/c/{rich.id}"), "#transcript")
    page.page.wait_for_function("() => document.querySelector('img.media')?.complete")
    assert page.page.evaluate("document.querySelector('img.media').naturalWidth") == 12  # the stored PNG, decoded
    thought = page.page.locator("details.thought")
    assert thought.get_attribute("open") is None and not page.page.is_visible("details.thought .text")
    thought.locator("summary").click()
    assert page.page.is_visible("details.thought .text")
    assert "ask the weather tool" in thought.inner_text()
    call = page.page.inner_text(".call")
    assert "get_weather" in call and '"city": "Lima"' in call
    assert '"temp_c": 18' in page.page.inner_text(".result")
    page.screenshot("transcript-parts")


def test_stream_timeline(page: Watched, viewer_site: ViewerSite) -> None:
    data = viewer_site.data
    page.open(viewer(viewer_site, f"#/c/{data.streamed.id}"), "#transcript")
    page.page.click(f"a:text('Stream timeline ({data.stream_events + 1} events)')")
    page.page.wait_for_selector("svg.timeline")
    summary = page.page.inner_text("#timeline-summary")
    assert summary.startswith(f"{data.stream_events + 1} events over") and "first event after" in summary
    assert "largest gap" in summary
    assert page.page.locator("svg.timeline line.tick").count() == data.stream_events + 1
    assert page.page.locator("table.events tbody tr").count() == data.stream_events + 1
    page.screenshot("stream-timeline")


def test_stats_charts(page: Watched, viewer_site: ViewerSite) -> None:
    page.open(viewer(viewer_site, "#/stats"), "#stats-total")
    assert page.page.inner_text("#stats-total").startswith(f"{viewer_site.data.convs.requests + 4} requests")
    assert page.page.locator("figure.chart").count() == 4
    assert page.page.locator("figure.chart rect.bar").count() >= 4
    page.screenshot("stats")


@pytest.fixture
def tokened_ui(loop_thread: LoopThread, viewer_site: ViewerSite) -> Iterator[str]:
    """`recall ui`'s app over the same database, with [server] tokens set."""

    runner, url = loop_thread.run(start_on_loopback(create_viewer_app(Config(tokens=["s3cret"]), viewer_site.db_path)))
    yield f"{url}/_recall/"
    loop_thread.run(runner.cleanup())


def test_token_prompt(page: Watched, browser: Any, tokened_ui: str) -> None:
    page.page.goto(tokened_ui)
    dialog = page.page.wait_for_selector("#token-dialog[open]")
    page.screenshot("token-prompt")
    page.page.fill("#token-input", "guess")
    page.page.press("#token-input", "Enter")
    page.page.wait_for_selector("#token-error:not([hidden])")
    assert "refused" in page.page.inner_text("#token-error") and dialog.is_visible()
    page.problems.clear()  # the browser logs the 401s it was answered
    page.page.fill("#token-input", "s3cret")
    page.page.press("#token-input", "Enter")
    page.page.wait_for_selector("#conversations")
    assert not dialog.is_visible()
    stored = page.page.evaluate("({session: sessionStorage.getItem('recall.token'), local: localStorage.length, cookie: document.cookie})")
    assert stored == {"session": "s3cret", "local": 0, "cookie": ""}
    assert "viewer only (recall ui)" in page.page.inner_text("footer")
    # Asked once per tab: a reload keeps it; a new session asks again.
    page.page.reload()
    page.page.wait_for_selector("#conversations")
    assert not page.page.is_visible("#token-dialog")
    other = browser.new_context().new_page()
    other.goto(tokened_ui)
    other.wait_for_selector("#token-dialog[open]")
    other.context.close()


# -- what a newcomer missed: marks, the status filter, titles, narrow screens ----------------

# Written where the other screenshots go; docs/VIEWER.md shows copies of these four (a test run
# must not change tracked files).


@pytest.fixture
def marked_ui(loop_thread: LoopThread, viewer_site: ViewerSite, tmp_path: Path) -> Iterator[str]:
    """`recall ui`'s app over a copy of the site's database where one turn failed and one still runs."""
    import sqlite3

    copy = tmp_path / "recall.db"
    with sqlite3.connect(viewer_site.db_path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    convs = viewer_site.data.convs
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE interactions SET status = 'failed', error = 'the provider answered 500' WHERE id = ?",
                   (convs.name_question.id,))
        db.execute("UPDATE interactions SET status = 'in_progress' WHERE id = ?", (convs.fork.id,))

    runner, url = loop_thread.run(start_on_loopback(create_viewer_app(Config(), copy)))
    yield f"{url}/_recall/"
    loop_thread.run(runner.cleanup())


def _wide(browser: Any, width: int) -> Watched:
    return Watched(browser.new_context(viewport={"width": width, "height": 860}).new_page())


def test_failed_and_running_turns_are_marked_and_filterable_at_1400(browser: Any, marked_ui: str,
                                                                    viewer_site: ViewerSite) -> None:
    convs = viewer_site.data.convs
    page = _wide(browser, 1400)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.open(marked_ui, "#conversations")
    row = page.page.locator("#conversations tbody tr", has_text=convs.first.id)
    assert row.locator(".badge.failed").inner_text() == "1 failed"
    assert row.locator(".badge.in-progress").inner_text() == "1 in progress"
    assert page.page.locator("#conversations .badge").count() == 2  # the other threads have none
    page.page.screenshot(path=str(ARTIFACTS / "viewer-list-1400.png"))

    page.page.select_option("#status-filter", "failed")
    page.page.click("#filters button")
    page.page.wait_for_function("() => location.hash.includes('status=failed')")
    page.page.wait_for_function("() => document.querySelectorAll('#conversations tbody tr').length === 1")
    assert convs.first.id in page.text("#conversations")

    page.open(marked_ui + f"#/c/{convs.first.id}", "#transcript")
    assert page.page.get_attribute("#tree .tree-node.failed", "data-id") == convs.name_question.id
    assert page.page.get_attribute("#tree .tree-node.in-progress", "data-id") == convs.fork.id
    page.page.screenshot(path=str(ARTIFACTS / "viewer-conversation-1400.png"))
    assert page.problems == [] and page.dialogs == []
    page.page.context.close()


def test_at_700_the_branches_never_cover_the_transcript(browser: Any, marked_ui: str,
                                                       viewer_site: ViewerSite) -> None:
    convs = viewer_site.data.convs
    page = _wide(browser, 700)
    page.open(marked_ui + f"#/c/{convs.first.id}", "#transcript")
    for scrolled in (0, 400, 10_000):
        page.page.evaluate("(y) => window.scrollTo(0, y)", scrolled)
        boxes = page.page.evaluate("""() => {
            const b = document.querySelector('.branches').getBoundingClientRect();
            const turns = [...document.querySelectorAll('#transcript .node')].map((n) => n.getBoundingClientRect());
            return {branches: [b.top, b.bottom, b.left, b.right], turns: turns.map((t) => [t.top, t.bottom, t.left, t.right])};
        }""")
        top, bottom, left, right = boxes["branches"]
        for t_top, t_bottom, t_left, t_right in boxes["turns"]:
            overlaps = top < t_bottom and t_top < bottom and left < t_right and t_left < right
            assert not overlaps, (scrolled, boxes)
    assert page.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    page.page.evaluate("window.scrollTo(0, 0)")
    page.page.screenshot(path=str(ARTIFACTS / "viewer-conversation-700.png"), full_page=True)
    page.open(marked_ui, "#conversations")
    assert page.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.page.screenshot(path=str(ARTIFACTS / "viewer-list-700.png"))
    assert page.problems == [] and page.dialogs == []
    page.page.context.close()
