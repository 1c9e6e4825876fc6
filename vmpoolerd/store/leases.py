"""
The managers' side of Redis for pool leases and clone reservations
(``lua/lease_round.lua``, ``lease_release.lua``; Note [Pool leases] in
``manager/leases.py``).
"""

from __future__ import annotations

from typing import Sequence

from .scripts import Part


class PoolLeases(Part):
    """``store.leases``."""

    async def round(self, identity: str, pools: Sequence[str], lease: float,
                          reserved: Sequence[str], deadline: float) -> frozenset[str]:
        """The pools ``identity`` holds for ``lease`` seconds more, after
        renewing the reservations of its clones ``reserved`` to
        ``deadline`` (see lease_round.lua)."""
        held: frozenset[str] = await self._script(
            "lease_round", id=identity, ttl=int(lease * 1000), deadline=int(deadline),
            pools=pools, reserved=reserved)
        return held

    async def release(self, identity: str, pools: Sequence[str]) -> None:
        await self._script("lease_release", id=identity, pools=pools)
