"""
What vmpoolerd writes for vmpooler 3.x's readers, beside its own state.

Note [What a 3.x fleet reads]: a 3.x API or dashboard beside vmpoolerd (a
mixed fleet, or a site rolling back) reads

- ``vmpooler__pools`` and each ``vmpooler__pool__<name>``: every pool's
  keys as its file spells them, ``alias`` joined by commas, switches
  ``true``/``false``, and the pool's ``domain``.  3.x's pool manager writes
  them at start; so does vmpoolerd's (:meth:`Published.publish`,
  ``lua/pools_publish.lua``), and a pool no longer configured leaves them.
  A file without ``:pools:`` is read back from them (config/sources.py).
- in each VM's hash, beside the fields of docs/compatibility.rst, "Redis":
  ``pool`` and ``domain`` from the clone's reservation on
  (``lua/clone_reserve.lua``, ``lua/ondemand_reserve.lua``; the domain is
  the one published for the pool), ``pool_alias`` for an on-demand VM (the
  alias its request named the pool by), and ``ip`` once VMware Tools
  report one (when the VM becomes ready; 3.x waits for it after the
  clone).
"""

from __future__ import annotations

import json
from typing import Sequence

from ..config import Config, PoolConfig
from .scripts import Part


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _switch(value: bool) -> str:
    return "true" if value else "false"


def pool_fields(pool: PoolConfig, domain: str | None) -> dict[str, str]:
    """The pool as 3.x keeps it in ``vmpooler__pool__<name>``: the keys its
    file would have (those set), and its ``domain`` when it has one."""
    optional: dict[str, str | None] = {
        "alias": ",".join(pool.alias) or None,
        "pool": pool.resource_pool,
        "clone_target": pool.clone_target,
        "timeout": None if pool.timeout_minutes is None else _number(pool.timeout_minutes),
        "ready_ttl": None if pool.ready_ttl_minutes is None else _number(pool.ready_ttl_minutes),
        "datacenter": pool.datacenter,
        "dns_plugin": pool.dns_plugin,
        "create_linked_clone": None if pool.create_linked_clone is None
        else _switch(pool.create_linked_clone),
        "check_hostname_for_mismatch": None if pool.check_hostname_for_mismatch is None
        else _switch(pool.check_hostname_for_mismatch),
        "domain": domain,
    }
    if pool.size_policy != "static":
        optional.update(size_policy=pool.size_policy, min_size=str(pool.min_size),
                        hit_rate=_number(pool.hit_rate))
    fields = {"name": pool.name, "template": pool.template, "folder": pool.folder,
              "datastore": pool.datastore, "size": str(pool.size), "provider": pool.provider}
    fields.update((k, v) for k, v in optional.items() if v is not None)
    return fields


class Published(Part):
    """``store.published``."""

    async def publish(self, config: Config) -> Sequence[str]:
        """Publish the configured pools (Note [What a 3.x fleet reads]); the
        names of those no longer configured, dropped."""
        pools = {p.name: pool_fields(p, config.domain_for(p.name)) for p in config.pools}
        return list(await self._script("pools_publish", published=json.dumps(pools)))
