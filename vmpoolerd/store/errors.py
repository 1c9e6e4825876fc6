"""
What the store raises, in the domain's words.  The API maps each to an
HTTP status in one place (``vmpoolerd.api.errors``); the store knows
nothing of HTTP.
"""

from __future__ import annotations

from enum import IntEnum


class VmChange(IntEnum):
    """What the scripts that change a VM answer (vm_update, vm_return,
    queue_task): done, or why nothing changed.  The scripts return them as
    ``R.<name>`` (prelude.py), so that both languages read one table."""

    DONE = 1
    NO_SUCH_VM = 0
    NO_SUCH_SNAPSHOT = -1
    OTHER_OWNER = -2
    NOT_RUNNING = -3
    TOO_MANY_TAGS = -4
    TOO_MANY_TASKS = -5


class StoreUnavailable(Exception):
    """Redis did not answer in time, is not connected, or is busy."""


class LeaseLost(Exception):
    """The manager no longer holds the pool's lease: it changed nothing
    (Note [Pool leases] in manager/leases.py)."""


class StoreRefusal(Exception):
    """A change the store refused because of the data it found."""


class NoSuchVm(StoreRefusal):
    """Redis knows no such VM (or not in the state the change needs)."""


class NotRunning(NoSuchVm):
    """The VM is not checked out, so it cannot be handed back."""


class NoSuchSnapshot(StoreRefusal):
    """The VM has no snapshot of that name."""


class OtherOwner(StoreRefusal):
    """The VM was checked out with another user's token (Note [Owner checks])."""


class NoSuchToken(StoreRefusal):
    """Redis knows no such token."""


class OtherUsersToken(StoreRefusal):
    """The token belongs to another user."""


class NotEnoughVms(StoreRefusal):
    """The ready pools cannot meet the whole checkout (then nothing moved)."""


class TooManyTags(StoreRefusal):
    """The change would leave the VM with more tags than it may hold."""


class TooManyTasks(StoreRefusal):
    """Too many disk or snapshot requests are waiting, for the VM or in all."""
