"""
The interface tests of :class:`vmpoolerd.vsphere.types.Vsphere`, the
manager's view of vSphere: the real provider (on the simulator) and the
tests' scripted provider must both pass them, so that what the manager's
tests learn from the fake holds for the real thing.

A case mixing :class:`VsphereContract` in says how a call gets its result
(:meth:`VsphereContract.answered`): the real provider answers by itself;
the scripted one is answered with the result the real one would give.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Awaitable, TypeVar

from twisted.trial.unittest import TestCase

from vmpoolerd.vsphere.types import VmState, Vsphere, VsphereError

T = TypeVar("T")

# A mixin, so that trial does not run it on its own; typed as the case it joins.
if TYPE_CHECKING:
    _Case = TestCase
else:
    _Case = object

TEMPLATE = "Templates/centos-7-plain"
FOLDER = "Pools/debian-7"
DATASTORE = "LocalDS_0"
NAME = "contract-vm"
METHODS = ("inventory", "clone", "destroy", "add_disk", "create_snapshot", "revert_snapshot",
           "contents", "remove_folder")


class VsphereContract(_Case):
    """Mixed into a TestCase whose ``setUp`` sets ``self.vsphere``."""

    vsphere: Vsphere

    async def answered(self, method: str, call: Awaitable[T], result: Any) -> T:
        """The result of ``call`` (``result`` is what the real provider answers)."""
        raise NotImplementedError

    async def failed(self, method: str, call: Awaitable[Any], error: Exception) -> None:
        """``call`` ends in ``error`` (a :class:`VsphereError`) or one of its kind."""
        raise NotImplementedError

    def test_signatures(self) -> None:
        for method in METHODS:
            expected = inspect.signature(getattr(Vsphere, method))
            actual = inspect.signature(getattr(self.vsphere, method))
            self.assertEqual(list(actual.parameters.values()),
                             list(expected.parameters.values())[1:], method)

    async def test_a_clone_is_in_the_inventory_until_destroyed(self) -> None:
        seconds = await self.answered(
            "clone", self.vsphere.clone(TEMPLATE, FOLDER, DATASTORE, NAME), 0.5)
        self.assertIsInstance(seconds, float)
        seen = VmState(NAME, "poweredOn", None, None, None)
        vms = await self.answered("inventory", self.vsphere.inventory(FOLDER), [seen])
        self.assertTrue(all(isinstance(vm, VmState) for vm in vms))
        self.assertEqual([vm.name for vm in vms], [NAME])
        self.assertTrue(vms[0].powered_on)
        self.assertIs(await self.answered("destroy", self.vsphere.destroy(FOLDER, NAME), True),
                      True)
        self.assertEqual(await self.answered("inventory", self.vsphere.inventory(FOLDER), []),
                         [])
        self.assertIs(await self.answered("destroy", self.vsphere.destroy(FOLDER, NAME), False),
                      False)

    async def test_disks_and_snapshots(self) -> None:
        await self.answered("clone", self.vsphere.clone(TEMPLATE, FOLDER, DATASTORE, NAME), 0.5)
        await self.answered("add_disk", self.vsphere.add_disk(FOLDER, NAME, 1), None)
        await self.answered("create_snapshot",
                            self.vsphere.create_snapshot(FOLDER, NAME, "s1"), None)
        await self.answered("revert_snapshot",
                            self.vsphere.revert_snapshot(FOLDER, NAME, "s1"), None)
        await self.failed("revert_snapshot", self.vsphere.revert_snapshot(FOLDER, NAME, "nope"),
                          VsphereError("no snapshot nope"))

    async def test_a_missing_folder_is_an_error(self) -> None:
        await self.failed("inventory", self.vsphere.inventory("Pools/nope"),
                          VsphereError("no folder Pools/nope"))
