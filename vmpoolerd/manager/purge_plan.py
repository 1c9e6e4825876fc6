"""
The purge's choices (``purge_unconfigured_resources``), pure: which folders
it looks in, and what in them it destroys.  :mod:`vmpoolerd.manager.purge`
reads vSphere and does it, per provider (``Config.purge_for``).

Note [What the purge destroys]: vmpooler 3.x's scope, and no more.  For each
pool folder ``A/B/pool`` the *base folder* is ``A/B``.  In a base folder the
purge looks only at the *folders* directly in it; a folder whose name is
neither the last part of a pool folder in that base nor on the allowlist is
destroyed, with everything in it (its VMs first, then its folders, deepest
first, each only once empty).  So:

- VMs lying directly in a base folder are never touched, nor is anything
  outside the base folders;
- a pool folder at the top (``pool``) makes no base: the datacenter's VM
  folder is never purged (3.x would look there; vmpoolerd does not);
- a folder on the way to a pool folder (``Pools/nested`` for
  ``Pools/nested/centos-7``) is spared whole; ``Pools/nested`` is a base
  folder of its own, looked at on its own.

Whatever the scope, some things are never destroyed, at any depth (3.x
checks its allowlist on the top folders' names only):

- what the allowlist names, by name or by path, what is under it, and the
  folders on the way to it (which are then kept, not being empty);
- the templates: VMs marked as template, the pools' templates, and the
  folders on the way to one;
- the pool folders and what is under them.

A pool folder counts wherever its pool is (any provider, any datacenter):
sparing more than 3.x is the safe side.  More than :data:`PURGE_LIMIT`
victims in one purge (a provider's datacenter, all its base folders) is
taken for a mistake, and nothing is destroyed.
"""

from __future__ import annotations

from typing import Iterable

from ..vsphere.types import Entry

#: More victims than this in one purge of a provider's datacenter is taken for a
#: mistake (a pool's folder renamed, a wrong parent): nothing is destroyed, and
#: it is logged.
PURGE_LIMIT = 100


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _path(path: str) -> str:
    return "/".join(_parts(path))


def _parent(path: str) -> str:
    return _path(path).rpartition("/")[0]


def _ancestors(path: str) -> set[str]:
    parts = _parts(path)
    return {"/".join(parts[:i]) for i in range(1, len(parts))}


def _named(path: str, allowed: set[str]) -> bool:
    """Whether the allowlist names ``path`` or a folder above it, by name or by path."""
    parts = _parts(path)
    return any(part in allowed for part in parts) or any(
        "/".join(parts[:i]) in allowed for i in range(1, len(parts) + 1))


def base_folders(folders: Iterable[str]) -> list[str]:
    """The base folders of these pool folders (their parents; never the top), sorted."""
    return sorted({_parent(folder) for folder in folders} - {""})


def victims(base: str, entries: Iterable[Entry], folders: Iterable[str],
            templates: Iterable[str], allowlist: Iterable[str]) -> list[Entry]:
    """
    What to destroy in the base folder ``base`` (Note [What the purge
    destroys]), ``entries`` being what is under it at any depth: VMs by
    path, then folders, deepest first.
    """
    base = _path(base)
    owned = {_path(f) for f in folders}
    allowed = set(allowlist)
    entries = list(entries)
    kept = owned | {_path(t) for t in templates} | {
        e.path for e in entries if e.template or _named(e.path, allowed)}
    on_the_way = set().union(*(_ancestors(p) for p in kept))
    on_the_way_to_a_pool = set().union(*(_ancestors(p) for p in owned))
    doomed = {e.path for e in entries
              if e.folder and _parent(e.path) == base
              and e.path not in owned and e.path not in on_the_way_to_a_pool}

    def chosen(entry: Entry) -> bool:
        path = entry.path
        inside = path in doomed or any(path.startswith(f"{top}/") for top in doomed)
        spared = (path in kept or path in on_the_way
                  or any(path.startswith(f"{root}/") for root in kept))
        return inside and not spared

    picked = [e for e in entries if chosen(e)]
    vms = sorted((e for e in picked if not e.folder), key=lambda e: e.path)
    folders_ = sorted((e for e in picked if e.folder),
                      key=lambda e: (-len(_parts(e.path)), e.path))
    return vms + folders_
