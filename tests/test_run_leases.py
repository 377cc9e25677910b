"""Two recall processes on one file never fail each other's runs (issue 16, item 9).

An in-progress node names the recall running it and carries a lease that recall's
heartbeat renews; a recall starting on the same file fails only the nodes whose lease
has run out (their recall is gone), never those of a recall still running.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import time

from google import genai

from proxy.config import Upstream
from proxy.store.run_leases import RUN_LEASE_S

from .conftest import RecallFactory
from .support.fake_gemini import FakeGemini
from .support.loop_thread import LoopThread
from .test_gemini_interactions import MODEL


def ended_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def client(base_url: str) -> genai.Client:
    return genai.Client(api_key="key-A", http_options={"base_url": base_url, "retry_options": {"attempts": 1}})


def test_a_second_recall_leaves_the_first_ones_runs_alone(recall_factory: RecallFactory, fake_gemini: FakeGemini,
                                                          loop_thread: LoopThread) -> None:
    fake_gemini.hold = asyncio.Event()
    upstreams = {"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")}
    first = recall_factory(upstreams)
    app = client(first.base("gemini"))  # held in a name: google-genai closes a client once it is collected
    started = app.interactions.create(model=MODEL, input="a long one", background=True)
    owner, lease = first.query("SELECT run_owner, lease_until FROM interactions WHERE id = ?", started.id)[0]
    assert owner and lease > time.time() + RUN_LEASE_S / 2  # named and vouched for
    second = recall_factory(upstreams)  # same file, started while the first runs the turn
    other = client(second.base("gemini"))
    assert other.interactions.get(started.id).status == "in_progress"
    loop_thread.loop.call_soon_threadsafe(fake_gemini.hold.set)
    deadline = time.monotonic() + 10
    while (got := other.interactions.get(started.id)).status == "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert got.status == "completed" and got.output_text
    assert first.query("SELECT run_owner, lease_until FROM interactions WHERE id = ?", started.id) == [(None, None)]


def test_the_runs_of_a_recall_that_died_are_failed_once_their_lease_runs_out(recall_factory: RecallFactory,
                                                                             fake_gemini: FakeGemini) -> None:
    upstreams = {"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")}
    first = recall_factory(upstreams)
    app = client(first.base("gemini"))
    done = app.interactions.create(model=MODEL, input="hello")
    now = time.time()
    with sqlite3.connect(first.db_path) as db:  # two turns left running by recalls that are gone
        here = socket.gethostname()
        for node_id, owner, lease in (("v1_dead", "host:1:dead", now - 1), ("v1_alive", "host:2:alive", now + 60),
                                      ("v1_killed", f"{here}:{ended_pid()}:gone", now + 60),
                                      ("v1_running_here", f"{here}:{os.getpid()}:other", now + 60)):
            db.execute("INSERT INTO interactions (id, owner, upstream, front, mode, status, root_id, depth,"
                       " created_at, updated_at, run_owner, lease_until)"
                       " VALUES (?, 'o', 'gemini', 'gemini-interactions', 'emulate', 'in_progress', ?, 0, ?, ?, ?, ?)",
                       (node_id, node_id, now, now, owner, lease))
    recall_factory(upstreams, db_name="recall.db")
    statuses = dict(first.query("SELECT id, status FROM interactions"))
    # Another machine's recall is trusted until its lease runs out; one of this machine whose
    # process has ended is gone at once (a crash, then a restart), lease or not.
    assert statuses == {done.id: "completed", "v1_dead": "failed", "v1_alive": "in_progress",
                        "v1_killed": "failed", "v1_running_here": "in_progress"}
