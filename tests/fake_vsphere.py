"""
A vSphere in memory that holds state, as txacme's fakes do: a clone makes
a VM (powered on) that the inventory then lists, destroying powers it off
and removes it, snapshots are kept per VM, an empty folder can be removed.

It stands for :class:`~vmpoolerd.vsphere.provider.Provider` and passes the
same interface tests as the real provider on the simulator
(tests/vsphere_contract.py), so that it cannot drift from what it stands
for.  It starts from an inventory in the simulator's schema
(:data:`tests.vcsim_server.DEFAULT_INVENTORY`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from twisted.internet.defer import Deferred, fail, succeed

from vmpoolerd.vsphere.types import Entry, NotFound, VmState, VsphereError

T = TypeVar("T")


@dataclass
class FakeVm:
    template: bool = False
    power_state: str = "poweredOff"
    disks_gb: list[int] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)


class FakeVsphere:
    """The manager's vSphere (:class:`vmpoolerd.vsphere.types.Vsphere`), in memory."""

    def __init__(self, inventory: dict[str, Any]) -> None:
        self.folders: set[str] = set()
        self.vms: dict[str, FakeVm] = {}  # by path, "Pools/debian-7/vm1"
        for path in inventory.get("folders", []):
            self._make_folders(path)
        for template in inventory.get("templates", []):
            self._add_vm(template["path"], FakeVm(template=template.get("template", True)))
        for group in inventory.get("vms", []):
            self._make_folders(group["folder"])
            names = [*group.get("names", []),
                     *(f"{group.get('prefix', '')}-{i:03d}" for i in range(group.get("count", 0)))]
            for name in names:
                self._add_vm(f"{group['folder']}/{name}", FakeVm(
                    power_state="poweredOn" if group.get("power_on") else "poweredOff"))

    def _make_folders(self, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            self.folders.add("/".join(parts[:i]))

    def _add_vm(self, path: str, vm: FakeVm) -> None:
        parent = path.rpartition("/")[0]
        if parent:
            self._make_folders(parent)
        self.vms[path] = vm

    # -- lookups, raising as the real client does ----------------------------

    def _folder(self, folder: str) -> str:
        folder = folder.strip("/")
        if folder not in self.folders:
            raise NotFound(f"no folder {folder}")
        return folder

    def _vm(self, folder: str, name: str) -> FakeVm:
        vm = self.vms.get(f"{self._folder(folder)}/{name}")
        if vm is None:
            raise NotFound(f"no VM {name} in {folder}")
        return vm

    @staticmethod
    def _answer(work: Callable[[], T]) -> Deferred[T]:
        try:
            return succeed(work())
        except VsphereError as e:
            return fail(e)

    # -- the Vsphere protocol --------------------------------------------------

    def inventory(self, folder: str) -> Deferred[list[VmState]]:
        def work() -> list[VmState]:
            base = self._folder(folder)
            return [VmState(path.rpartition("/")[2], vm.power_state, None, None, None,
                            template=vm.template)
                    for path, vm in sorted(self.vms.items())
                    if path.rpartition("/")[0] == base]
        return self._answer(work)

    def clone(self, template: str, folder: str, datastore: str, name: str,
              resource_pool: str | None = None,
              clone_target: str | None = None, linked: bool = False) -> Deferred[float]:
        def work() -> float:
            source = template.strip("/")
            if source not in self.vms:
                raise NotFound(f"no template {template}")
            if linked and not self.vms[source].snapshots:
                raise NotFound(f"template {template} has no snapshot to link from")
            path = f"{self._folder(folder)}/{name}"
            if path in self.vms:
                raise VsphereError(f"a VM {name} exists in {folder}")
            self.vms[path] = FakeVm(power_state="poweredOn")
            return 0.0
        return self._answer(work)

    def destroy(self, folder: str, name: str) -> Deferred[bool]:
        def work() -> bool:
            try:
                vm = self._vm(folder, name)
            except NotFound:
                return False
            vm.power_state = "poweredOff"
            del self.vms[f"{folder.strip('/')}/{name}"]
            return True
        return self._answer(work)

    def add_disk(self, folder: str, name: str, size_gb: int) -> Deferred[None]:
        return self._answer(lambda: self._vm(folder, name).disks_gb.append(size_gb))

    def create_snapshot(self, folder: str, name: str, snapshot: str) -> Deferred[None]:
        return self._answer(lambda: self._vm(folder, name).snapshots.append(snapshot))

    def revert_snapshot(self, folder: str, name: str, snapshot: str) -> Deferred[None]:
        def work() -> None:
            if snapshot not in self._vm(folder, name).snapshots:
                raise NotFound(f"no snapshot {snapshot}")
        return self._answer(work)

    def contents(self, folder: str) -> Deferred[list[Entry]]:
        def work() -> list[Entry]:
            base = self._folder(folder)
            below = [Entry(path, True) for path in self.folders
                     if path.startswith(base + "/")]
            below += [Entry(path, False, vm.template) for path, vm in self.vms.items()
                      if path.startswith(base + "/")]
            return sorted(below, key=lambda e: e.path)
        return self._answer(work)

    def remove_folder(self, folder: str) -> Deferred[bool]:
        def work() -> bool:
            try:
                base = self._folder(folder)
            except NotFound:
                return False
            if any(path.startswith(base + "/") for path in (*self.folders, *self.vms)):
                return False
            self.folders.remove(base)
            return True
        return self._answer(work)
