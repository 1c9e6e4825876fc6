"""
Whether Redis is the one the daemon wrote to, and what to do when not.

Note [Redis generations]: a Redis that restarts without its data, is
flushed, is restored from an older snapshot, or is replaced by a replica
that missed writes, no longer says where the VMs are.  A pool manager that
trusted it would take every VM of its folders for a stranger and destroy
it, checked-out ones included; a checkout would hand out again a VM that
was handed out since the snapshot.  So Redis holds a marker,
``vmpooler__generation`` (a random id and a count), and every daemon
remembers the id and the count it last saw.  Each check (lua/generation.lua,
at the start of every maintenance cycle and every few seconds besides)
raises the count.  Redis is in doubt when:

- the marker is gone although the daemon saw it (lost data);
- the marker's id is another (another Redis);
- the count is not above the one the daemon saw (rolled back);
- at the daemon's first check, there is no marker and no pool state at
  all (new, or emptied while no daemon ran).  A Redis with pools and no
  marker, as vmpooler leaves it, is trusted and marked.

The doubt is kept in Redis (``vmpooler__doubtful``, the reason), so that
every daemon and every restart sees it, until an operator acts.  While it
lasts, no maintainer destroys a discovered VM; on a rollback (the marker
gone, another, or its count not above the one seen: whatever pool state is
there is older than what the daemon saw), the ready and pending VMs, which
may have been handed out since, are moved to discovered at once, so that no
checkout hands them out (Note [A marker gone is a rollback] in
lua/generation.lua).  ``python -m vmpoolerd.adopt``
ends the doubt: the VMs held in discovered become running (checked out to
the owner their hash still names, else to nobody; reclaimed after their
lifetime), or, with ``--release``, are left
to be destroyed (README, "When Redis loses data").

A daemon that restarts together with a rolled-back Redis has no memory to
compare with: only Redis's own persistence guards that case (Note [Durable
checkouts] in durability.py).
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from typing import Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from . import keys
from .errors import StoreUnavailable
from .scripts import Scripts

log = Logger()
EVERY = 2.0  # seconds between checks, besides those of the maintenance cycles


@dataclass(frozen=True)
class Generation:
    """The marker as this daemon last saw it, and the doubt then."""

    id: str = ""
    count: int = 0
    doubt: str | None = None


class GenerationStore(Scripts):
    async def check(self, seen: Generation, pools: Sequence[str]) -> Generation:
        """Check Redis against what the daemon saw (lua/generation.lua); the
        marker as it is now, and the doubt, if any.  A marker no replica
        has yet is not taken as seen (Note [Replicated answers] in
        scripts.py): were the master to die, the replica promoted would
        otherwise look rolled back."""
        for with_pools in (0, 1):  # Note [Generations without the pools] in generation.lua
            (marker, count, doubt, *ask), replicated = await self._replicated(
                "generation", known_id=seen.id, known_n=seen.count,
                new_id=secrets.token_hex(8), with_pools=with_pools,
                pools=pools if with_pools else ())
            if not ask:
                break
        if not replicated:
            return dataclasses.replace(seen, doubt=str(doubt) or None)
        return Generation(str(marker), int(count), str(doubt) or None)

    async def doubt(self) -> str | None:
        """Why Redis's state is in doubt, if it is."""
        reason = await self._call(self._redis.execute_command("GET", keys.DOUBTFUL))
        return str(reason) if reason else None

    async def adopt(self, pools: Sequence[str], now: str) -> int:
        """End the doubt; the VMs held in discovered become running (lua/adopt.lua)."""
        return int(await self._script("adopt", now=now, pools=pools))

    async def release_held(self) -> None:
        """End the doubt; the VMs held in discovered are destroyed, a few per cycle."""
        await self._call(self._redis.execute_command("DEL", keys.DOUBTFUL))


class GenerationWatch:
    """
    One daemon's memory of the marker, shared by its maintainers and its
    API: ``check()`` compares Redis with it and remembers the answer.
    """

    def __init__(self, store: GenerationStore, pools: Sequence[str]) -> None:
        self._store = store
        self._pools = tuple(pools)
        self.seen = Generation()
        self._rechecking: Deferred[None] | None = None

    async def check(self) -> Generation:
        # Always what Redis answered last, even below what was seen before:
        # a rollback is acted on once (its doubt stays in Redis), and counts
        # only grow, so an overlapping check's older answer raises no doubt.
        self.seen = await self._store.check(self.seen, self._pools)
        return self.seen

    @property
    def doubt(self) -> str | None:
        return self.seen.doubt

    def saw(self, count: int) -> None:
        """A checkout raised the count to *count* (Note [Checkouts and
        generations] in checkout.lua)."""
        if count > self.seen.count:
            self.seen = dataclasses.replace(self.seen, count=count)

    def recheck(self) -> None:
        """Check now, in the background (a checkout found Redis changed)."""
        if self._rechecking is None:
            running = Deferred.fromCoroutine(self._recheck())
            if not running.called:
                self._rechecking = running

    async def _recheck(self) -> None:
        try:
            await self.check()
        except Exception:
            log.failure("checking Redis's generation failed")
        finally:
            self._rechecking = None


class GenerationCheck(Service):
    """
    Checks Redis every EVERY seconds (the maintainers check it at each
    cycle too), and logs when a doubt begins, changes or ends.
    """

    def __init__(self, watch: GenerationWatch, clock: IReactorTime, every: float = EVERY
                 ) -> None:
        self.watch = watch
        self._every = every
        self._loop = LoopingCall(self._check)
        self._loop.clock = clock
        self._logged: str | None = None

    def startService(self) -> None:
        super().startService()
        self._loop.start(self._every, now=True)

    def _check(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self.check())

    async def check(self) -> None:
        try:
            doubt = (await self.watch.check()).doubt
        except StoreUnavailable:
            return  # the connection reports Redis's absence itself
        except Exception:
            log.failure("checking Redis's generation failed")
            return
        if doubt != self._logged:
            if doubt:
                log.warn("[!] Redis's state is in doubt: {doubt}. Discovered VMs are held, "
                         "not destroyed, until an operator runs python -m vmpoolerd.adopt "
                         "(README, \"When Redis loses data\")", doubt=doubt)
            else:
                log.info("Redis's state is no longer in doubt")
            self._logged = doubt

    def stopService(self) -> None:  # type: ignore[override]
        super().stopService()
        if self._loop.running:
            self._loop.stop()
