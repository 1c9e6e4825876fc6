"""
vmpooler 3.x's built-in ``dummy`` provider: VMs that live in memory, clone,
boot and fail as its options say (:class:`~vmpoolerd.config.DummyConfig`),
behind the same typed face as vSphere's
(:class:`~vmpoolerd.vsphere.types.Vsphere`).  A site's staging file runs
on it, and anyone can try vmpoolerd without a vCenter.

Note [Dummy VMs]: a VM appears in its folder, powered on under its own
name, as soon as its clone starts (as 3.x's does), and is *running* once
the clone's delay (``createvm_max_time``) is over; a clone that fails
(``createvm_fail_percent``) takes its VM away.  Each delay is a random
1 to ``1 + *_max_time`` seconds on the injected clock (none when unset),
each failure a ``*_fail_percent`` chance.  Every inventory read may power
a running VM off (``getvm_poweroff_percent``) or rename its guest
(``getvm_rename_percent``, "DUMMY" + its name), as 3.x's ``get_vm`` does.
``filename`` (3.x's backing file), the connection pool and the
``migratevm_*`` options are read but not used: the VMs are gone when the
daemon stops.

Note [Dummy readiness]: there is nothing to connect to, so the readiness
probe of a dummy VM is answered by its provider, as 3.x's dummy answers
``vm_ready?`` itself: ready once it has been running for READY_DELAY
seconds (3.x sleeps as long), unless ``vmready_fail_percent`` fails that
probe; once ready, always ready.  :func:`readiness` routes the manager's
probe: an address one of the dummy providers knows (a VM's name, with or
without its domain, or the address its inventory reports) is theirs,
any other goes to TCP.
"""

from __future__ import annotations

import datetime
import ipaddress
import random
from dataclasses import dataclass, field
from typing import Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from .config import DummyConfig
from .manager import failures
from .manager.failures import VmFailure
from .manager.probe import Probe
from .vsphere.types import Entry, NotFound, VmState, Vsphere, VsphereError

__all__ = ["DummyProvider", "READY_DELAY", "readiness"]

READY_DELAY = 2.0  # seconds from running to answering (Note [Dummy readiness])
# The addresses dummy VMs report (RFC 2544's benchmarking network: never routed).
ADDRESSES = ipaddress.ip_network("198.18.0.0/15")

CLONING, RUNNING = "cloning", "running"


@dataclass
class _Vm:
    name: str
    folder: str
    ip: str
    boot_time: datetime.datetime
    state: str = CLONING
    power_state: str = "poweredOn"
    hostname: str = ""
    running_since: float | None = None
    ready: bool = False
    snapshots: list[str] = field(default_factory=list)
    disks: list[int] = field(default_factory=list)

    def seen(self) -> VmState:
        return VmState(name=self.name, power_state=self.power_state,
                       hostname=self.hostname or None, ip=self.ip,
                       boot_time=self.boot_time)


class DummyFailure(VsphereError):
    """An action failed as its ``*_fail_percent`` said it would."""


class DummyProvider:
    """
    One ``dummy`` provider of ``:providers:`` (Note [Dummy VMs]); ``rng``
    draws its delays and failures (seed it in tests).
    """

    def __init__(self, name: str, options: DummyConfig, clock: IReactorTime,
                 rng: random.Random | None = None) -> None:
        self.name = name
        self._options = options
        self._clock = clock
        self._rng = rng or random.Random()
        self._vms: dict[str, _Vm] = {}  # by name: names are unique in a site
        self._folders: set[str] = set()
        self._addresses = 0

    # --- what the maintainer and the API ask -----------------------------------

    def at(self, datacenter: str | None) -> Vsphere:
        """This provider (a dummy has no datacenters)."""
        return self

    async def ping(self, timeout: float | None = None) -> datetime.datetime:
        return self._now()

    async def inventory(self, folder: str) -> list[VmState]:
        vms = [vm for vm in self._vms.values() if vm.folder == folder]
        for vm in vms:
            self._meddle(vm)
        return [vm.seen() for vm in sorted(vms, key=lambda v: v.name)]

    async def clone(self, template: str, folder: str, datastore: str, name: str,
                    resource_pool: str | None = None, clone_target: str | None = None,
                    linked: bool = False) -> float:
        if name in self._vms:
            raise VsphereError(f"a VM named {name!r} exists already")
        started = self._clock.seconds()
        self._addresses += 1
        vm = self._vms[name] = _Vm(
            name, folder, str(ADDRESSES[self._addresses % ADDRESSES.num_addresses]),
            self._now(), hostname=name)
        self._folders.add(folder)
        try:
            await self._act("createvm")
        except DummyFailure:
            self._vms.pop(name, None)
            raise
        vm.state, vm.running_since = RUNNING, self._clock.seconds()
        return self._clock.seconds() - started

    async def destroy(self, folder: str, name: str) -> bool:
        vm = self._vms.get(name)
        if vm is None or vm.folder != folder:
            return False
        if vm.power_state == "poweredOn":
            await self._delay(self._options.destroyvm_max_shutdown_time)
            vm.power_state = "poweredOff"
        await self._act("destroyvm")
        self._vms.pop(name, None)
        return True

    async def add_disk(self, folder: str, name: str, size_gb: int) -> None:
        vm = self._vm(folder, name)
        await self._act("createdisk")
        vm.disks.append(size_gb)

    async def create_snapshot(self, folder: str, name: str, snapshot: str) -> None:
        vm = self._vm(folder, name)
        await self._act("createsnapshot")
        vm.snapshots.append(snapshot)

    async def revert_snapshot(self, folder: str, name: str, snapshot: str) -> None:
        vm = self._vm(folder, name)
        await self._act("revertsnapshot")
        if snapshot not in vm.snapshots:
            raise NotFound(f"VM {name!r} has no snapshot {snapshot!r}")

    async def contents(self, folder: str) -> list[Entry]:
        under = folder.rstrip("/") + "/"
        folders: set[str] = set()
        for known in self._folders:
            if known.startswith(under):
                parts = known[len(under):].split("/")
                folders.update(under + "/".join(parts[:i + 1]) for i in range(len(parts)))
        vms = [Entry(f"{vm.folder}/{vm.name}", folder=False) for vm in self._vms.values()
               if vm.folder == folder or vm.folder.startswith(under)]
        return [Entry(path, folder=True) for path in sorted(folders)] + \
            sorted(vms, key=lambda e: e.path)

    async def remove_folder(self, folder: str) -> bool:
        under = folder.rstrip("/") + "/"
        if any(vm.folder == folder or vm.folder.startswith(under) for vm in self._vms.values()):
            return False
        self._folders = {f for f in self._folders if f != folder and not f.startswith(under)}
        return True

    # --- readiness (Note [Dummy readiness]) ------------------------------------

    def owns(self, address: str) -> bool:
        """Whether ``address`` (a probe's host) is one of this provider's VMs."""
        return self._by_address(address) is not None

    def ready(self, address: str) -> bool | VmFailure:
        """The readiness probe of the VM at ``address``: as 3.x's ``vm_ready?``."""
        vm = self._by_address(address)
        if vm is None:
            return VmFailure(failures.UNREACHABLE, "no such dummy VM")
        if vm.ready:
            return True
        if (vm.state != RUNNING or vm.running_since is None
                or self._clock.seconds() - vm.running_since < READY_DELAY):
            return False
        if self._fails(self._options.vmready_fail_percent):
            return VmFailure(failures.UNREACHABLE, "dummy failure for vmready_fail_percent")
        vm.ready = True
        return True

    # --- helpers -------------------------------------------------------------------

    def _by_address(self, address: str) -> _Vm | None:
        vm = self._vms.get(address) or self._vms.get(address.split(".", 1)[0])
        if vm is not None:
            return vm
        return next((vm for vm in self._vms.values() if vm.ip == address), None)

    def _vm(self, folder: str, name: str) -> _Vm:
        vm = self._vms.get(name)
        if vm is None or vm.folder != folder:
            raise NotFound(f"no VM {name!r} in {folder!r}")
        return vm

    def _meddle(self, vm: _Vm) -> None:
        """What 3.x's get_vm may do to a running VM on each look."""
        if vm.state != RUNNING or vm.power_state != "poweredOn":
            return
        if self._fails(self._options.getvm_poweroff_percent):
            vm.power_state = "poweredOff"
        if vm.hostname == vm.name and self._fails(self._options.getvm_rename_percent):
            vm.hostname = "DUMMY" + vm.name

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self._clock.seconds(), datetime.timezone.utc)

    def _fails(self, percent: int | None) -> bool:
        return percent is not None and self._rng.randint(1, 100) <= percent

    async def _delay(self, max_time: float | None) -> None:
        if max_time is not None:
            await deferLater(self._clock, 1 + self._rng.random() * max_time, lambda: None)

    async def _act(self, action: str) -> None:
        """An action's delay, then its failure, as its options say."""
        await self._delay(getattr(self._options, f"{action}_max_time"))
        if self._fails(getattr(self._options, f"{action}_fail_percent")):
            raise DummyFailure(f"dummy failure for {action}_fail_percent")


def readiness(dummies: Sequence[DummyProvider], tcp: Probe) -> Probe:
    """The manager's readiness probe: the dummy providers answer for their
    VMs, TCP for every other address (Note [Dummy readiness])."""

    async def probe(host: str, port: int) -> bool | VmFailure | None:
        for dummy in dummies:
            if dummy.owns(host):
                return dummy.ready(host)
        return await tcp(host, port)

    return probe
