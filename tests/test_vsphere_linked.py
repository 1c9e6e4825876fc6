"""
Linked clones, against the simulator.  govmomi's simulator makes full
copies whatever the spec says (it clears the disks' parents), so the tests
look at the spec the client sends and at the template's snapshots.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from twisted.trial.unittest import TestCase

from vmpoolerd.vsphere.client import BASE_SNAPSHOT, VsphereClient
from vmpoolerd.vsphere.pyvmomi_adapter import moid

from .vcsim_server import inventory, start_vcsim

PLAIN_FOLDER, PLAIN = "Templates", "centos-7-plain"
TEMPLATE = f"{PLAIN_FOLDER}/{PLAIN}"
FOLDER, DS = "Pools/debian-7", "LocalDS_0"


class RecordingClient(VsphereClient):
    """A client that keeps the clone specs it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.specs: list[Any] = []

    def _clone_task(self, source: Any, folder: Any, name: str, spec: Any) -> Any:
        self.specs.append(spec)
        return super()._clone_task(source, folder, name, spec)


class LinkedCloneTests(TestCase):
    # Snapshots take a while, so that two daemons can both find none.
    inventory = inventory(method_delay_ms={"CreateSnapshot_Task": 300})

    def setUp(self) -> None:
        self.sim = start_vcsim(self.inventory, self)
        self.client = self.recording()

    def recording(self) -> RecordingClient:
        client = RecordingClient(self.sim.host, self.sim.username, self.sim.password,
                                 port=self.sim.port, insecure=True, timeout=10)
        self.addCleanup(client.close)
        return client

    def current_snapshot(self) -> str:
        vm = self.client.lookups.template(TEMPLATE, None)
        return moid(self.client.collector.props(vm, "snapshot")["snapshot"].currentSnapshot)

    def test_a_template_without_snapshot_gets_one_once(self) -> None:
        self.client.clone(TEMPLATE, FOLDER, DS, "linked-1", linked=True)
        self.client.clone(TEMPLATE, FOLDER, DS, "linked-2", linked=True)
        self.assertEqual(self.client.snapshots(PLAIN_FOLDER, PLAIN), [BASE_SNAPSHOT])
        base = self.current_snapshot()
        for spec in self.client.specs:
            self.assertEqual(spec.location.diskMoveType, "createNewChildDiskBacking")
            self.assertEqual(moid(spec.snapshot), base)
        self.assertEqual({vm.name for vm in self.client.inventory(FOLDER)},
                         {"linked-1", "linked-2"})

    def test_the_current_snapshot_is_used(self) -> None:
        self.client.create_snapshot(PLAIN_FOLDER, PLAIN, "golden")
        current = self.current_snapshot()
        self.client.clone(TEMPLATE, FOLDER, DS, "linked", linked=True)
        self.assertEqual(self.client.snapshots(PLAIN_FOLDER, PLAIN), ["golden"])
        self.assertEqual(moid(self.client.specs[0].snapshot), current)

    def test_a_full_clone_is_not_linked(self) -> None:
        self.client.clone(TEMPLATE, FOLDER, DS, "full")
        spec = self.client.specs[0]
        self.assertIsNone(spec.snapshot)
        self.assertIsNone(spec.location.diskMoveType)
        self.assertEqual(self.client.snapshots(PLAIN_FOLDER, PLAIN), [])

    def test_two_daemons_racing_leave_one_base(self) -> None:
        other = self.recording()
        with ThreadPoolExecutor(2) as pool:
            done = [pool.submit(client.clone, TEMPLATE, FOLDER, DS, f"race-{i}", linked=True)
                    for i, client in enumerate((self.client, other))]
            for future in done:
                future.result()
        self.assertEqual(self.client.snapshots(PLAIN_FOLDER, PLAIN), [BASE_SNAPSHOT])
        base = self.current_snapshot()
        self.assertEqual([moid(c.specs[0].snapshot) for c in (self.client, other)],
                         [base, base])
