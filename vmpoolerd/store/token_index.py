"""
The token index built at start-up for what is already running (Note
[Token index] in lua/preamble/vms.lua): VMs checked out before the index
existed, or by a vmpooler sharing the Redis.
"""

from __future__ import annotations

from typing import Sequence

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from .api_store import ApiStore
from .errors import StoreUnavailable

log = Logger()
RETRY = 5.0  # seconds before trying again while Redis does not answer


class TokenIndexBuild(Service):
    """Builds the index once, in bounded steps, retrying while Redis does
    not answer; stopping cancels it.  Idempotent: every API daemon runs it
    at its start, at the same time or not."""

    def __init__(self, store: ApiStore, pools: Sequence[str], clock: IReactorTime) -> None:
        self._store = store
        self._pools = tuple(pools)
        self._clock = clock
        self._running: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self._running = Deferred.fromCoroutine(self._build())

    async def _build(self) -> None:
        while True:
            try:
                calls = await self._store.index_token_vms(self._pools)
            except StoreUnavailable:
                await deferLater(self._clock, RETRY, lambda: None)
                continue
            except CancelledError:
                return
            except Exception:
                log.failure("building the token index failed")
                return
            log.info("token index built: {pools} pools looked at in {calls} steps",
                     pools=len(self._pools), calls=calls)
            return

    def stopService(self) -> None:  # type: ignore[override]
        super().stopService()
        if self._running is not None and not self._running.called:
            self._running.cancel()
            self._running.addErrback(lambda f: f.trap(CancelledError))
