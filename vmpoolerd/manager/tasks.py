"""
The disk and snapshot requests the API queues in Redis, worked off by the
manager: one request at a time per kind, each holding one of the slots
destroys use too (see :func:`vmpoolerd.manager.service.provider_threads`).
"""

from __future__ import annotations

from typing import Mapping

from twisted.internet.defer import CancelledError, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..config import Config
from ..store.pools import PoolStore
from ..store.records import TaskRequest
from ..timefmt import format_time
from ..vsphere.types import Vsphere

log = Logger()
# Seconds after which a request in progress is taken for a dead daemon's and
# queued again (Note [Requests in progress] in task_pop.lua): longer than
# any vSphere call may last (the provider's call timeout, 15 minutes).
TASK_LEASE = 1800.0


class TaskWorker:
    """Works off the disk and snapshot requests the API queued."""

    KINDS = ("disk", "snapshot", "snapshot-revert")

    def __init__(self, config: Config, store: PoolStore, vspheres: Mapping[str, Vsphere],
                 clock: IReactorTime, slots: DeferredSemaphore) -> None:
        self._config = config
        self._store = store
        self._vspheres = vspheres  # each pool's, by pool name
        self._clock = clock
        self._slots = slots
        self.stopping = False

    async def run_once(self) -> int:
        """Take the queued requests and do them, until none is left or we stop."""
        done = 0
        for kind in self.KINDS:
            while not self.stopping and (request := await self._store.pop_task(
                    kind, self._clock.seconds(), TASK_LEASE)):
                if await self._slots.run(lambda: ensureDeferred(self._do(request))):
                    done += 1
                await self._store.task_done(request)
        return done

    async def _do(self, request: TaskRequest) -> bool:
        kind, host, argument = request.kind, request.host, request.argument
        if request.pool not in self._config.pool_names:
            log.warn("[!] {kind} request for unknown VM '{vm}' dropped", kind=kind, vm=host)
            return False
        folder = self._config.pool(request.pool).folder
        vsphere = self._vspheres[request.pool]
        where = "vSphere"
        try:
            if kind == "disk":
                await vsphere.add_disk(folder, host, int(argument))
                where = "Redis, vSphere having done it"
                await self._store.record_disk(host, f"+{int(argument)}gb")
            elif kind == "snapshot":
                await vsphere.create_snapshot(folder, host, argument)
                where = "Redis, vSphere having done it"
                await self._store.record_snapshot(
                    host, argument, format_time(self._clock.seconds()))
            else:
                await vsphere.revert_snapshot(folder, host, argument)
        except CancelledError:
            raise  # given up on stopping: it stays in progress, to be taken again
        except Exception as e:
            log.warn("[!] [{pool}] '{vm}' {kind} {argument} failed in {where}: {error}",
                     pool=request.pool, vm=host, kind=kind, argument=argument, where=where,
                     error=str(e) or type(e).__name__)
            return False
        log.info("[+] [{pool}] '{vm}' {kind} {argument} done", pool=request.pool, vm=host,
                 kind=kind, argument=argument)
        return True
