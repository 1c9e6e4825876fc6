"""
The built-in dummy provider (vmpoolerd/dummy.py: Note [Dummy VMs], Note
[Dummy readiness]) on a fake clock.
"""

from __future__ import annotations

import random
from typing import Any, Coroutine, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.config import DummyConfig
from vmpoolerd.dummy import READY_DELAY, DummyProvider, readiness
from vmpoolerd.manager import failures
from vmpoolerd.manager.failures import VmFailure
from vmpoolerd.vsphere.types import Entry, NotFound, VsphereError

T = TypeVar("T")
FOLDER = "Pooled VMs/debian"


class DummyTests(SynchronousTestCase):
    def provider(self, **options: Any) -> DummyProvider:
        self.clock = Clock()
        return DummyProvider("dummy", DummyConfig(**options), self.clock, random.Random(7))

    def go(self, work: Coroutine[Any, Any, T]) -> Deferred[T]:
        return ensureDeferred(work)

    def test_a_clone_takes_its_time_then_runs_and_becomes_ready(self) -> None:
        dummy = self.provider(createvm_max_time=10)
        cloning = self.go(dummy.clone("T/debian", FOLDER, "ds", "vm1"))
        [vm] = self.successResultOf(self.go(dummy.inventory(FOLDER)))
        self.assertEqual((vm.name, vm.powered_on, vm.hostname), ("vm1", True, "vm1"))
        self.assertIs(dummy.ready("vm1"), False)  # still cloning
        self.assertNoResult(cloning)
        self.clock.advance(11)
        seconds = self.successResultOf(cloning)
        self.assertTrue(1 <= seconds <= 11, seconds)
        self.assertIs(dummy.ready("vm1.example.com"), False)
        self.clock.advance(READY_DELAY)
        self.assertIs(dummy.ready("vm1.example.com"), True)
        assert vm.ip is not None
        self.assertIs(dummy.ready(vm.ip), True)

    def test_a_failed_clone_takes_its_vm_away(self) -> None:
        dummy = self.provider(createvm_fail_percent=100)
        failure = self.failureResultOf(self.go(dummy.clone("T", FOLDER, "ds", "vm1")))
        failure.trap(VsphereError)
        self.assertEqual(self.successResultOf(self.go(dummy.inventory(FOLDER))), [])

    def test_vmready_fail_percent(self) -> None:
        dummy = self.provider(vmready_fail_percent=100)
        self.successResultOf(self.go(dummy.clone("T", FOLDER, "ds", "vm1")))
        self.clock.advance(READY_DELAY)
        self.assertEqual(dummy.ready("vm1"), VmFailure(
            failures.UNREACHABLE, "dummy failure for vmready_fail_percent"))

    def test_inventory_reads_may_power_off_and_rename(self) -> None:
        dummy = self.provider(getvm_poweroff_percent=100, getvm_rename_percent=100)
        self.successResultOf(self.go(dummy.clone("T", FOLDER, "ds", "vm1")))
        [vm] = self.successResultOf(self.go(dummy.inventory(FOLDER)))
        self.assertEqual((vm.power_state, vm.hostname), ("poweredOff", "DUMMYvm1"))
        dummy = self.provider(getvm_rename_percent=100)
        self.successResultOf(self.go(dummy.clone("T", FOLDER, "ds", "vm1")))
        [vm] = self.successResultOf(self.go(dummy.inventory(FOLDER)))
        self.assertEqual((vm.power_state, vm.hostname), ("poweredOn", "DUMMYvm1"))

    def test_destroy_shuts_down_then_destroys(self) -> None:
        dummy = self.provider(destroyvm_max_shutdown_time=5, destroyvm_max_time=5)
        self.successResultOf(self.go(dummy.clone("T", FOLDER, "ds", "vm1")))
        destroying = self.go(dummy.destroy(FOLDER, "vm1"))
        self.assertNoResult(destroying)
        self.clock.pump([1.0] * 12)  # the shutdown, then the destroy
        self.assertIs(self.successResultOf(destroying), True)
        self.assertIs(self.successResultOf(self.go(dummy.destroy(FOLDER, "vm1"))), False)
        self.assertEqual(self.successResultOf(self.go(dummy.inventory(FOLDER))), [])

    def test_disks_and_snapshots(self) -> None:
        dummy = self.provider()
        self.successResultOf(self.go(dummy.clone("T", FOLDER, "ds", "vm1")))
        self.successResultOf(self.go(dummy.add_disk(FOLDER, "vm1", 10)))
        self.successResultOf(self.go(dummy.create_snapshot(FOLDER, "vm1", "s1")))
        self.successResultOf(self.go(dummy.revert_snapshot(FOLDER, "vm1", "s1")))
        self.failureResultOf(self.go(dummy.revert_snapshot(FOLDER, "vm1", "s2")), NotFound)
        self.failureResultOf(self.go(dummy.add_disk(FOLDER, "gone", 10)), NotFound)

    def test_contents_and_folders(self) -> None:
        dummy = self.provider()
        self.successResultOf(self.go(dummy.clone("T", "Pools/a/b", "ds", "vm1")))
        self.assertEqual(self.successResultOf(self.go(dummy.contents("Pools"))), [
            Entry("Pools/a", True), Entry("Pools/a/b", True), Entry("Pools/a/b/vm1", False)])
        self.assertIs(self.successResultOf(self.go(dummy.remove_folder("Pools/a"))), False)
        self.successResultOf(self.go(dummy.destroy("Pools/a/b", "vm1")))
        self.assertIs(self.successResultOf(self.go(dummy.remove_folder("Pools/a"))), True)
        self.assertEqual(self.successResultOf(self.go(dummy.contents("Pools"))), [])

    def test_readiness_routes_other_addresses_to_tcp(self) -> None:
        dummy = self.provider()
        self.successResultOf(self.go(dummy.clone("T", FOLDER, "ds", "vm1")))
        self.clock.advance(READY_DELAY)
        asked: list[tuple[str, int]] = []

        async def tcp(host: str, port: int) -> bool:
            asked.append((host, port))
            return True
        probe = readiness([dummy], tcp)

        async def ask(host: str) -> bool | VmFailure | None:
            return await probe(host, 22)
        self.assertIs(self.successResultOf(ensureDeferred(ask("vm1.example.com"))), True)
        self.assertEqual(asked, [])
        self.successResultOf(ensureDeferred(ask("other.example.com")))
        self.assertEqual(asked, [("other.example.com", 22)])
