"""
What the pool manager reads from Redis, as small typed records.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackedVm:
    """A VM as Redis knows it: its set, and the times in its hash (epoch s)."""

    name: str
    state: str  # one of STATES
    clone_time: float | None = None  # the pending entry was made ("clone")
    checkout: float | None = None  # "checkout"
    lifetime_hours: float | None = None  # "lifetime"; None: the service's
    last_check: float | None = None  # last passed readiness check ("check")
    ready_since: float | None = None  # became ready ("ready")
    # "checkout" and "lifetime" as read ('' when absent): the expiry move
    # is made only if they are still so (Note [Lifetimes re-checked] in
    # lua/move.lua); None: not read from Redis (a test's record).
    lifetime_fields: tuple[str, str] | None = None


@dataclass(frozen=True)
class TaskRequest:
    """A queued disk or snapshot request (``vmpooler__tasks__<kind>``).

    ``argument`` is the disk size in GB or the snapshot's name; ``pool`` is
    the VM's pool, "" when Redis does not know the VM."""

    kind: str  # "disk", "snapshot" or "snapshot-revert"
    host: str
    argument: str
    pool: str
