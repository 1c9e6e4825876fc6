"""Cloning a template: where the clone goes, its spec, and linked clones' base snapshot."""

from __future__ import annotations

import datetime
import json
import threading
import time
from typing import Any, Callable, Mapping

from pyVmomi import vim

from .collector import Collector
from .inventory import Inventory, pick_host
from .lookups import Lookups
from .pyvmomi_adapter import moid
from .types import TaskFailed
from .session import Session

__all__ = ["BASE_SNAPSHOT", "Cloner", "build_annotation"]

#: The snapshot made on a template that has none, for linked clones.
BASE_SNAPSHOT = "vmpoolerd-linked-clone-base"
#: Starts a clone task: (source, folder, name, spec) -> task.
StartClone = Callable[[Any, Any, str, Any], Any]


def build_annotation(name: str, created_by: str, template: str, created: datetime.datetime) -> str:
    """The VM annotation, as vmpooler writes it (JSON)."""
    if created.tzinfo is not None:
        created = created.astimezone(datetime.timezone.utc)
    return json.dumps(
        {
            "name": name,
            "created_by": created_by,
            "base_template": template,
            "creation_timestamp": created.strftime("%Y-%m-%d %H:%M:%S UTC"),
        },
        indent=2,
    )


class Cloner:
    """Clones templates (see :meth:`vmpoolerd.vsphere.client.VsphereClient.clone`)."""

    def __init__(self, session: Session, collector: Collector, lookups: Lookups,
                 inventory: Inventory, start: StartClone) -> None:
        self._session = session
        self._collector = collector
        self._lookups = lookups
        self._inventory = inventory
        self._start = start
        self._base_lock = threading.Lock()  # one base snapshot made at a time

    def clone(self, template: str, folder: str, datastore: str, name: str,
              resource_pool: str | None, clone_target: str | None, annotation: str | None,
              extra_config: Mapping[str, str] | None, dc: str | None, linked: bool) -> float:
        started = time.monotonic()
        source = self._lookups.template(template, dc)
        relocate = self._placement(source, datastore, resource_pool, clone_target, dc)
        if annotation is None:
            now = datetime.datetime.now(datetime.timezone.utc)
            annotation = build_annotation(name, self._session.username, template, now)
        options = {"guestinfo.hostname": name, **(extra_config or {})}
        snapshot = None
        if linked:
            snapshot = self._linked_base(source)
            relocate.diskMoveType = "createNewChildDiskBacking"
        spec = vim.vm.CloneSpec(
            location=relocate,
            snapshot=snapshot,
            powerOn=True,
            template=False,
            config=vim.vm.ConfigSpec(
                annotation=annotation,
                extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in options.items()],
            ),
        )
        try:
            task = self._start(source, self._lookups.folder(folder, dc), name, spec)
            clone = self._collector.wait(task, result=True)
        except TaskFailed:
            if not (resource_pool or clone_target):  # Note [Placement remembered]
                self._lookups.forget_template_pool(source)
            raise
        # A real vCenter honours powerOn; govmomi's simulator leaves the clone off.
        if self._collector.props(clone, "runtime.powerState")["runtime.powerState"] != "poweredOn":
            self._collector.wait(clone.PowerOnVM_Task())
        return time.monotonic() - started

    def _placement(self, source: Any, datastore: str, resource_pool: str | None,
                   clone_target: str | None, dc: str | None) -> Any:
        """Where the clone goes: ``datastore``, in ``resource_pool`` (else the
        root pool of ``clone_target``, else the template's own pool or, for
        a real template, the root pool of its host's cluster: Note
        [Placement remembered]), on the least-loaded healthy host of
        ``clone_target`` when given."""
        relocate = vim.vm.RelocateSpec(datastore=self._lookups.datastore(datastore, dc))
        if clone_target:
            _, root_pool = self._lookups.cluster(clone_target, dc)
            host = pick_host(self._inventory.hosts(clone_target, dc))
            relocate.host = vim.HostSystem(host.moid, self._session.stub)
            relocate.pool = root_pool
        if resource_pool:
            relocate.pool = self._lookups.resource_pool(resource_pool, dc)
        if relocate.pool is None:
            relocate.pool = self._lookups.template_pool(source)
        return relocate

    def _linked_base(self, source: Any) -> Any:
        """
        Note [Linked clones]: a linked clone's disks are children of its
        template's current snapshot's (``diskMoveType``
        ``createNewChildDiskBacking``), so the template must have one.  A
        template without one gets :data:`BASE_SNAPSHOT`, once: this client
        makes one at a time, and two daemons that both found none and both
        made one find out afterwards, each reading the template's snapshots:
        the one whose snapshot came second (a child of the first) removes its
        own and uses the first.  What remains is a window of one snapshot
        task in which another daemon may already clone from the second
        snapshot; its removal then fails, is logged in the clone's error,
        and the template keeps two base snapshots, both usable.  (vCenter
        refuses to snapshot a VM marked as template: convert it to a VM,
        snapshot it, and mark it again; or use a plain VM.)
        """
        with self._base_lock:
            info = self._collector.props(source, "snapshot").get("snapshot")
            if info is not None and info.currentSnapshot is not None:
                return info.currentSnapshot
            made = self._collector.wait(source.CreateSnapshot_Task(
                name=BASE_SNAPSHOT, description="the base of vmpoolerd's linked clones",
                memory=False, quiesce=False), result=True)
            bases = [n.snapshot for n in self._collector.snapshot_tree(source)
                     if n.name == BASE_SNAPSHOT]
            if bases and moid(bases[0]) != moid(made):
                self._collector.wait(made.RemoveSnapshot_Task(removeChildren=False))
                return bases[0]
            return made

