"""Reading what is there: the VMs of a folder, a folder's contents, the hosts of a cluster."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from pyVmomi import vim

from .collector import Collector, PropertyCollector
from .lookups import Lookups, split_path
from .pyvmomi_adapter import moid
from .types import Entry, HostState, NoHostAvailable, NotFound, VmState, VsphereError

__all__ = ["Inventory", "pick_host"]

VM_PATHS = (
    "name",
    "runtime.powerState",
    "guest.hostName",
    "guest.ipAddress",
    "summary.runtime.bootTime",
    "config.template",
)

_HOST_PATHS = (
    "name",
    "runtime.connectionState",
    "runtime.inMaintenanceMode",
    "summary.quickStats.overallCpuUsage",
    "summary.quickStats.overallMemoryUsage",
    "summary.hardware.cpuMhz",
    "summary.hardware.numCpuCores",
    "summary.hardware.memorySize",
    "vm",
)


def pick_host(hosts: Iterable[HostState]) -> HostState:
    """The least-loaded healthy host (connected, not in maintenance).

    Hosts are ranked by CPU plus memory use in percent of their capacity,
    then by VM count, then by name.  When any candidate lacks usage figures,
    they are all ranked by VM count (then name) alone.
    """
    candidates = [h for h in hosts if h.healthy]
    if not candidates:
        raise NoHostAvailable("no connected host out of maintenance mode")
    if all(h.utilisation is not None for h in candidates):
        return min(candidates, key=lambda h: (h.utilisation, h.vm_count, h.name))
    return min(candidates, key=lambda h: (h.vm_count, h.name))


def _empty(value: Any) -> Any:
    return value if value not in ("", None) else None


def as_vm_state(ref: Any, props: Mapping[str, Any]) -> VmState:
    return VmState(
        name=props.get("name", ""),
        power_state=str(props.get("runtime.powerState", "")),
        hostname=_empty(props.get("guest.hostName")),
        ip=_empty(props.get("guest.ipAddress")),
        boot_time=props.get("summary.runtime.bootTime"),
        template=bool(props.get("config.template")),
        moid=moid(ref),
    )


def as_host_state(ref: Any, props: Mapping[str, Any]) -> HostState:
    mhz = props.get("summary.hardware.cpuMhz")
    cores = props.get("summary.hardware.numCpuCores")
    memory = props.get("summary.hardware.memorySize")  # bytes
    return HostState(
        name=props.get("name", ""),
        connected=props.get("runtime.connectionState") == "connected",
        maintenance=bool(props.get("runtime.inMaintenanceMode")),
        cpu_usage=props.get("summary.quickStats.overallCpuUsage"),
        cpu_capacity=mhz * cores if mhz and cores else None,
        memory_usage=props.get("summary.quickStats.overallMemoryUsage"),
        memory_capacity=memory // (1024 * 1024) if memory else None,
        vm_count=len(props.get("vm") or ()),
        moid=moid(ref),
    )


class Inventory:
    """What is in a folder or a cluster, each in one round trip once it is found."""

    def __init__(self, collector: Collector, lookups: Lookups) -> None:
        self._collector = collector
        self._lookups = lookups

    def inventory(self, folder: str, dc: str | None) -> list[VmState]:
        (vms,) = self.inventories([folder], dc)
        if isinstance(vms, VsphereError):
            raise vms
        return vms

    def inventories(self, folders: Sequence[str], dc: str | None,
                    ) -> list[list[VmState] | VsphereError]:
        """Each folder's VMs (those directly in it), or why not (NotFound);
        in one round trip for them all, once the folders are known (Note
        [Folder reads together] in provider.py)."""
        refs: dict[str, Any] = {}
        missing: dict[str, str] = {}  # why not found
        for folder in folders:
            try:
                refs[folder] = self._lookups.folder(folder, dc)
            except NotFound as e:
                missing[folder] = str(e)
        found = self._folders_and_vms({moid(ref): ref for ref in refs.values()}.values())
        vms = {moid(o.obj): as_vm_state(o.obj, {p.name: p.val for p in o.propSet or []})
               for o in found if isinstance(o.obj, vim.VirtualMachine)}
        children = {moid(o.obj): [moid(child) for p in o.propSet or [] for child in p.val or []]
                    for o in found if isinstance(o.obj, vim.Folder)}

        def read(folder: str) -> list[VmState] | VsphereError:
            if folder in missing:  # an error of its own for each asking
                return NotFound(missing[folder])
            inside = children.get(moid(refs[folder]))
            if inside is None:  # never taken for an empty folder
                return VsphereError(f"folder {folder!r} was not read")
            return sorted((vms[child] for child in inside if child in vms),
                          key=lambda vm: vm.name)

        return [read(folder) for folder in folders]

    def _folders_and_vms(self, folders: Iterable[Any]) -> list[Any]:
        """The folders' ``childEntity`` and the VMs in them, in one round trip."""
        hop = PropertyCollector.TraversalSpec(name="hop", type=vim.Folder, path="childEntity")
        objects = [PropertyCollector.ObjectSpec(obj=ref, selectSet=[hop]) for ref in folders]
        if not objects:
            return []
        return self._collector.retrieve(PropertyCollector.FilterSpec(
            objectSet=objects,
            propSet=[PropertyCollector.PropertySpec(type=vim.Folder, pathSet=["childEntity"]),
                     PropertyCollector.PropertySpec(type=vim.VirtualMachine,
                                                    pathSet=list(VM_PATHS))]))

    def contents(self, folder: str, dc: str | None) -> list[Entry]:
        root = self._lookups.folder(folder, dc)
        traversal = PropertyCollector.TraversalSpec(
            name="hop", type=vim.Folder, path="childEntity",
            selectSet=[PropertyCollector.SelectionSpec(name="hop")])
        spec = PropertyCollector.FilterSpec(
            objectSet=[PropertyCollector.ObjectSpec(obj=root, skip=True, selectSet=[traversal])],
            propSet=[PropertyCollector.PropertySpec(type=vim.Folder, pathSet=["name", "parent"]),
                     PropertyCollector.PropertySpec(type=vim.VirtualMachine,
                                                    pathSet=["name", "parent",
                                                             "config.template"])])
        found = {moid(o.obj): (o.obj, {p.name: p.val for p in o.propSet or []})
                 for o in self._collector.retrieve(spec)}
        base = "/".join(split_path(folder))

        def path(key: str) -> str:
            ref, props = found[key]
            parent = props.get("parent")
            above = base if parent is None or moid(parent) not in found else path(moid(parent))
            return f"{above}/{props.get('name', '')}"

        return sorted((Entry(path(key), isinstance(ref, vim.Folder),
                             bool(props.get("config.template")))
                       for key, (ref, props) in found.items()), key=lambda e: e.path)

    def remove_folder(self, folder: str, dc: str | None) -> bool:
        try:
            ref = self._lookups.folder(folder, dc)
        except NotFound:
            return False
        if self._collector.props(ref, "childEntity").get("childEntity"):
            return False
        self._collector.wait(ref.Destroy_Task())
        self._lookups.forget()
        return True

    def vm_state(self, folder: str, name: str, dc: str | None) -> VmState:
        ref = self._lookups.vm(folder, name, dc)
        return as_vm_state(ref, self._collector.props(ref, *VM_PATHS))

    def hosts(self, cluster: str, dc: str | None) -> list[HostState]:
        ref, _ = self._lookups.cluster(cluster, dc)
        found = self._collector.collect(ref, vim.HostSystem, _HOST_PATHS,
                                        hop=(vim.ComputeResource, "host"))
        return sorted((as_host_state(ref, props) for ref, props in found), key=lambda h: h.name)
