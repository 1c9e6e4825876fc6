"""
The interface tests of :class:`vmpoolerd.vsphere.types.Vsphere`, the
manager's view of vSphere: the real provider (on the simulator) and the
tests' in-memory vSphere (tests/fake_vsphere.py) must both pass them, so
that what a test learns from the fake holds for the real thing.

A case mixing :class:`VsphereContract` in sets ``self.vsphere`` in its
``setUp``, starting from :data:`tests.vcsim_server.DEFAULT_INVENTORY`;
every call is awaited as it comes, no answer is handed in.

Left out: cloning to a name already taken in the folder.  vCenter refuses
it (DuplicateName), and so does the fake; govmomi's simulator makes a
second VM of that name, so the contract cannot say which is right.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.vsphere.types import Entry, NotFound, VmState, Vsphere, VsphereError

# A mixin, so that trial does not run it on its own; typed as the case it joins.
if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase
    _Case = TestCase
else:
    _Case = object

TEMPLATE = "Templates/centos-7-plain"
REAL_TEMPLATE = "Templates/debian/debian-7-x86_64"
FOLDER = "Pools/debian-7"
NESTED = "Pools/nested/centos-7"
DATASTORE = "LocalDS_0"
NAME = "contract-vm"
METHODS = ("inventory", "clone", "destroy", "add_disk", "create_snapshot", "revert_snapshot",
           "contents", "remove_folder")


def signatures_match(case: SynchronousTestCase, vsphere: object) -> None:
    """``vsphere`` has every method of :class:`Vsphere`, with its parameters."""
    for method in METHODS:
        expected = inspect.signature(getattr(Vsphere, method))
        actual = inspect.signature(getattr(vsphere, method))
        case.assertEqual(list(actual.parameters.values()),
                         list(expected.parameters.values())[1:], method)


class VsphereContract(_Case):
    """Mixed into a TestCase whose ``setUp`` sets ``self.vsphere``."""

    vsphere: Vsphere

    def test_signatures(self) -> None:
        signatures_match(self, self.vsphere)

    async def test_a_clone_is_in_the_inventory_until_destroyed(self) -> None:
        seconds = await self.vsphere.clone(TEMPLATE, FOLDER, DATASTORE, NAME)
        self.assertIsInstance(seconds, float)
        vms = await self.vsphere.inventory(FOLDER)
        self.assertTrue(all(isinstance(vm, VmState) for vm in vms))
        self.assertEqual([vm.name for vm in vms], [NAME])
        self.assertTrue(vms[0].powered_on)
        self.assertFalse(vms[0].template)
        self.assertIs(await self.vsphere.destroy(FOLDER, NAME), True)
        self.assertEqual(await self.vsphere.inventory(FOLDER), [])
        self.assertIs(await self.vsphere.destroy(FOLDER, NAME), False)

    async def test_clones_by_name_in_their_own_folders(self) -> None:
        for name in ("b-vm", "a-vm"):
            await self.vsphere.clone(REAL_TEMPLATE, FOLDER, DATASTORE, name)
        await self.vsphere.clone(TEMPLATE, NESTED, DATASTORE, "c-vm")
        self.assertEqual([vm.name for vm in await self.vsphere.inventory(FOLDER)],
                         ["a-vm", "b-vm"])
        self.assertEqual([vm.name for vm in await self.vsphere.inventory(NESTED)], ["c-vm"])
        await self.vsphere.destroy(FOLDER, "a-vm")
        self.assertEqual([vm.name for vm in await self.vsphere.inventory(FOLDER)], ["b-vm"])

    async def test_the_inventory_is_one_folder_deep(self) -> None:
        vms = await self.vsphere.inventory("Templates")
        self.assertEqual([(vm.name, vm.template) for vm in vms], [("centos-7-plain", False)])
        vms = await self.vsphere.inventory("Templates/debian")
        self.assertEqual([(vm.name, vm.template) for vm in vms], [("debian-7-x86_64", True)])

    async def test_contents_at_any_depth(self) -> None:
        await self.vsphere.clone(TEMPLATE, NESTED, DATASTORE, NAME)
        self.assertEqual(await self.vsphere.contents("Pools"), [
            Entry("Pools/debian-7", True),
            Entry("Pools/nested", True),
            Entry("Pools/nested/centos-7", True),
            Entry(f"Pools/nested/centos-7/{NAME}", False),
        ])
        self.assertEqual(await self.vsphere.contents("Templates"), [
            Entry("Templates/centos-7-plain", False),
            Entry("Templates/debian", True),
            Entry("Templates/debian/debian-7-x86_64", False, template=True),
        ])

    async def test_only_an_empty_folder_is_removed(self) -> None:
        await self.vsphere.clone(TEMPLATE, NESTED, DATASTORE, NAME)
        self.assertIs(await self.vsphere.remove_folder(NESTED), False)
        self.assertIs(await self.vsphere.remove_folder("Pools/nested"), False)
        await self.vsphere.destroy(NESTED, NAME)
        self.assertIs(await self.vsphere.remove_folder(NESTED), True)
        self.assertIs(await self.vsphere.remove_folder(NESTED), False)  # gone already
        with self.assertRaises(NotFound):
            await self.vsphere.inventory(NESTED)
        self.assertEqual(await self.vsphere.contents("Pools/nested"), [])

    async def test_disks_and_snapshots(self) -> None:
        await self.vsphere.clone(TEMPLATE, FOLDER, DATASTORE, NAME)
        await self.vsphere.add_disk(FOLDER, NAME, 1)
        await self.vsphere.create_snapshot(FOLDER, NAME, "s1")
        await self.vsphere.revert_snapshot(FOLDER, NAME, "s1")
        with self.assertRaises(VsphereError):
            await self.vsphere.revert_snapshot(FOLDER, NAME, "nope")

    async def test_a_missing_vm_is_an_error(self) -> None:
        with self.assertRaises(NotFound):
            await self.vsphere.add_disk(FOLDER, NAME, 1)
        with self.assertRaises(NotFound):
            await self.vsphere.create_snapshot(FOLDER, NAME, "s1")
        with self.assertRaises(NotFound):
            await self.vsphere.revert_snapshot(FOLDER, NAME, "s1")

    async def test_a_missing_template_is_an_error(self) -> None:
        with self.assertRaises(NotFound):
            await self.vsphere.clone("Templates/nope", FOLDER, DATASTORE, NAME)
        self.assertEqual(await self.vsphere.inventory(FOLDER), [])

    async def test_a_missing_folder_is_an_error(self) -> None:
        with self.assertRaises(VsphereError):
            await self.vsphere.inventory("Pools/nope")
        with self.assertRaises(NotFound):
            await self.vsphere.clone(TEMPLATE, "Pools/nope", DATASTORE, NAME)
        with self.assertRaises(NotFound):
            await self.vsphere.contents("Pools/nope")
