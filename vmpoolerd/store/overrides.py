"""
A pool's live config in Redis: the overrides the config API sets (Note
[Live pool config] in ``lua/config_set.lua``), the size its demand sets,
the reset requests, and the drains that obey them (``pool_drain.lua``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from . import keys
from .scripts import Part


@dataclass(frozen=True)
class Live:
    """What Redis says of a pool beside its file: None where nothing is set."""
    size: int | None = None            # the config API's size
    template: str | None = None        # the config API's template
    clone_target: str | None = None    # the config API's clone target
    reset: bool = False                # a reset is asked for
    demand_size: int | None = None     # the size its demand sets (size_policy: demand)
    cloned_template: str | None = None  # the template its VMs were last cloned from


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


class Overrides(Part):
    """``store.overrides``."""

    async def live(self, pools: Sequence[str]) -> dict[str, Live]:
        rows = await self._script("config_read", pools=pools) if pools else []
        return {pool: Live(_int(size), template or None, target or None, bool(reset),
                           _int(demand), cloned or None)
                for pool, (size, template, target, reset, demand, cloned) in zip(pools, rows)}

    async def set(self, kind: str, values: Mapping[str, tuple[str, str]]) -> list[str]:
        """Override ``kind`` (a key of keys.OVERRIDES) of each pool with its
        new value (pool -> (value, its value when not overridden)); the
        pools whose live value changed."""
        settings = [part for pool, (value, default) in values.items()
                    for part in (pool, value, default)]
        return list(await self._script("config_set", kind=kind, settings=settings))

    async def unset(self, kind: str, pool: str) -> bool:
        """Delete the pool's override of ``kind``; whether there was one."""
        return bool(await self._script("config_unset", kind=kind, pool=pool,
                                       undo_set=keys.OVERRIDES[kind]))

    async def ask_reset(self, pools: Sequence[str]) -> None:
        await self._call(self._redis.execute_command("SADD", keys.POOL_RESET, *pools))

    async def drain(self, pool: str, seen: str | None, template: str, reset: bool) -> int:
        """The pool's ready and pending VMs -> completed, recording
        ``template`` as the one its VMs are cloned from; -1 when another
        daemon drained first (Note [Draining once] in pool_drain.lua)."""
        return int(await self._script("pool_drain", pool=pool, seen=seen or "",
                                      template=template, reset="1" if reset else ""))
