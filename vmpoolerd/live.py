"""
A pool as it is now: its file's settings with what Redis says on top
(Note [Live pool config] in store/lua/config_set.lua): pure.

The config API's overrides win; then, for ``size_policy: demand``, the
size its demand sets (between ``min_size`` and ``size``); then the file.
"""

from __future__ import annotations

import dataclasses

from .config import PoolConfig
from .store.overrides import Live


def live_size(pool: PoolConfig, live: Live) -> int:
    if live.size is not None:
        return live.size
    if pool.size_policy == "demand" and live.demand_size is not None:
        return min(max(live.demand_size, pool.min_size), pool.size)
    return pool.size


def live_pool(pool: PoolConfig, live: Live) -> PoolConfig:
    """``pool`` with its live size, template and clone target."""
    return dataclasses.replace(pool, size=live_size(pool, live),
                               template=live.template or pool.template,
                               clone_target=live.clone_target or pool.clone_target)


def drain_reason(pool: PoolConfig, live: Live) -> str | None:
    """Why the pool's ready and pending VMs are to be replaced; None: they
    are not.  VMs never recorded as cloned from another template were cloned
    from the file's."""
    if live.reset:
        return "pool reset"
    template = live.template or pool.template
    if template != (live.cloned_template or pool.template):
        return f"template changed to {template!r}"
    return None
