"""Changing one VM: power, destroy, disks, snapshots."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from .collector import Collector
from .lookups import Lookups
from .pyvmomi_adapter import moid
from .types import Disk, NotFound, VsphereError

__all__ = ["VmOperations"]


class VmOperations:
    """The changes to a VM found by folder and name."""

    def __init__(self, collector: Collector, lookups: Lookups) -> None:
        self._collector = collector
        self._lookups = lookups

    def _power_state(self, vm: Any) -> str:
        state: str = self._collector.props(vm, "runtime.powerState")["runtime.powerState"]
        return state

    def power_on(self, folder: str, name: str, dc: str | None) -> bool:
        vm = self._lookups.vm(folder, name, dc)
        if self._power_state(vm) == "poweredOn":
            return False
        self._collector.wait(vm.PowerOnVM_Task())
        return True

    def power_off(self, folder: str, name: str, dc: str | None) -> bool:
        vm = self._lookups.vm(folder, name, dc)
        if self._power_state(vm) == "poweredOff":
            return False
        self._collector.wait(vm.PowerOffVM_Task())
        return True

    def destroy(self, folder: str, name: str, dc: str | None) -> bool:
        try:
            vm = self._lookups.vm(folder, name, dc)
        except NotFound:
            return False
        if self._power_state(vm) != "poweredOff":
            self._collector.wait(vm.PowerOffVM_Task())
        self._collector.wait(vm.Destroy_Task())
        return True

    def disks(self, folder: str, name: str, dc: str | None) -> list[Disk]:
        vm = self._lookups.vm(folder, name, dc)
        devices = self._collector.props(vm, "config.hardware.device").get(
            "config.hardware.device") or []
        return [
            Disk(
                label=d.deviceInfo.label if d.deviceInfo else str(d.key),
                capacity_kb=int(d.capacityInKB or 0),
                file_name=getattr(d.backing, "fileName", "") or "",
            )
            for d in devices
            if isinstance(d, vim.vm.device.VirtualDisk)
        ]

    def add_disk(self, folder: str, name: str, size_gb: int, datastore: str | None,
                 dc: str | None) -> None:
        if size_gb <= 0:
            raise ValueError("size_gb must be positive")
        vm = self._lookups.vm(folder, name, dc)
        props = self._collector.props(vm, "config.hardware.device", "datastore")
        devices = props.get("config.hardware.device") or []
        controller, unit = _free_scsi_unit(name, devices)
        if datastore is not None:
            ds = self._lookups.datastore(datastore, dc)
        elif props.get("datastore"):
            ds = props["datastore"][0]
            datastore = next((n for n, r in self._lookups.datastores(dc).items()
                              if moid(r) == moid(ds)), "")
        else:
            raise VsphereError(f"VM {name!r} is on no datastore; name one")
        disk = vim.vm.device.VirtualDisk(
            key=-1,
            controllerKey=controller.key,
            unitNumber=unit,
            capacityInKB=size_gb * 1024 * 1024,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                diskMode="persistent", thinProvisioned=True, fileName=f"[{datastore}]", datastore=ds
            ),
        )
        change = vim.vm.device.VirtualDeviceSpec(
            operation="add", fileOperation="create", device=disk
        )
        self._collector.wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])))

    def snapshots(self, folder: str, name: str, dc: str | None) -> list[str]:
        vm = self._lookups.vm(folder, name, dc)
        return [node.name for node in self._collector.snapshot_tree(vm)]

    def create_snapshot(self, folder: str, name: str, snapshot: str, description: str,
                        dc: str | None) -> None:
        vm = self._lookups.vm(folder, name, dc)
        task = vm.CreateSnapshot_Task(
            name=snapshot, description=description, memory=False, quiesce=False
        )
        self._collector.wait(task)

    def revert_snapshot(self, folder: str, name: str, snapshot: str, dc: str | None) -> None:
        for node in self._collector.snapshot_tree(self._lookups.vm(folder, name, dc)):
            if node.name == snapshot:
                self._collector.wait(node.snapshot.RevertToSnapshot_Task())
                return
        raise NotFound(f"VM {name!r} has no snapshot {snapshot!r}")


def _free_scsi_unit(name: str, devices: list[Any]) -> tuple[Any, int]:
    """The VM's first SCSI controller and its first free unit number."""
    controllers = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)]
    if not controllers:
        raise VsphereError(f"VM {name!r} has no SCSI controller")
    controller = controllers[0]
    used = {d.unitNumber for d in devices if d.controllerKey == controller.key} | {
        7
    }  # 7: the controller
    free = [u for u in range(16) if u not in used]
    if not free:
        raise VsphereError(f"VM {name!r}: no free unit on its first SCSI controller")
    return controller, free[0]
