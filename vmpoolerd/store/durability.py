"""
Whether Redis keeps what it acknowledged: its persistence, checked at
start.

Note [Durable checkouts]: a checkout is answered once Redis has run its
script.  If Redis then restarts without having written that to disk, it
comes back without the checkout: the VM is ready again and may be handed
out a second time (see Note [Redis generations] in generation.py for how
the daemon notices such a Redis).  Only ``appendonly yes`` with
``appendfsync always`` keeps every acknowledged write; ``everysec`` loses up
to a second of them if the machine fails, and snapshots (``save``) alone
lose everything since the last one.  The daemon warns, naming the setting;
it does not refuse to start, so that a vmpooler site can switch with its
Redis as it is (README, "Running Redis").
"""

from __future__ import annotations

from dataclasses import dataclass

import txredisapi
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .scripts import Scripts

log = Logger()
RETRY = 10.0  # seconds between attempts while Redis does not answer


@dataclass(frozen=True)
class Persistence:
    """Redis's settings; ``None`` where Redis would not say (CONFIG refused)."""

    appendonly: str | None
    appendfsync: str | None


def risks(p: Persistence) -> list[str]:
    """What a Redis so set may lose of acknowledged checkouts; [] if nothing."""
    if p.appendonly is None:
        return ["Redis refused CONFIG GET, so whether it keeps acknowledged checkouts "
                "across a restart is unknown: it should run with appendonly yes and "
                "appendfsync always"]
    if p.appendonly != "yes":
        return ["Redis runs with appendonly no: a restart loses every checkout since its "
                "last snapshot, and those VMs may be handed out again; set appendonly yes "
                "and appendfsync always"]
    if p.appendfsync != "always":
        return [f"Redis runs with appendfsync {p.appendfsync}: a crash of its machine can "
                "lose the last second of acknowledged checkouts; set appendfsync always"]
    return []


class PersistenceStore(Scripts):
    async def persistence(self) -> Persistence:
        found: dict[str, str | None] = {"appendonly": None, "appendfsync": None}
        for name in found:
            try:
                answer = await self._call(self._redis.execute_command("CONFIG", "GET", name))
            except txredisapi.ResponseError:  # CONFIG renamed away or refused: unknown
                continue
            if answer:
                found[name] = str(answer[1])
        return Persistence(**found)


class PersistenceCheck(Service):
    """Logs the persistence risks once Redis answers (retrying until it does)."""

    def __init__(self, store: PersistenceStore, clock: IReactorTime) -> None:
        self._store = store
        self._loop = LoopingCall(self._check)
        self._loop.clock = clock
        self.found: Persistence | None = None

    def startService(self) -> None:
        super().startService()
        self._loop.start(RETRY, now=True).addErrback(
            lambda f: log.failure("[!] checking Redis's persistence failed", f))

    async def _attempt(self) -> None:
        try:
            self.found = await self._store.persistence()
        except Exception as e:
            log.info("Redis's persistence not checked yet: {error}", error=str(e))
            return
        self._loop.stop()
        for risk in risks(self.found):
            log.warn("[!] {risk}", risk=risk)

    def _check(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._attempt())

    def stopService(self) -> None:  # type: ignore[override]
        super().stopService()
        if self._loop.running:
            self._loop.stop()
