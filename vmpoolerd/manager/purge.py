"""
The purge at start (``purge_unconfigured_resources``): in each vCenter and
datacenter the pools use, what no pool owns in their folders' parents is
destroyed, one log line each.  The choice is :mod:`vmpoolerd.manager.purge_plan`'s
(Note [What the purge spares]).
"""

from __future__ import annotations

from typing import Mapping

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.logger import Logger

from ..config import Config, PoolConfig
from ..vsphere.types import Vsphere
from .purge_plan import PURGE_LIMIT, purge_roots, victims

log = Logger()


async def purge(config: Config, vspheres: Mapping[str, Vsphere]) -> None:
    """Purge every vCenter and datacenter at once (``vspheres``: each pool's, by name)."""
    places: dict[tuple[str, str | None], list[PoolConfig]] = {}
    for pool in config.pools:
        places.setdefault((pool.provider, pool.datacenter), []).append(pool)
    await gatherResults([ensureDeferred(_purge_place(config, provider, vspheres[pools[0].name],
                                                     pools))
                         for (provider, _), pools in places.items()], consumeErrors=True)


async def _purge_place(config: Config, provider: str, vsphere: Vsphere,
                       pools: list[PoolConfig]) -> None:
    folders = [pool.folder for pool in config.pools]
    templates = [pool.template for pool in config.pools]
    allowlist = config.service.resources_allowlist
    for root in purge_roots(pool.folder for pool in pools):
        try:
            entries = await vsphere.contents(root)
        except Exception as e:
            log.warn("[!] purge of {provider} {root!r}: not read: {error}", provider=provider,
                     root=root, error=str(e) or type(e).__name__)
            continue
        chosen = victims(entries, folders, templates, allowlist)
        if len(chosen) > PURGE_LIMIT:
            log.error("[!] purge of {provider} {root!r}: {count} VMs and folders no pool owns, "
                      "more than {limit}: nothing destroyed (a pool's folder renamed? "
                      "see resources_allowlist)", provider=provider, root=root,
                      count=len(chosen), limit=PURGE_LIMIT)
            continue
        for entry in chosen:
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
                continue
            if done:
                log.info("[-] purge of {provider}: {kind} {path!r} destroyed: no pool owns it",
                         provider=provider, kind=kind, path=entry.path)
            elif entry.folder:
                log.info("[-] purge of {provider}: folder {path!r} kept: not empty",
                         provider=provider, path=entry.path)
