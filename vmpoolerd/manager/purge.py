"""
The purge at start (``purge_unconfigured_resources``), per provider as 3.x
reads it (``Config.purge_for``): in each base folder of the provider's pools,
the folders no pool owns are destroyed with what is in them, one log line
each.  The choice is :mod:`vmpoolerd.manager.purge_plan`'s (Note [What the
purge destroys]).
"""

from __future__ import annotations

from typing import Mapping

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.logger import Logger

from ..config import Config, PoolConfig
from ..vsphere.types import Entry, Vsphere
from .purge_plan import PURGE_LIMIT, base_folders, victims

log = Logger()


def purging(config: Config) -> list[str]:
    """The providers to purge: the vCenters whose purge is on (a dummy
    provider's VMs are its own, in memory: nothing to purge)."""
    return [name for name, _ in config.providers if config.purge_for(name).enabled]


async def purge(config: Config, vspheres: Mapping[str, Vsphere]) -> None:
    """Purge every purging provider and datacenter at once (``vspheres``: each
    pool's, by name)."""
    places: dict[tuple[str, str | None], list[PoolConfig]] = {}
    providers = set(purging(config))
    for pool in config.pools:
        if pool.provider in providers:
            places.setdefault((pool.provider, pool.datacenter), []).append(pool)
    await gatherResults([ensureDeferred(_purge_place(config, provider, vspheres[pools[0].name],
                                                     pools))
                         for (provider, _), pools in places.items()], consumeErrors=True)


async def _purge_place(config: Config, provider: str, vsphere: Vsphere,
                       pools: list[PoolConfig]) -> None:
    folders = [pool.folder for pool in config.pools]
    templates = [pool.template for pool in config.pools]
    allowlist = config.purge_for(provider).allowlist
    bases = base_folders(pool.folder for pool in pools)
    chosen: list[Entry] = []
    for base in bases:
        try:
            entries = await vsphere.contents(base)
        except Exception as e:
            log.warn("[!] purge of {provider} {base!r}: not read: {error}", provider=provider,
                     base=base, error=str(e) or type(e).__name__)
            continue
        chosen += victims(base, entries, folders, templates, allowlist)
    if len(chosen) > PURGE_LIMIT:
        log.error("[!] purge of {provider} {bases}: {count} VMs and folders no pool owns, "
                  "more than {limit}: nothing destroyed (a pool's folder renamed? "
                  "see resources_allowlist)", provider=provider, bases=", ".join(map(repr, bases)),
                  count=len(chosen), limit=PURGE_LIMIT)
        return
    for entry in chosen:
        await _destroy(provider, vsphere, entry)


async def _destroy(provider: str, vsphere: Vsphere, entry: Entry) -> None:
    kind = "folder" if entry.folder else "VM"
    try:
        if entry.folder:
            done = await vsphere.remove_folder(entry.path)
        else:
            parent, _, name = entry.path.rpartition("/")
            done = await vsphere.destroy(parent, name)
    except Exception as e:
        log.warn("[!] purge of {provider}: {kind} {path!r} not destroyed: {error}",
                 provider=provider, kind=kind, path=entry.path,
                 error=str(e) or type(e).__name__)
        return
    if done:
        log.info("[-] purge of {provider}: {kind} {path!r} destroyed: no pool owns it",
                 provider=provider, kind=kind, path=entry.path)
    elif entry.folder:
        log.info("[-] purge of {provider}: folder {path!r} kept: not empty",
                 provider=provider, path=entry.path)
