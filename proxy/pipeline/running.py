"""Turns being produced right now, by interaction id: their tasks, and a signal for followers.

A streamed or background turn (pipeline/run.py) is a task of its own, so it goes on
when the app disconnects; `cancel` stops it; shutdown stops every run and lets each one
record why. A background run an app asked not to store (`X-Recall-Store:
false`) keeps its node here, never on disk, so that its result can still be
read: until an hour after it finished, or recall stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from ..model import IN_PROGRESS, Interaction

CANCELLED_BY_APP = "cancelled"
SHUT_DOWN = "recall shut down while this interaction was running"
DELETED_WHILE_RUNNING = "the interaction was deleted while it was running"
# How often a follower looks for the news of a run another instance holds.
ELSEWHERE_POLL_S = 0.1
# How long a finished unstored run stays readable.
_KEEP_UNSTORED_S = 3600.0


class Runs:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._signals: dict[str, asyncio.Event] = {}
        self._reasons: dict[str, str] = {}
        self._unstored: dict[str, Interaction] = {}

    def start(self, interaction_id: str, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=f"recall-turn-{interaction_id}")
        self._tasks[interaction_id] = task
        self._signals[interaction_id] = asyncio.Event()
        task.add_done_callback(lambda _: self._finished(interaction_id))
        # An error a run raises goes to whoever awaits it (a plain turn's request); one whose app
        # has gone is not an unretrieved exception.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        return task

    def keep_unstored(self, node: Interaction) -> None:
        """Hold an unstored run's node (by its run id, else its id); the run updates it in place."""
        cutoff = time.time() - _KEEP_UNSTORED_S
        for key, held in list(self._unstored.items()):
            if held.status != IN_PROGRESS and held.updated < cutoff:
                del self._unstored[key]
        self._unstored[node.run_id or node.id] = node  # a task run is read by its run id

    def unstored(self, key: str) -> Interaction | None:
        return self._unstored.get(key)

    def _finished(self, interaction_id: str) -> None:
        self._tasks.pop(interaction_id, None)
        self._reasons.pop(interaction_id, None)
        signal = self._signals.pop(interaction_id, None)
        if signal is not None:
            signal.set()

    def running(self, interaction_id: str) -> bool:
        return interaction_id in self._tasks

    def stop_reason(self, interaction_id: str) -> str | None:
        """Why a run was stopped from outside: cancelled by the app, or shutdown."""
        return self._reasons.get(interaction_id)

    def notify(self, interaction_id: str) -> None:
        """Wake everyone following this run (new events are committed)."""
        signal = self._signals.get(interaction_id)
        if signal is not None:
            signal.set()
            self._signals[interaction_id] = asyncio.Event()

    async def changed(self, interaction_id: str, timeout: float) -> None:
        """Until this process's run has news, or `timeout`; a run of another instance (on a shared
        database) tells nothing here: its follower looks at the database again after a short wait."""
        signal = self._signals.get(interaction_id)
        if signal is None:
            await asyncio.sleep(min(timeout, ELSEWHERE_POLL_S))
            return
        try:
            await asyncio.wait_for(signal.wait(), timeout)
        except TimeoutError:
            pass

    async def cancel(self, interaction_id: str, reason: str = CANCELLED_BY_APP) -> bool:
        task = self._tasks.get(interaction_id)
        if task is None:
            return False
        self._reasons[interaction_id] = reason
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def shutdown(self) -> None:
        for interaction_id in list(self._tasks):
            await self.cancel(interaction_id, SHUT_DOWN)
