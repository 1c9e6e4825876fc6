"""
The purge's choices (``purge_unconfigured_resources``), pure: which folders
it looks in, and what in them no pool owns.  :mod:`vmpoolerd.manager.purge`
reads vSphere and does it.

Note [What the purge spares]: it looks only in the parents of the pools'
folders (never in the datacenter's VM folder itself: a pool folder at the top
makes no parent to purge), and there it spares

- the pools' folders, what is under them, and the folders on the way to one
  (``Pools/nested`` for ``Pools/nested/centos-7``);
- the templates: VMs marked as template, the pools' templates, and the
  folders on the way to one;
- what ``resources_allowlist`` names, by name or by path, and what is under
  a folder it names.

Everything else is destroyed: VMs first, then folders, deepest first, each
only when empty by then.  Pools on any vCenter count: a folder that some pool
uses anywhere is spared everywhere.
"""

from __future__ import annotations

from typing import Iterable

from ..vsphere.types import Entry

#: More victims than this in one folder is taken for a mistake (a pool's
#: folder renamed, a wrong parent): nothing is destroyed, and it is logged.
PURGE_LIMIT = 100


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _path(path: str) -> str:
    return "/".join(_parts(path))


def _ancestors(path: str) -> set[str]:
    parts = _parts(path)
    return {"/".join(parts[:i]) for i in range(1, len(parts))}


def purge_roots(folders: Iterable[str]) -> list[str]:
    """The folders to purge in: the pool folders' parents, the top excluded, and
    those under another left out (the purge looks at any depth)."""
    parents = {_path(folder).rpartition("/")[0] for folder in folders} - {""}
    return sorted(p for p in parents if not _ancestors(p) & parents)


def victims(entries: Iterable[Entry], folders: Iterable[str], templates: Iterable[str],
            allowlist: Iterable[str]) -> list[Entry]:
    """What to destroy among ``entries`` (Note [What the purge spares]), in order:
    VMs by path, then folders, deepest first."""
    owned = {_path(f) for f in folders}
    allowed = set(allowlist)
    entries = list(entries)
    kept_paths = {_path(t) for t in templates} | {
        e.path for e in entries if e.template or e.name in allowed or e.path in allowed}
    on_the_way = set().union(*(_ancestors(p) for p in owned | kept_paths))

    def spared(entry: Entry) -> bool:
        path = entry.path
        return (path in owned or path in kept_paths or path in on_the_way
                or any(path.startswith(f"{root}/") for root in owned | kept_paths))

    chosen = [e for e in entries if not spared(e)]
    vms = sorted((e for e in chosen if not e.folder), key=lambda e: e.path)
    folders_ = sorted((e for e in chosen if e.folder),
                      key=lambda e: (-len(_parts(e.path)), e.path))
    return vms + folders_

