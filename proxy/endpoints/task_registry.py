"""What recall keeps in memory about task runs, beside the store.

- Runs an app asked not to store (`X-Recall-Store: false`): their result must
  still be fetchable, so the node lives here, never on disk, until an hour after
  it finished (or recall stops).
- How many 408s in a row each run's result has had: the SDK's `execute()`
  crashes on a third (spec 0.5), so a third long-poll holds until the run ends.
"""

from __future__ import annotations

import time

from ..model import IN_PROGRESS, Interaction

# How long a finished unstored run stays readable.
_KEEP_S = 3600.0
# Bound on the 408 counters kept for runs whose result was never fetched again.
_MAX_COUNTERS = 10_000


class TaskRegistry:
    def __init__(self) -> None:
        self._unstored: dict[str, Interaction] = {}
        self._timeouts: dict[str, int] = {}

    def keep(self, node: Interaction) -> None:
        """Hold an unstored run's node (by run id); the run updates it in place."""
        cutoff = time.time() - _KEEP_S
        for run_id, held in list(self._unstored.items()):
            if held.status != IN_PROGRESS and held.updated < cutoff:
                del self._unstored[run_id]
        self._unstored[node.run_id or node.id] = node

    def unstored(self, run_id: str) -> Interaction | None:
        return self._unstored.get(run_id)

    def timed_out(self, run_id: str) -> int:
        """Count one more 408 for this run's result; the count so far, this one included."""
        count = self._timeouts.pop(run_id, 0) + 1
        self._timeouts[run_id] = count
        while len(self._timeouts) > _MAX_COUNTERS:
            del self._timeouts[next(iter(self._timeouts))]
        return count

    def delivered(self, run_id: str) -> None:
        """The run's result was answered: the 408 streak is over."""
        self._timeouts.pop(run_id, None)
