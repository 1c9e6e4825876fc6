"""
Which pools this manager maintains: its lease timer.

Note [Pool leases]: any number of managers may share one Redis; each pool
is maintained by one of them at a time, the holder of its lease
(``vmpooler__lease__<pool>``: the manager's id, for LEASE seconds).  A
timer of its own, every RENEW seconds and never held up by a pool's cycle
(which may back off to a minute), renews what the manager holds, gives
back what it holds beyond its share (its pools divided by the managers
alive, the remainder one each to the first by id) and takes free pools up
to that share, all in one script (``lua/lease_round.lua``).  So managers spread the pools between
them, one that joins gets its share within two rounds, and a killed
manager's pools are free within LEASE seconds and taken within RENEW
more.  A manager that stops gives its leases back at once.

Every write a maintainer makes in a cycle runs in a script that first
checks the lease (``lua/preamble/lease.lua``, :meth:`Scripts.fenced_by
<vmpoolerd.store.scripts.Scripts.fenced_by>`): a manager that paused past
its lease (a stuck thread, a network split) changes nothing, and stops
that pool's maintainer when told so (``LeaseLost``).  The manager also
stops its maintainers by itself once its last renewal is LEASE seconds
old, before the lease can pass to another.

The same timer renews the reservations of the manager's clones in flight
(Note [Clone reservations] in ``lua/clone_reserve.lua``) to RESERVATION
seconds: a killed manager's clones free their slots within that.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Callable, Iterable, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..store.leases import PoolLeases

log = Logger()

LEASE = 10.0  # seconds a pool's lease lasts unrenewed (docs/compatibility.rst promises at most 15)
RENEW = 2.0  # seconds between the timer's rounds
RESERVATION = 15.0  # seconds a clone's reservation lasts unrenewed


def manager_id() -> str:
    """This manager's id: its host, its process, and a random part (a
    restarted manager is another, even with the same pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leases:
    """
    The lease timer of the manager ``identity`` serving ``pools``; calls
    ``changed`` with the pools it holds whenever they change.
    ``reserved`` answers the names of its clones in flight.

    ``clock`` runs the rounds and dates the reservations (the maintainers'
    clock); ``redis_time``, by default the same, times how long the
    leases last, as Redis does (in real seconds): a benchmark that speeds
    the maintainers' clock up must not speed up the leases' end.
    """

    def __init__(self, identity: str, pools: Sequence[str], store: PoolLeases,
                 clock: IReactorTime, reserved: Callable[[], Iterable[str]],
                 changed: Callable[[frozenset[str]], None],
                 redis_time: IReactorTime | None = None) -> None:
        self.identity = identity
        self._pools = list(pools)
        self._store = store
        self._clock = clock
        self._redis_time = redis_time or clock
        self._reserved = reserved
        self._changed = changed
        self._loop = LoopingCall(self._round)
        self._loop.clock = clock
        self._expiry: IDelayedCall | None = None
        self._failing: str | None = None  # why the last round failed
        self.maintained: frozenset[str] = frozenset()
        self.rounds = 0

    def start(self) -> None:
        self._loop.start(RENEW, now=True)

    def _round(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._attempt())

    async def _attempt(self) -> None:
        sent = self._redis_time.seconds()
        try:
            leased = await self._store.round(
                self.identity, self._pools, LEASE, sorted(self._reserved()),
                self._clock.seconds() + RESERVATION)
        except Exception as e:
            if self._failing is None:
                log.warn("[!] pool leases not renewed: {error}", error=str(e) or type(e).__name__)
            self._failing = str(e) or type(e).__name__
            return
        self.rounds += 1
        if self._failing is not None:
            log.info("pool leases renewed again")
            self._failing = None
        # Redis started the leases after ``sent``: they cannot run out
        # before this does.
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = self._redis_time.callLater(
            max(sent + LEASE - self._redis_time.seconds(), 0), self._expire)
        self._maintain(leased)

    def trouble(self) -> str | None:
        """For the health check: why the leases are not being renewed."""
        if self._failing is None:
            return None
        held = ", ".join(sorted(self.maintained)) or "none"
        return f"pool leases not renewed ({self._failing}); pools still maintained: {held}"

    def _expire(self) -> None:
        """No renewal for LEASE seconds: another manager may now hold them."""
        self._expiry = None
        if self.maintained:
            log.warn("[!] pool leases not renewed for {seconds:g} s: maintaining none of "
                     "{pools} until they are", seconds=LEASE,
                     pools=", ".join(sorted(self.maintained)))
        self._maintain(frozenset())

    def _maintain(self, leased: frozenset[str]) -> None:
        if leased == self.maintained:
            return
        for pool in sorted(leased - self.maintained):
            log.info("[{pool}] lease taken by {manager}", pool=pool, manager=self.identity)
        for pool in sorted(self.maintained - leased):
            log.info("[{pool}] lease given up by {manager}", pool=pool, manager=self.identity)
        self.maintained = leased
        self._changed(leased)

    def lost(self, pool: str) -> None:
        """A write found ``pool``'s lease held by another (or by none)."""
        self._maintain(self.maintained - {pool})

    async def release(self) -> None:
        """Hold nothing more, and say so in Redis at once; the timer goes on
        renewing the clones' reservations until :meth:`stop`."""
        pools, self._pools = self._pools, []
        self._maintain(frozenset())
        try:
            await self._store.release(self.identity, pools)
        except Exception as e:
            log.warn("[!] pool leases not given back (they run out in {seconds:g} s): "
                     "{error}", seconds=LEASE, error=str(e) or type(e).__name__)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
