"""
What a planner is shown, looked at the same way for a pool (maintainer.py)
and for an on-demand request (ondemand.py): the inventory, the clones in
flight read around it, and the readiness probes.

Note [Clones around the inventory]: vSphere is read first and Redis
second, so that a clone recorded and made between the two looks is not
taken for a stranger (discovered).  The clones in flight are read on both
sides of the inventory, so that one that ends between the two looks,
absent from the inventory but no longer in flight, is not taken for a lost
clone (Note [Judging a pending VM] in pending_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, Mapping, TypeVar

from twisted.internet.interfaces import IReactorTime

from ..config import ServiceConfig
from ..store.pools import PoolStore
from ..vsphere.types import VmState
from .failures import VmFailure
from .probe import Probe, probe_all

T = TypeVar("T")


@dataclass(frozen=True)
class Seen(Generic[T]):
    now: float                        # when Redis was read
    inventory: Mapping[str, VmState]  # by VM name
    cloning: frozenset[str]           # in flight before or after the inventory
    redis: T                          # what else the caller read with the clones


async def around_inventory(
        store: PoolStore, clock: IReactorTime, in_flight: Callable[[], frozenset[str]],
        inventory: Callable[[], Awaitable[Mapping[str, VmState] | None]],
        redis: Callable[[float], Awaitable[tuple[frozenset[str], T]]]) -> Seen[T] | None:
    """
    The inventory (None when it could not be read: the caller has said
    why), then Redis: ``redis`` gives the clones in flight with whatever
    else the caller reads (Note [Clones around the inventory]).
    ``in_flight`` names this daemon's own clones, known before Redis is.
    """
    busy_before = in_flight()
    cloning_before = await store.cloning(clock.seconds())
    vms = await inventory()
    if vms is None:
        return None
    now = clock.seconds()
    cloning, state = await redis(now)
    return Seen(now, vms, cloning | cloning_before | busy_before | in_flight(), state)


@dataclass(frozen=True)
class Probed:
    reachable: frozenset[str]         # probed and open
    unknown: frozenset[str]           # could not say (Note [Unknown probes] in pool_plan.py)
    failed: Mapping[str, VmFailure]   # why not, for the others


async def probe(names: frozenset[str], inventory: Mapping[str, VmState],
                service: ServiceConfig, probe: Probe) -> Probed:
    """The readiness probes of ``names``, all at once."""
    results = await probe_all(names, inventory, service, probe)
    return Probed(frozenset(n for n, ok in results.items() if ok is True),
                  frozenset(n for n, ok in results.items() if ok is None),
                  {n: ok for n, ok in results.items() if isinstance(ok, VmFailure)})
