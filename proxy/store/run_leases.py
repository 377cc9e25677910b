"""Leases on in-progress nodes (migration m009_run_leases): which recall runs a turn still.

A node saved in progress names the process that runs it (`run_owner`, host:pid:tag)
and a moment until which that process vouches for it (`lease_until`), renewed on a
heartbeat. A node whose lease ran out, or whose process on this machine has ended,
can never finish: it is failed, so that its GET does not say in_progress forever.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid

from ..model import FAILED, IN_PROGRESS

# How long a running recall vouches for its in-progress nodes, and how often it renews that.
RUN_LEASE_S = 30.0
HEARTBEAT_S = RUN_LEASE_S / 3

_INTERRUPTED = "recall stopped while this interaction was in progress"
# Ends an in-progress node as failed, lease and all (status, error, updated_at, then a WHERE).
_FAIL_RUNNING = ("UPDATE interactions SET status = ?, error = ?, updated_at = ?, run_owner = NULL, lease_until = NULL"
                 " WHERE status = ?")


def new_instance() -> str:
    """This process's name on the in-progress nodes it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def ended_here(owner: str) -> bool:
    """Whether a run owner (host:pid:tag) was a process of this machine that no longer runs."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's recall: its lease decides
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user holds that pid: alive
    return False


def fail_interrupted(db: sqlite3.Connection, instance: str) -> int:
    """Fail the nodes left in progress by a recall that is gone: its lease ran out, or it was a
    process of this machine that has ended (lease or not). `instance`'s own nodes are kept."""
    now = time.time()
    leased = [row[0] for row in db.execute(
        "SELECT DISTINCT run_owner FROM interactions WHERE status = ? AND lease_until >= ?", (IN_PROGRESS, now))]
    gone = [owner for owner in leased if owner != instance and ended_here(owner)]
    marks = ",".join("?" * len(gone))
    return db.execute(
        f"{_FAIL_RUNNING} AND (lease_until IS NULL OR lease_until < ? OR run_owner IN ({marks}))",
        (FAILED, _INTERRUPTED, now, IN_PROGRESS, now, *gone),
    ).rowcount


def fail_running(db: sqlite3.Connection, reasons: dict[str, str]) -> None:
    """Fail these in-progress nodes (id -> why)."""
    db.executemany(f"{_FAIL_RUNNING} AND id = ?",
                   [(FAILED, why, time.time(), IN_PROGRESS, interaction_id) for interaction_id, why in reasons.items()])


def renew_leases(db: sqlite3.Connection, instance: str) -> None:
    db.execute("UPDATE interactions SET lease_until = ? WHERE run_owner = ? AND status = ?",
               (time.time() + RUN_LEASE_S, instance, IN_PROGRESS))
