"""Several recall instances on one PostgreSQL database, a client round-robining between them.

Every follow-up goes to another instance than its parent did; a delete on one is seen by the
others at once; a stream started on one is resumed on another; a background run is cancelled
from another instance than the one that runs it; and while the database is away every
instance answers 503 with Retry-After, before any provider call, then serves again.
The long runs (200 chains x 10 turns, an instance SIGKILLed) are tests/test_pg_load.py's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from google import genai
from google.genai import _interactions as gi

from proxy.config import Config, Upstream

from .conftest import Recall
from .support.contract.tap import check_recall
from .support.fake_gemini import FakeGemini
from .support.front_routes import FRONT_ROUTES, FrontRoute, emulated
from .support.load import MOUNT, Report, drive, new_chains, verify_with
from .support.loop_thread import LoopThread
from .support.stores import Backend

pytest.importorskip("asyncpg")

INSTANCES = 3
MODEL = "gemini-3-flash-preview"

Instances = Callable[[dict[str, Upstream]], list[Recall]]


@pytest.fixture
def instances(loop_thread: LoopThread, pg_url: str) -> Iterator[Instances]:
    """Starts INSTANCES recalls (in this process, on the test loop) on one fresh database."""
    from proxy.http.app import start

    runners: list[Any] = []

    def make(upstreams: dict[str, Upstream]) -> list[Recall]:
        started = []
        for _ in range(INSTANCES):
            config = Config(host="127.0.0.1", port=0)
            config.upstreams.update(upstreams)
            runner, port = loop_thread.run(start(config, pg_url, check_recall(config)))
            runners.append(runner)
            started.append(Recall(f"http://127.0.0.1:{port}", pg_url, config))
        return started

    yield make
    for runner in runners:
        loop_thread.run(runner.cleanup())


def query(recall: Recall) -> Callable[..., list[tuple[Any, ...]]]:
    return lambda sql, *params: asyncio.run(Backend("postgres", recall.database).query(sql, *params))


@pytest.mark.parametrize("route", FRONT_ROUTES, ids=lambda r: r.name)
def test_chains_continue_on_every_instance(route: FrontRoute, loop_thread: LoopThread, instances: Instances) -> None:
    """Each turn on another instance than its parent's (a task run's result read on a third):
    every turn reaches the provider with its whole history, and the database holds every chain."""
    upstream = emulated(route)[0]
    fake = upstream.fake()
    loop_thread.run(fake.start())
    try:
        recalls = instances({MOUNT: Upstream(MOUNT, fake.url, upstream.api, state=upstream.state)})
        chains, report = new_chains(6), Report()

        async def load() -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                await drive(session, [r.url for r in recalls], route, chains, 4, report, stream_every=2)

        asyncio.run(load())
        assert report.errors == [], report.errors[:5]
        assert fake.history_mismatches == [], fake.history_mismatches[:5]
        assert report.completed == 6 * 4
        assert verify_with(query(recalls[0]), chains) == []
    finally:
        loop_thread.run(fake.stop())


def client(recall: Recall) -> genai.Client:
    return genai.Client(api_key="key-A", http_options={"base_url": recall.base("gemini"),
                                                       "retry_options": {"attempts": 1}})


def gemini_instances(instances: Instances, fake: FakeGemini) -> list[genai.Client]:
    return [client(r) for r in instances({"gemini": Upstream("gemini", fake.url, "gemini", state="emulate")})]


def test_a_delete_on_one_instance_is_seen_by_the_others_at_once(instances: Instances, fake_gemini: FakeGemini) -> None:
    first, second, third = gemini_instances(instances, fake_gemini)
    root = first.interactions.create(model=MODEL, input="Name a river.")
    child = second.interactions.create(model=MODEL, input="And a lake?", previous_interaction_id=root.id)
    assert third.interactions.get(child.id).id == child.id  # read, and its chain cached, on the third
    second.interactions.delete(root.id)
    with pytest.raises(gi.NotFoundError):
        third.interactions.get(root.id)
    with pytest.raises(gi.NotFoundError):
        first.interactions.create(model=MODEL, input="More?", previous_interaction_id=root.id)
    # The child goes on without the erased turn, wherever it is continued.
    seen = len(fake_gemini.requests)
    third.interactions.create(model=MODEL, input="And a sea?", previous_interaction_id=child.id)
    sent = fake_gemini.requests[seen].body
    assert "Name a river." not in str(sent) and "And a lake?" in str(sent)


def test_a_stream_started_on_one_instance_is_followed_and_resumed_on_others(
        instances: Instances, fake_gemini: FakeGemini, loop_thread: LoopThread) -> None:
    first, second, third = gemini_instances(instances, fake_gemini)
    fake_gemini.hold = asyncio.Event()
    seen: list[Any] = []
    begun = threading.Event()

    def app() -> None:
        for event in first.interactions.create(model=MODEL, input="Tell me a long story.", stream=True):
            seen.append(event)
            begun.set()

    reader = threading.Thread(target=app)
    reader.start()
    assert begun.wait(10)
    interaction_id = seen[0].interaction.id
    followed: list[Any] = []

    def follow() -> None:
        try:
            followed.extend(second.interactions.get(interaction_id, stream=True))
        except Exception as exc:
            followed.append(exc)

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.3)  # the follower waits on the other instance's run
    loop_thread.loop.call_soon_threadsafe(fake_gemini.hold.set)
    reader.join(10)
    follower.join(10)
    assert not follower.is_alive()
    ids = [e.event_id for e in seen]
    assert [getattr(e, "event_id", e) for e in followed] == ids
    assert seen[-1].event_type == "interaction.completed"
    resumed = list(third.interactions.get(interaction_id, stream=True, last_event_id=ids[2]))
    assert [e.event_id for e in resumed] == ids[3:]


def test_a_background_run_is_cancelled_from_another_instance(instances: Instances, fake_gemini: FakeGemini) -> None:
    first, second, third = gemini_instances(instances, fake_gemini)
    fake_gemini.hold = asyncio.Event()
    started = first.interactions.create(model=MODEL, input="Research the tides.", background=True)
    deadline = time.monotonic() + 10
    while not fake_gemini.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    cancelled = second.interactions.cancel(started.id)
    assert cancelled.status == "cancelled"
    assert third.interactions.get(started.id).status == "cancelled"
    with pytest.raises(gi.BadRequestError):  # over: nothing left to cancel
        third.interactions.cancel(started.id)


def test_a_database_away_is_a_503_before_any_provider_call_and_service_resumes(
        instances: Instances, fake_gemini: FakeGemini, postgres_server: Any) -> None:
    recalls = instances({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")})
    first, second, _ = (client(r) for r in recalls)
    root = first.interactions.create(model=MODEL, input="Name a river.")
    calls = len(fake_gemini.requests)
    postgres_server.stop()
    try:
        for recall in recalls:
            for body in ({"model": MODEL, "input": "New?"},
                         {"model": MODEL, "input": "More?", "previous_interaction_id": root.id}):
                answer = _post(recall, "/gemini/v1beta/interactions", body)
                assert answer[0] == 503 and answer[1].get("Retry-After"), answer
                assert "recall cannot write its database" in answer[2]
        assert len(fake_gemini.requests) == calls  # no provider call while the database was away
    finally:
        postgres_server.restart()
    deadline = time.monotonic() + 20
    while True:  # the pools reconnect on their next use
        try:
            again = second.interactions.create(model=MODEL, input="Back?", previous_interaction_id=root.id)
            break
        except gi.APIStatusError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert again.status == "completed"
    assert first.interactions.get(again.id).id == again.id


def _post(recall: Recall, path: str, body: dict[str, Any]) -> tuple[int, Any, str]:
    import httpx

    answer = httpx.post(recall.url + path, json=body, headers={"x-goog-api-key": "key-A"}, timeout=30)
    return answer.status_code, answer.headers, answer.text


def test_each_instances_viewer_reads_the_shared_database(instances: Instances, fake_gemini: FakeGemini) -> None:
    """The viewer each instance serves reads PostgreSQL: a turn made on one is listed by
    another's, and the database is named without its password."""
    recalls = instances({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")})
    first = client(recalls[0])  # held: a genai client closes its connections when collected
    made = first.interactions.create(model=MODEL, input="Name a river.")
    with httpx.Client(base_url=recalls[2].url) as viewer:
        info = viewer.get("/_recall/api/info").json()
        listed = viewer.get("/_recall/api/conversations").json()
    assert info["database"].startswith("postgresql://") and "recall-test" not in info["database"]
    assert [thread["thread_id"] for thread in listed["conversations"]] == [made.id]
