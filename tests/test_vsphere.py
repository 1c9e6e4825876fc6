"""
Tests of :mod:`vmpoolerd.vsphere`: its pure helpers, and the client against
govmomi's vSphere simulator (``tests/vcsim``), one simulator per test.

The client is synchronous; the tests call it directly.
"""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, cast

from pyVmomi import SoapStubAdapter, vim, vmodl
from twisted.trial.unittest import SynchronousTestCase, TestCase

from .vcsim_server import inventory, start_vcsim
from .waiting import wait_for
from vmpoolerd.vsphere import client as vsphere
from vmpoolerd.vsphere.collector import FIRST_POLL, Collector
from vmpoolerd.vsphere.inventory import Inventory
from vmpoolerd.vsphere.client import (
    HostState,
    LoginFailed,
    NoHostAvailable,
    NotFound,
    VsphereClient,
    VsphereTimeout,
    VsphereUnavailable,
    build_annotation,
    pick_host,
    split_path,
)
from vmpoolerd.vsphere.pyvmomi_adapter import moid

TEMPLATE = "Templates/debian/debian-7-x86_64"  # a real VM template
PLAIN = "Templates/centos-7-plain"  # a plain VM used as a template
FOLDER = "Pools/debian-7"
NESTED = "Pools/nested/centos-7"
DS = "LocalDS_0"


def host(
    name: str, cpu: int | None = 1000, mem: int | None = 1000, vms: int = 0, **kw: Any
) -> HostState:
    return HostState(
        name=name,
        connected=kw.get("connected", True),
        maintenance=kw.get("maintenance", False),
        cpu_usage=cpu,
        cpu_capacity=10000,
        memory_usage=mem,
        memory_capacity=10000,
        vm_count=vms,
    )


class PureHelperTests(SynchronousTestCase):
    def test_split_path(self) -> None:
        self.assertEqual(split_path("Templates/debian/x"), ["Templates", "debian", "x"])
        self.assertEqual(split_path("/Pools/a/"), ["Pools", "a"])
        self.assertEqual(split_path(""), [])
        self.assertEqual(split_path("/"), [])
        self.assertRaises(ValueError, split_path, "Pools//a")

    def test_pick_host_least_utilised(self) -> None:
        hosts = [
            host("a", 5000, 1000, vms=1),
            host("b", 1000, 2000, vms=9),
            host("c", 2000, 2000, vms=0),
        ]
        self.assertEqual(pick_host(hosts).name, "b")

    def test_pick_host_skips_unhealthy(self) -> None:
        hosts = [
            host("a", 0, 0, maintenance=True),
            host("b", 0, 0, connected=False),
            host("c", 9000, 9000),
        ]
        self.assertEqual(pick_host(hosts).name, "c")

    def test_pick_host_ties_broken_by_vm_count_then_name(self) -> None:
        self.assertEqual(
            pick_host([host("a", vms=3), host("b", vms=1), host("c", vms=1)]).name, "b"
        )

    def test_pick_host_falls_back_to_vm_count(self) -> None:
        hosts = [host("a", None, None, vms=4), host("b", 9000, 9000, vms=2), host("c", 0, 0, vms=3)]
        self.assertEqual(pick_host(hosts).name, "b")

    def test_pick_host_none_healthy(self) -> None:
        self.assertRaises(NoHostAvailable, pick_host, [host("a", maintenance=True)])
        self.assertRaises(NoHostAvailable, pick_host, [])

    def test_utilisation(self) -> None:
        self.assertEqual(host("a", 2500, 5000).utilisation, 75.0)
        self.assertIsNone(host("a", None, 5000).utilisation)
        self.assertIsNone(HostState("x", True, False, 1, 0, 1, 0).utilisation)

    def test_build_annotation(self) -> None:
        when = datetime.datetime(
            2024, 3, 1, 13, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
        )
        self.assertEqual(
            json.loads(build_annotation("abcdefghijklmno", "vmpooler", "Templates/debian-7", when)),
            {
                "name": "abcdefghijklmno",
                "created_by": "vmpooler",
                "base_template": "Templates/debian-7",
                "creation_timestamp": "2024-03-01 11:04:05 UTC",
            },
        )

    def test_errors_are_vsphere_errors(self) -> None:
        errors = (NotFound, VsphereTimeout, VsphereUnavailable, LoginFailed, NoHostAvailable)
        for error in errors:
            self.assertTrue(issubclass(error, vsphere.VsphereError))
        self.assertTrue(issubclass(vsphere.TaskFailed, vsphere.VsphereError))
        self.assertTrue(issubclass(NotFound, LookupError))


class FolderReadTests(SynchronousTestCase):
    """What :meth:`Inventory.inventories` makes of an answer the simulator never gives."""

    def test_a_folder_missing_from_the_answer_is_not_empty(self) -> None:
        folder, vm = vim.Folder("group-v9"), vim.VirtualMachine("vm-1")
        content = vmodl.query.PropertyCollector.ObjectContent
        answer = [content(obj=vm, propSet=[vmodl.DynamicProperty(name="name", val="a")])]

        class Lookups:
            def folder(self, path: str, dc: str | None) -> Any:
                return folder

        class Answering:  # a collector whose every answer is ``answer``
            def retrieve(self, spec: Any) -> list[Any]:
                return answer

        inventory = Inventory(cast(Any, Answering()), cast(Any, Lookups()))
        (read,) = inventory.inventories(["Pools/x"], None)
        self.assertIsInstance(read, vsphere.VsphereError)
        self.assertNotIsInstance(read, NotFound)
        self.assertIn("'Pools/x' was not read", str(read))
        children = cast(Any, vim.ManagedEntity).Array([vm])
        answer.append(content(obj=folder, propSet=[
            vmodl.DynamicProperty(name="childEntity", val=children)]))
        (read,) = inventory.inventories(["Pools/x"], None)
        self.assertEqual([vm.name for vm in cast(list, read)], ["a"])


class TaskWaitTests(SynchronousTestCase):
    """:meth:`Collector.wait` against a task read from a script (no server)."""

    def test_a_task_is_first_read_after_a_pause_then_less_often(self) -> None:
        happened: list[Any] = []
        states = iter(["running", "running", "running", "success"])

        class Reading(Collector):
            def props(self, obj: Any, *paths: str) -> dict[str, Any]:
                happened.append("read")
                return {"info.state": next(states), "info.result": "vm-9"}

        collector = Reading(cast(Any, None), task_timeout=60, sleep=happened.append)
        self.assertEqual(collector.wait(vim.Task("task-1"), result=True), "vm-9")
        self.assertEqual(happened, [FIRST_POLL, "read", 2 * FIRST_POLL, "read",
                                    4 * FIRST_POLL, "read", 8 * FIRST_POLL, "read"])


class SimulatorTestCase(TestCase):
    inventory: dict[str, Any] = inventory()

    def setUp(self) -> None:
        self.sim = start_vcsim(self.inventory, self)
        self.client = self.sim.client()
        self.addCleanup(self.client.close)

    def names(self, folder: str = FOLDER) -> list[str]:
        return [vm.name for vm in self.client.inventory(folder)]

    def state(self, name: str, folder: str = FOLDER) -> vsphere.VmState:
        return {vm.name: vm for vm in self.client.inventory(folder)}[name]

    def raw(self, folder: str, name: str, *paths: str) -> dict[str, Any]:
        """Properties read behind the client's back (for checks only)."""
        return self.client.collector.props(self.client.lookups.vm(folder, name, None), *paths)


class InventoryTests(SimulatorTestCase):
    inventory = inventory(
        vms=[
            {"folder": FOLDER, "names": ["on-vm"], "power_on": True},
            {"folder": FOLDER, "names": ["off-vm"]},
            {"folder": "Pools/small", "count": 3, "prefix": "s", "power_on": True},
            {"folder": "Pools/big", "count": 30, "prefix": "b", "power_on": True},
        ],
        guest_ip="127.0.0.5",
    )

    def test_fields(self) -> None:
        on = wait_for(
            "guest hostname", lambda: self.state("on-vm").hostname and self.state("on-vm")
        )
        self.assertEqual(on.power_state, "poweredOn")
        self.assertTrue(on.powered_on)
        self.assertEqual(on.hostname, "on-vm")
        self.assertEqual(on.ip, "127.0.0.5")
        self.assertIsInstance(on.boot_time, datetime.datetime)
        self.assertFalse(on.template)
        self.assertTrue(on.moid.startswith("vm-"))
        off = self.state("off-vm")
        self.assertEqual(off.power_state, "poweredOff")
        self.assertEqual((off.hostname, off.ip, off.boot_time), (None, None, None))
        self.assertFalse(off.powered_on)

    def test_one_round_trip_per_folder(self) -> None:
        self.client.inventory(FOLDER)  # log in, find the datacenter and folder
        before = self.client.round_trips
        self.assertEqual(self.names(), ["off-vm", "on-vm"])
        self.assertEqual(self.client.round_trips - before, 1)

    def test_round_trips_flat_as_vms_grow(self) -> None:
        self.client.inventory("Pools/small")
        self.client.inventory("Pools/big")
        costs = {}
        for folder in ("Pools/small", "Pools/big"):
            before = self.client.round_trips
            vms = self.client.inventory(folder)
            costs[len(vms)] = self.client.round_trips - before
        self.assertEqual(costs, {3: 1, 30: 1})

    def test_many_folders_in_one_round_trip(self) -> None:
        folders = [FOLDER, "Pools/small", "Pools/big", "Pools", "Pools/nope", FOLDER]
        alone = {folder: self.client.inventory(folder) for folder in folders
                 if folder != "Pools/nope"}  # also finds the folders
        before = self.client.round_trips
        read = self.client.inventories(folders)
        # the unknown folder's lookup (Pools, then nope: not cached), then one read
        self.assertEqual(self.client.round_trips - before, 3)
        self.assertEqual(len(read), len(folders))
        for folder, vms in zip(folders, read):
            if folder == "Pools/nope":
                self.assertIsInstance(vms, NotFound)
            else:  # the same VMs (their guest facts may have come meanwhile)
                self.assertEqual([(vm.name, vm.moid, vm.power_state) for vm in vms],
                                 [(vm.name, vm.moid, vm.power_state) for vm in alone[folder]],
                                 folder)
        self.assertEqual([len(vms) for vms in read if isinstance(vms, list)], [2, 3, 30, 0, 2])

    def test_many_folders_one_made_again(self) -> None:
        self.client.inventories(["Pools/small", FOLDER])  # their references are cached
        folder = self.client.lookups.folder("Pools/small", None)
        for vm in self.client.inventory("Pools/small"):
            self.client.destroy("Pools/small", vm.name)
        self.client.collector.wait(folder.Destroy_Task())
        self.client.lookups.folder("Pools", None).CreateFolder("small")
        small, debian = self.client.inventories(["Pools/small", FOLDER])
        self.assertEqual((small, [vm.name for vm in debian]), ([], ["off-vm", "on-vm"]))

    def test_no_folder_found_reads_nothing(self) -> None:
        self.client.inventory(FOLDER)  # log in, find the datacenter
        (read,) = self.client.inventories(["Pools/nope"])
        self.assertIsInstance(read, NotFound)
        before = self.client.round_trips
        self.assertEqual(self.client.inventories([]), [])
        self.assertEqual(self.client.round_trips, before)

    def test_only_direct_children(self) -> None:
        self.assertEqual(self.names("Pools"), [])
        self.assertEqual(self.names("Pools/nested"), [])

    def test_templates_are_flagged(self) -> None:
        found = [(vm.name, vm.template) for vm in self.client.inventory("Templates/debian")]
        self.assertEqual(found, [("debian-7-x86_64", True)])

    def test_unknown_folder(self) -> None:
        self.assertRaises(NotFound, self.client.inventory, "Pools/nope")
        self.assertRaises(
            NotFound, self.client.inventory, "Pools/debian-7/on-vm"
        )  # a VM, not a folder

    def test_folder_made_again(self) -> None:
        self.client.inventory("Pools/small")  # its reference is cached
        folder = self.client.lookups.folder("Pools/small", None)
        for vm in self.client.inventory("Pools/small"):
            self.client.destroy("Pools/small", vm.name)
        self.client.collector.wait(folder.Destroy_Task())
        again = self.client.lookups.folder("Pools", None).CreateFolder("small")
        self.assertNotEqual(moid(again), moid(folder))
        self.assertEqual(self.client.inventory("Pools/small"), [])  # stale reference: found again
        self.client.collector.wait(again.Destroy_Task())
        self.assertRaises(NotFound, self.client.inventory, "Pools/small")

    def test_folders_are_read_together(self) -> None:
        # Note [Folders read together]
        lookups = self.client.lookups
        lookups.forget()
        children = []
        child = lookups._child

        def counted(parent: Any, name: str) -> Any:
            children.append(name)
            return child(parent, name)
        self.patch(lookups, "_child", counted)
        self.assertEqual(len(self.client.inventory("Pools/small")), 3)
        self.assertEqual(len(self.client.inventory("Pools/big")), 30)
        self.assertEqual(self.names(), ["off-vm", "on-vm"])
        self.assertEqual(children, [])  # one read of every folder, no walk
        later = lookups.folder("Pools", None).CreateFolder("later")
        self.addCleanup(lambda: self.client.collector.wait(later.Destroy_Task()))
        self.assertEqual(self.client.inventory("Pools/later"), [])  # made since: walked
        self.assertEqual(children, ["Pools", "later"])
        self.assertRaises(NotFound, self.client.inventory, "Pools/nope")
        self.assertRaises(NotFound, self.client.inventory, "Pools/debian-7/on-vm")

    def test_unknown_datacenter(self) -> None:
        client = self.sim.client(datacenter="nope")
        self.addCleanup(client.close)
        self.assertRaises(NotFound, client.inventory, FOLDER)
        named = self.sim.client(datacenter="dc1")
        self.addCleanup(named.close)
        self.assertEqual(len(named.inventory(FOLDER)), 2)


class CloneTests(SimulatorTestCase):
    inventory = inventory(
        host_usage=[
            {"cpu": 4000, "memory": 3000},
            {"cpu": 100, "memory": 300},
            {"cpu": 2000, "memory": 500},
        ],
        boot_delay_ms=600,
    )

    def test_clone_template_into_nested_folder_with_pool(self) -> None:
        seconds = self.client.clone(
            TEMPLATE, NESTED, DS, "abcdefghijklmno", resource_pool="cluster1/pooler"
        )
        self.assertGreater(seconds, 0)
        vm = self.state("abcdefghijklmno", NESTED)
        self.assertEqual(vm.power_state, "poweredOn")
        props = self.raw(NESTED, "abcdefghijklmno", "resourcePool", "config.extraConfig")
        pool = self.client.collector.props(props["resourcePool"], "name")
        self.assertEqual(pool["name"], "pooler")
        extra = {o.key: o.value for o in props["config.extraConfig"]}
        self.assertEqual(extra["guestinfo.hostname"], "abcdefghijklmno")

    def test_clone_plain_vm(self) -> None:
        self.client.clone(PLAIN, FOLDER, DS, "plain1", extra_config={"guestinfo.extra": "x"})
        self.assertEqual(self.state("plain1").power_state, "poweredOn")
        options = self.raw(FOLDER, "plain1", "config.extraConfig")["config.extraConfig"]
        extra = {o.key: o.value for o in options}
        self.assertEqual((extra["guestinfo.hostname"], extra["guestinfo.extra"]), ("plain1", "x"))

    def test_clone_template_without_pool_uses_its_cluster(self) -> None:
        self.client.clone(TEMPLATE, FOLDER, DS, "nopool")
        pool = self.raw(FOLDER, "nopool", "resourcePool")["resourcePool"]
        self.assertEqual(self.client.collector.props(pool, "name")["name"], "Resources")

    def test_a_templates_pool_is_read_once_and_again_after_a_failed_clone(self) -> None:
        # Note [Placement remembered]
        reads = []
        props = self.client.collector.props

        def counted(ref: Any, *paths: str) -> Any:
            if "config.template" in paths:
                reads.append(moid(ref))
            return props(ref, *paths)
        self.patch(self.client.collector, "props", counted)
        self.client.clone(TEMPLATE, FOLDER, DS, "once1")
        self.client.clone(TEMPLATE, FOLDER, DS, "once2")
        self.assertEqual(len(reads), 1)
        cloner = self.client._cloner
        start = cloner._start

        def failing(*args: Any) -> Any:  # as a clone into a cluster that cannot take it
            cloner._start = start
            raise vsphere.TaskFailed("the clone failed", None)
        cloner._start = failing
        with self.assertRaises(vsphere.TaskFailed):
            self.client.clone(TEMPLATE, FOLDER, DS, "once3")
        self.assertEqual(len(reads), 1)
        self.client.clone(TEMPLATE, FOLDER, DS, "once3")
        self.assertEqual(len(reads), 2)
        pool = self.raw(FOLDER, "once3", "resourcePool")["resourcePool"]
        self.assertEqual(self.client.collector.props(pool, "name")["name"], "Resources")

    def test_guest_reports_name_after_boot_delay(self) -> None:
        started = time.monotonic()
        self.client.clone(TEMPLATE, FOLDER, DS, "booting", resource_pool="cluster1")
        vm = self.state("booting")
        self.assertEqual((vm.power_state, vm.hostname), ("poweredOn", None))
        self.assertIsNotNone(vm.boot_time)
        booted = wait_for("guest hostname", lambda: self.state("booting").hostname)
        self.assertGreaterEqual(time.monotonic() - started, 0.6)
        self.assertEqual(booted, "booting")
        self.assertEqual(self.state("booting").ip, "127.0.0.1")

    def test_clone_target_picks_least_loaded_host(self) -> None:
        self.assertEqual(self.client.least_loaded_host("cluster1").name, "DC0_C0_H1")
        hosts = {h.name: h for h in self.client.hosts("cluster1")}
        self.assertEqual(len(hosts), 3)
        self.assertEqual(hosts["DC0_C0_H1"].cpu_usage, 100)
        self.assertGreater(hosts["DC0_C0_H1"].cpu_capacity, 0)

        # The simulator places a clone on its template's host whatever the
        # spec says, so look at the spec the client sends.
        sent = []
        invoke = SoapStubAdapter.InvokeMethod

        def spy(stub, mo, info, args, outerStub=None):
            if info.wsdlName == "CloneVM_Task":
                sent.append(args[2])
            return invoke(stub, mo, info, args, outerStub)

        self.patch(SoapStubAdapter, "InvokeMethod", spy)
        self.client.clone(TEMPLATE, FOLDER, DS, "targeted", clone_target="cluster1")
        self.assertEqual(moid(sent[0].location.host), hosts["DC0_C0_H1"].moid)
        pool = self.client.collector.props(sent[0].location.pool, "name")
        self.assertEqual(pool["name"], "Resources")
        self.assertTrue(sent[0].powerOn)
        self.assertEqual(json.loads(sent[0].config.annotation)["name"], "targeted")
        self.assertEqual(self.state("targeted").power_state, "poweredOn")

        # Out of maintenance and connected only.
        def maintenance(name: str) -> None:
            ref = vim.HostSystem(hosts[name].moid, self.client.session.stub)
            self.client.collector.wait(ref.EnterMaintenanceMode_Task(timeout=0))

        maintenance("DC0_C0_H1")
        self.assertEqual(self.client.least_loaded_host("cluster1").name, "DC0_C0_H2")
        maintenance("DC0_C0_H0")
        maintenance("DC0_C0_H2")
        with self.assertRaises(NoHostAvailable):
            self.client.clone(TEMPLATE, FOLDER, DS, "no", clone_target="cluster1")

    def test_clone_errors(self) -> None:
        self.assertRaises(NotFound, self.client.clone, "Templates/nope", FOLDER, DS, "x")
        self.assertRaises(NotFound, self.client.clone, TEMPLATE, "Pools/nope", DS, "x")
        self.assertRaises(NotFound, self.client.clone, TEMPLATE, FOLDER, "nope", "x")
        self.assertRaises(
            NotFound, self.client.clone, TEMPLATE, FOLDER, DS, "x", resource_pool="cluster1/no"
        )
        self.assertRaises(
            NotFound, self.client.clone, TEMPLATE, FOLDER, DS, "x", clone_target="nope"
        )
        self.assertEqual(self.names(), [])

    def test_clone_delay(self) -> None:
        sim = start_vcsim(self.inventory, self, clone_delay_ms=400)
        client = sim.client()
        self.addCleanup(client.close)
        self.assertGreaterEqual(
            client.clone(TEMPLATE, FOLDER, DS, "slow", resource_pool="cluster1"), 0.4
        )

    def test_concurrent_clones(self) -> None:
        names = [f"par{i}" for i in range(8)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: self.client.clone(PLAIN, FOLDER, DS, n), names))
        self.assertEqual(self.names(), sorted(names))


class VmOperationTests(SimulatorTestCase):
    inventory = inventory(vms=[{"folder": FOLDER, "names": ["vm1", "vm2"], "power_on": True}])

    def test_power_off_and_on(self) -> None:
        wait_for("guest hostname", lambda: self.state("vm1").hostname)
        self.assertTrue(self.client.power_off(FOLDER, "vm1"))
        self.assertFalse(self.client.power_off(FOLDER, "vm1"))
        self.assertEqual(self.state("vm1").power_state, "poweredOff")
        wait_for("guest hostname gone", lambda: self.state("vm1").hostname is None)
        self.assertTrue(self.client.power_on(FOLDER, "vm1"))
        self.assertFalse(self.client.power_on(FOLDER, "vm1"))
        wait_for("guest hostname back", lambda: self.state("vm1").hostname == "vm1")

    def test_destroy(self) -> None:
        self.assertTrue(self.client.destroy(FOLDER, "vm1"))  # powered on: powered off first
        self.assertEqual(self.names(), ["vm2"])
        self.assertFalse(self.client.destroy(FOLDER, "vm1"))
        self.client.clone(PLAIN, FOLDER, DS, "fresh")
        self.client.power_off(FOLDER, "fresh")
        self.assertTrue(self.client.destroy(FOLDER, "fresh"))
        self.assertEqual(self.names(), ["vm2"])

    def test_vm_state(self) -> None:
        self.assertEqual(self.client.vm_state(FOLDER, "vm2").power_state, "poweredOn")
        self.assertRaises(NotFound, self.client.vm_state, FOLDER, "nope")
        self.assertRaises(NotFound, self.client.power_off, FOLDER, "nope")

    def test_add_disk(self) -> None:
        before = self.client.disks(FOLDER, "vm1")
        self.assertEqual([d.capacity_kb for d in before], [1024])
        self.client.add_disk(FOLDER, "vm1", 8)
        self.client.add_disk(FOLDER, "vm1", 4, datastore=DS)
        after = self.client.disks(FOLDER, "vm1")
        self.assertEqual([d.capacity_kb for d in after], [1024, 8 * 1024 * 1024, 4 * 1024 * 1024])
        self.assertEqual(after[1].size_gb, 8)
        self.assertIn(DS, after[1].file_name)
        self.assertEqual(len(self.client.disks(FOLDER, "vm2")), 1)
        self.assertRaises(ValueError, self.client.add_disk, FOLDER, "vm1", 0)

    def test_snapshots(self) -> None:
        self.assertEqual(self.client.snapshots(FOLDER, "vm1"), [])
        self.client.create_snapshot(FOLDER, "vm1", "aaaa")
        self.client.create_snapshot(FOLDER, "vm1", "bbbb", description="second")
        self.assertEqual(self.client.snapshots(FOLDER, "vm1"), ["aaaa", "bbbb"])
        self.client.revert_snapshot(FOLDER, "vm1", "aaaa")
        tree = self.raw(FOLDER, "vm1", "snapshot")["snapshot"]
        self.assertEqual(moid(tree.currentSnapshot), moid(tree.rootSnapshotList[0].snapshot))
        self.assertRaises(NotFound, self.client.revert_snapshot, FOLDER, "vm1", "cccc")
        self.assertEqual(self.client.snapshots(FOLDER, "vm2"), [])


class SessionTests(SimulatorTestCase):
    inventory = inventory(vms=[{"folder": FOLDER, "names": ["vm1"], "power_on": True}])

    def test_lazy_login(self) -> None:
        self.assertEqual(self.client.round_trips, 0)
        self.assertIsNone(self.client.session_key)
        self.client.inventory(FOLDER)
        self.assertIsNotNone(self.client.session_key)

    def test_relogin_after_session_terminated(self) -> None:
        self.client.inventory(FOLDER)
        key = self.client.session_key
        other = self.sim.client()
        self.addCleanup(other.close)
        other.inventory(FOLDER)
        other.session.content.sessionManager.TerminateSession([key])
        self.assertTrue(self.client.power_off(FOLDER, "vm1"))
        self.assertNotEqual(self.client.session_key, key)
        self.assertEqual(self.state("vm1").power_state, "poweredOff")

    def test_relogin_after_logout(self) -> None:
        # The simulator answers reads without a session with a missingSet
        # of NotAuthenticated rather than a fault: handled the same way.
        self.client.inventory(FOLDER)
        self.client.session.content.sessionManager.Logout()
        before = self.client.round_trips
        self.assertEqual(self.names(), ["vm1"])
        self.assertEqual(self.client.round_trips - before, 3)  # refused, login, again
        self.assertTrue(self.client.power_off(FOLDER, "vm1"))

    def test_relogin_after_idle_expiry(self) -> None:
        sim = start_vcsim(self.inventory, self, session_idle="200ms")
        client = sim.client()
        self.addCleanup(client.close)
        client.inventory(FOLDER)
        key = client.session_key
        # Real time, on purpose: the simulator's own idle expiry is what is
        # tested (VcsimServer.end_sessions ends a session without waiting).
        time.sleep(0.6)
        self.assertTrue(client.power_off(FOLDER, "vm1"))
        self.assertNotEqual(client.session_key, key)

    def test_concurrent_relogin(self) -> None:
        self.client.inventory(FOLDER)
        self.client.session.content.sessionManager.Logout()
        barrier = threading.Barrier(6)

        def read(_: int) -> list[str]:
            barrier.wait()
            return self.names()

        with ThreadPoolExecutor(6) as pool:
            self.assertEqual(list(pool.map(read, range(6))), [["vm1"]] * 6)

    def test_resend_on_connection_closed_by_server(self) -> None:
        # The server closes idle keep-alive connections (as vCenter's proxy
        # does); the pooled connection fails on reuse and the request is sent
        # again on a new one, even a clone.
        sim = start_vcsim(inventory(idle_timeout="200ms"), self)
        client = sim.client()
        self.addCleanup(client.close)
        client.inventory(FOLDER)
        # Real time: the server's idle timeout closes the pooled connection.
        time.sleep(0.5)
        before = client.round_trips
        self.assertEqual(client.inventory(FOLDER), [])
        self.assertEqual(client.round_trips - before, 2)
        time.sleep(0.5)
        client.clone(PLAIN, FOLDER, DS, "after-idle")
        self.assertEqual([vm.name for vm in client.inventory(FOLDER)], ["after-idle"])

    def test_bad_login(self) -> None:
        client = VsphereClient(self.sim.host, "vmpooler", "", port=self.sim.port, insecure=True)
        self.addCleanup(client.close)
        self.assertRaises(LoginFailed, client.inventory, FOLDER)

    def test_tls_verified_by_default(self) -> None:
        client = VsphereClient(self.sim.host, "u", "p", port=self.sim.port, timeout=5)
        self.addCleanup(client.close)
        error = self.assertRaises(VsphereUnavailable, client.inventory, FOLDER)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(error))

    def test_unreachable(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        client = VsphereClient("127.0.0.1", "u", "p", port=port, insecure=True, timeout=2)
        self.assertRaises(VsphereUnavailable, client.inventory, FOLDER)

    def test_hung_vcenter_times_out_then_recovers(self) -> None:
        client = self.sim.client(timeout=1)
        self.addCleanup(client.close)
        client.inventory(FOLDER)
        self.sim.hang()
        started = time.monotonic()
        self.assertRaises(VsphereTimeout, client.inventory, FOLDER)
        self.assertLess(time.monotonic() - started, 3)
        self.sim.resume()
        self.assertEqual([vm.name for vm in client.inventory(FOLDER)], ["vm1"])

    def test_hung_vcenter_before_login(self) -> None:
        self.sim.hang()
        client = self.sim.client(timeout=1)
        self.addCleanup(client.close)
        self.assertRaises(VsphereTimeout, client.inventory, FOLDER)
        self.sim.resume()
        self.assertEqual(len(client.inventory(FOLDER)), 1)

    def test_close_logs_out(self) -> None:
        self.client.inventory(FOLDER)
        other = self.sim.client()
        self.addCleanup(other.close)
        other.inventory(FOLDER)
        sessions = lambda: len(other.session.content.sessionManager.sessionList)  # noqa: E731
        self.assertEqual(sessions(), 2)
        self.client.close()
        self.assertEqual(sessions(), 1)
        self.assertEqual(self.names(), ["vm1"])  # usable again: logs in anew


class LoginGuardTests(SimulatorTestCase):
    """Note [Logins under the lock] (vmpoolerd/vsphere/session.py): a login
    refused as unauthenticated fails the call; it does not deadlock trying
    to log in again under the lock its own thread holds."""

    inventory = inventory(vms=[{"folder": FOLDER, "names": ["vm1"]}])

    def setUp(self) -> None:
        self.sim = start_vcsim(self.inventory, self)
        self.client = self.sim.client()
        # Closed in a thread of its own: a deadlocked login holds the lock close takes.
        self.addCleanup(lambda: threading.Thread(target=self.client.close, daemon=True).start())

    def refuse_logins(self) -> list[str]:
        refused: list[str] = []
        invoke = SoapStubAdapter.InvokeMethod

        def refusing(stub: Any, mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:
            if info.wsdlName == "Login":
                refused.append(threading.current_thread().name)
                raise vim.fault.NotAuthenticated()
            return invoke(stub, mo, info, args, outerStub)

        self.patch(SoapStubAdapter, "InvokeMethod", refusing)
        return refused

    def outcome(self, call: Callable[[], Any]) -> BaseException | None:
        """What ``call`` raised in another thread, which must end within 10 s."""
        raised: list[BaseException | None] = []

        def run() -> None:
            try:
                call()
                raised.append(None)
            except BaseException as e:  # noqa: BLE001 (handed to the test)
                raised.append(e)

        thread = threading.Thread(target=run, daemon=True)  # a deadlock is left behind
        thread.start()
        thread.join(10)
        self.assertFalse(thread.is_alive(), "deadlocked")
        return raised[0]

    def test_a_refused_first_login_fails_the_call(self) -> None:
        refused = self.refuse_logins()
        error = self.outcome(lambda: self.client.inventory(FOLDER))
        self.assertIsInstance(error, vsphere.VsphereError)
        self.assertIsInstance(getattr(error, "fault", None), vim.fault.NotAuthenticated)
        self.assertEqual(len(refused), 1)

    def test_a_refused_login_again_fails_the_call(self) -> None:
        self.client.inventory(FOLDER)
        self.client.session.content.sessionManager.Logout()
        refused = self.refuse_logins()
        error = self.outcome(lambda: self.client.inventory(FOLDER))
        self.assertIsInstance(getattr(error, "fault", None), vim.fault.NotAuthenticated)
        self.assertEqual(len(refused), 1)

    def test_the_guard_ends_with_the_login(self) -> None:
        def log_in_lose_and_read() -> None:
            self.client.inventory(FOLDER)  # logs in, in this thread
            self.client.session.content.sessionManager.Logout()
            self.assertEqual(self.names(), ["vm1"])  # refused, logged in again, sent again

        self.assertIsNone(self.outcome(log_in_lose_and_read))
