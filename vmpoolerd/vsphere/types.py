"""
What crosses the vSphere boundary, with no pyVmomi in sight: the values
the client reads (:class:`VmState`, :class:`HostState`, :class:`Disk`),
the errors it raises, and :class:`Vsphere`, what the pool manager asks of
vSphere (the typed face of :class:`vmpoolerd.vsphere.provider.Provider`).

The pure planner and the manager import from here; only
``vmpoolerd.vsphere`` itself imports pyVmomi.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Awaitable, Protocol

__all__ = [
    "Disk",
    "Entry",
    "HostState",
    "LoginFailed",
    "NoHostAvailable",
    "NotFound",
    "TaskFailed",
    "VmState",
    "Vsphere",
    "VsphereError",
    "VsphereTimeout",
    "VsphereUnavailable",
]


# -- errors -----------------------------------------------------------------


class VsphereError(Exception):
    """A vSphere call failed; ``fault`` is the vSphere fault, if any."""

    def __init__(self, message: str, fault: Exception | None = None):
        super().__init__(message)
        self.fault = fault


class NotFound(VsphereError, LookupError):
    """A datacenter, folder, template, VM, snapshot... does not exist."""


class VsphereTimeout(VsphereError):
    """vCenter did not answer in time, or a task did not finish in time."""


class VsphereUnavailable(VsphereError):
    """vCenter cannot be reached (refused, reset, TLS failure, HTTP error)."""


class LoginFailed(VsphereError):
    """vCenter refused the user name and password."""


class TaskFailed(VsphereError):
    """A vSphere task ended in error; ``fault`` says why."""


class NoHostAvailable(VsphereError):
    """No host of the clone target is connected and out of maintenance."""


# -- values -----------------------------------------------------------------


@dataclass(frozen=True)
class VmState:
    """One VM as :meth:`VsphereClient.inventory` saw it."""

    name: str
    power_state: str  # "poweredOn", "poweredOff" or "suspended"
    hostname: str | None  # guest.hostName, as VMware Tools report it
    ip: str | None  # guest.ipAddress
    boot_time: datetime.datetime | None  # summary.runtime.bootTime
    template: bool = False
    moid: str = ""

    @property
    def powered_on(self) -> bool:
        return self.power_state == "poweredOn"


@dataclass(frozen=True)
class HostState:
    """The figures a host is chosen by (MHz, MB)."""

    name: str
    connected: bool
    maintenance: bool
    cpu_usage: int | None = None
    cpu_capacity: int | None = None
    memory_usage: int | None = None
    memory_capacity: int | None = None
    vm_count: int = 0
    moid: str = ""

    @property
    def healthy(self) -> bool:
        return self.connected and not self.maintenance

    @property
    def utilisation(self) -> float | None:
        """CPU plus memory use, in percent of capacity (0-200); None if unknown."""
        cpu, cpus, memory, memories = (
            self.cpu_usage,
            self.cpu_capacity,
            self.memory_usage,
            self.memory_capacity,
        )
        if cpu is None or memory is None or not cpus or not memories:
            return None
        return 100.0 * cpu / cpus + 100.0 * memory / memories


@dataclass(frozen=True)
class Entry:
    """A VM or a folder under a folder, as :meth:`VsphereClient.contents` saw it."""

    path: str  # from the datacenter's VM folder, "Pools/stray/vm1"
    folder: bool  # a folder (else a VM)
    template: bool = False  # a VM marked as template

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Disk:
    label: str
    capacity_kb: int
    file_name: str = ""

    @property
    def size_gb(self) -> float:
        return self.capacity_kb / (1024 * 1024)


# -- what the manager asks of vSphere -----------------------------------------


class Vsphere(Protocol):
    """
    The vSphere calls of the pool manager, each awaited on the reactor
    thread while the work runs elsewhere; they raise :class:`VsphereError`
    (timeouts included).  :class:`~vmpoolerd.vsphere.provider.Provider` is
    the real one; the tests' in-memory vSphere stands for it, and both pass
    the same interface tests (tests/vsphere_contract.py).
    """

    def inventory(self, folder: str) -> Awaitable[list[VmState]]:
        """The VMs directly in ``folder``, by name."""

    def clone(self, template: str, folder: str, datastore: str, name: str,
              resource_pool: str | None = None,
              clone_target: str | None = None, linked: bool = False) -> Awaitable[float]:
        """Clone ``template`` to ``folder/name`` and power it on; the seconds it took.
        A ``linked`` clone is made from the template's current snapshot."""

    def destroy(self, folder: str, name: str) -> Awaitable[bool]:
        """Power off and destroy; False if there was no such VM."""

    def add_disk(self, folder: str, name: str, size_gb: int) -> Awaitable[None]:
        """Add a thin disk of ``size_gb`` GB."""

    def create_snapshot(self, folder: str, name: str, snapshot: str) -> Awaitable[None]:
        """Snapshot the VM as ``snapshot``."""

    def revert_snapshot(self, folder: str, name: str, snapshot: str) -> Awaitable[None]:
        """Revert the VM to ``snapshot`` (:class:`NotFound` if it has none)."""

    def contents(self, folder: str) -> Awaitable[list[Entry]]:
        """The VMs and folders under ``folder``, at any depth."""

    def remove_folder(self, folder: str) -> Awaitable[bool]:
        """Remove ``folder`` if it is empty; whether it was."""
