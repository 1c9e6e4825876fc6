"""
The maintainers' side of Note [Redis generations] (store/generation.py).

Note [Ending a doubt]: each maintainer checks Redis's generation in each
cycle (asked first, answered while the folder is read, so before the
cycle reads its pool's VMs in Redis), and while Redis is in doubt holds
the discovered VMs of its pool (Note [Held discovered VMs] in
pool_plan.py).  The doubt's only
effect is on those VMs; so when, in one pass over every pool, no pool
holds any VM (every folder holds only what Redis knows: a new site, or a
Redis that lost nothing that still exists), nothing can be lost and the
doubt ends by itself.  Otherwise an operator ends it
(``python -m vmpoolerd.adopt``).
"""

from __future__ import annotations

from typing import Sequence

from twisted.logger import Logger

from ..store.generation import GenerationStore, GenerationWatch

log = Logger()


class Doubts:
    """Shared by one daemon's maintainers."""

    def __init__(self, watch: GenerationWatch, store: GenerationStore,
                 pools: Sequence[str]) -> None:
        self._watch = watch
        self._store = store
        self._pools = frozenset(pools)
        self._clear: set[str] = set()  # pools that held nothing since the last holding

    async def check(self) -> str | None:
        """Why Redis is in doubt now; None if it is trusted."""
        return (await self._watch.check()).doubt

    async def report(self, pool: str, doubt: str | None, held: int) -> None:
        """A cycle of *pool* planned under *doubt*, holding *held* VMs."""
        if doubt is None:
            self._clear.clear()
            return
        if held:
            self._clear.discard(pool)
            return
        self._clear.add(pool)
        if self._clear >= self._pools:
            self._clear.clear()
            await self._store.release_held()
            log.info("Redis's state is proven: no pool folder holds a VM it does not know "
                     "(was in doubt: {doubt})", doubt=doubt)
