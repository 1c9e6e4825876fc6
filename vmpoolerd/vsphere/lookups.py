"""
Finding things by name or path: datacenters, folders, templates, VMs,
datastores, clusters, resource pools.

Paths (templates, folders) are relative to the datacenter's VM folder and
written with ``/`` (``Templates/debian/debian-7-x86_64``); resource pool
paths are relative to its host folder, vmpooler's way (``cluster1/pool1``:
the pool ``pool1`` under the root pool of ``cluster1``; ``cluster1`` alone
is that cluster's root pool).  Every lookup takes a datacenter (None: the
client's, else the first found).

Note [Stale references]: what is found is cached (references outlive
sessions) except VMs, which come and go.  A cached reference goes stale
when its object is removed (a folder deleted and made again); vCenter then
answers ``ManagedObjectNotFound``.  The client runs such an operation once
more with the cache emptied (``_operation`` in client.py) — unless the
cache was empty already, so that a real "not found" is not run twice.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from pyVmomi import vim

from .collector import Collector
from .pyvmomi_adapter import moid
from .session import Session
from .types import NotFound

__all__ = ["Lookups", "split_path"]

T = TypeVar("T")


def split_path(path: str) -> list[str]:
    """``"Templates/debian/x"`` -> ``["Templates", "debian", "x"]``; ``""`` -> ``[]``."""
    parts = path.strip("/").split("/") if path.strip("/") else []
    if any(not p for p in parts):
        raise ValueError(f"empty component in path {path!r}")
    return parts


class Lookups:
    """Things found by name, cached (see Note [Stale references])."""

    def __init__(self, session: Session, collector: Collector, datacenter: str | None) -> None:
        self._session = session
        self._collector = collector
        self.datacenter = datacenter
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._folders_lock = threading.Lock()  # one read of every folder at a time

    def forget(self) -> bool:
        """Empty the cache; whether it held anything."""
        had = bool(self._cache)
        self._cache.clear()
        return had

    def _cached(self, key: tuple[Any, ...], find: Callable[[], T]) -> T:
        try:
            value: T = self._cache[key]
            return value
        except KeyError:
            value = self._cache[key] = find()
            return value

    def _child(self, parent: Any, name: str) -> Any:
        return self._session.content.searchIndex.FindChild(entity=parent, name=name)

    def dc(self, dc: str | None) -> dict[str, Any]:
        """The datacenter named ``dc`` (None: the client's), with its folders."""
        name = dc or self.datacenter

        def find() -> dict[str, Any]:
            found = self._collector.collect(
                self._session.content.rootFolder, vim.Datacenter,
                ["name", "vmFolder", "hostFolder"], hop=(vim.Folder, "childEntity"),
                recurse=True)
            for ref, props in found:
                if name is None or props["name"] == name:
                    return {"ref": ref, **props}
            raise NotFound(f"datacenter {name or '(any)'} not found")

        return self._cached(("dc", name), find)

    def _walk(self, base: Any, path: str, what: str) -> Any:
        ref = base
        for part in split_path(path):
            ref = self._child(ref, part)
            if ref is None:
                raise NotFound(f"{what} {path!r} not found")
        return ref

    def folder(self, path: str, dc: str | None) -> Any:
        key = ("folder", dc, path.strip("/"))
        if key not in self._cache:
            self._every_folder(dc)

        def find() -> Any:
            ref = self._walk(self.dc(dc)["vmFolder"], path, "folder")
            if not isinstance(ref, vim.Folder):
                raise NotFound(f"{path!r} is not a folder")
            return ref

        return self._cached(key, find)

    def _every_folder(self, dc: str | None) -> None:
        """
        Note [Folders read together]: the first folder looked up reads
        every folder under the datacenter's VM folder, with its name and
        parent, in one round trip, and caches each by its path: a daemon of
        a thousand pools looked their folders up one FindChild at a time,
        a thousand round trips through the provider's threads as its pools
        started.  Read once per cache (Note [Stale references] empties it);
        a folder made since, or whose name vSphere escapes, is found by the
        walk, as before.
        """
        with self._folders_lock:
            if ("every folder", dc) in self._cache:
                return
            root = self.dc(dc)["vmFolder"]
            found = self._collector.collect(root, vim.Folder, ["name", "parent"],
                                            hop=(vim.Folder, "childEntity"), recurse=True)
            folders = {moid(ref): (ref, props) for ref, props in found}

            def path_of(ref_moid: str) -> list[str] | None:
                parts: list[str] = []
                while ref_moid in folders:
                    _, props = folders[ref_moid]
                    parts.append(props["name"])
                    parent = props.get("parent")
                    ref_moid = moid(parent) if parent is not None else ""
                return parts[::-1] if ref_moid == moid(root) else None

            for ref_moid, (ref, _) in folders.items():
                parts = path_of(ref_moid)
                if parts is not None:
                    self._cache.setdefault(("folder", dc, "/".join(parts)), ref)
            self._cache[("every folder", dc)] = True

    def template(self, path: str, dc: str | None) -> Any:
        def find() -> Any:
            ref = self._walk(self.dc(dc)["vmFolder"], path, "template")
            if not isinstance(ref, vim.VirtualMachine):
                raise NotFound(f"template {path!r} is not a VM")
            return ref

        return self._cached(("template", dc, path.strip("/")), find)

    def template_pool(self, source: Any) -> Any:
        """
        The resource pool a clone of ``source`` goes to when its pool names
        none: None (vCenter's default, the source's own) for a VM that has
        one, and for a real template (which has none) the root pool of its
        host's cluster.  Note [Placement remembered]: three
        reads of vCenter for every clone, the same answer each time, so it
        is cached like every other reference here (a pool removed is a stale
        reference, Note [Stale references]).  A template moved to another
        cluster would keep its clones in the old one: a clone task that
        fails forgets the answer (:meth:`forget_template_pool`), and the
        next clone reads it again.
        """

        def find() -> Any:
            props = self._collector.props(source, "config.template", "resourcePool",
                                          "runtime.host")
            if not props.get("config.template") and props.get("resourcePool") is not None:
                return None
            cluster = self._collector.props(props["runtime.host"], "parent")["parent"]
            return self._collector.props(cluster, "resourcePool")["resourcePool"]

        return self._cached(("template pool", moid(source)), find)

    def forget_template_pool(self, source: Any) -> None:
        self._cache.pop(("template pool", moid(source)), None)

    def vm(self, folder: str, name: str, dc: str | None) -> Any:
        """The VM ``name`` in ``folder`` (not cached)."""
        ref = self._child(self.folder(folder, dc), name)
        if not isinstance(ref, vim.VirtualMachine):
            raise NotFound(f"VM {name!r} not found in folder {folder!r}")
        return ref

    def datastores(self, dc: str | None) -> dict[str, Any]:
        def find() -> dict[str, Any]:
            found = self._collector.collect(self.dc(dc)["ref"], vim.Datastore, ["name"],
                                            hop=(vim.Datacenter, "datastore"))
            return {props["name"]: ref for ref, props in found}

        return self._cached(("datastores", dc), find)

    def datastore(self, name: str, dc: str | None) -> Any:
        try:
            return self.datastores(dc)[name]
        except KeyError:
            raise NotFound(f"datastore {name!r} not found") from None

    def cluster(self, name: str, dc: str | None) -> tuple[Any, Any]:
        """(cluster, its root resource pool), searched anywhere under the host folder."""

        def find() -> tuple[Any, Any]:
            found = self._collector.collect(
                self.dc(dc)["hostFolder"], vim.ComputeResource, ["name", "resourcePool"],
                hop=(vim.Folder, "childEntity"), recurse=True)
            for ref, props in found:
                if props["name"] == name:
                    return ref, props["resourcePool"]
            raise NotFound(f"cluster {name!r} not found")

        return self._cached(("cluster", dc, name), find)

    def resource_pool(self, path: str, dc: str | None) -> Any:
        """vmpooler's walk: folders, then a cluster, then pools under its root pool."""

        def find() -> Any:
            ref = self.dc(dc)["hostFolder"]
            for part in split_path(path):
                ref = self._root_pool_of(ref)
                found = self._child(ref, part)
                if found is None:
                    raise NotFound(f"resource pool {path!r} not found")
                ref = found
            ref = self._root_pool_of(ref)
            if not isinstance(ref, vim.ResourcePool):
                raise NotFound(f"{path!r} is not a resource pool")
            return ref

        return self._cached(("pool", dc, path.strip("/")), find)

    def _root_pool_of(self, ref: Any) -> Any:
        """A cluster's root resource pool; anything else, itself."""
        if isinstance(ref, vim.ComputeResource):
            return self._collector.props(ref, "resourcePool")["resourcePool"]
        return ref
