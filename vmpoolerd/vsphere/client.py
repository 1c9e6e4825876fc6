"""
vSphere behind a small, synchronous interface (pyvmomi).

Everything here blocks: the daemon calls :class:`VsphereClient` methods
through ``deferToThreadPool`` on a bounded thread pool, never on the
reactor thread.  One client may be used by several threads at once.

The client is put together from parts, each in its module:

- session.py: the login (lazy, on the first call; again when the session
  is lost) and the one place every SOAP request is sent, counted and sent
  again as Note [Resend policy] (resend.py) says; Note [Logins under the
  lock] is the locking rule.
- collector.py: property reads and task waits.  No server-side view or
  filter is ever created; :meth:`VsphereClient.inventory` costs exactly one
  round trip per folder, and :meth:`VsphereClient.inventories` one for
  many folders, whatever the number of VMs.
- lookups.py: things found by path, cached (Note [Stale references]).
- inventory.py, clone.py, vm_operations.py: the operations.
- errors.py: what the caller sees: :class:`VsphereError` and its kinds.
- pyvmomi_adapter.py: what pyVmomi does not document, in one place.

Every SOAP request is bounded by a socket timeout (``timeout``), and every
task wait by ``task_timeout``.  ``round_trips`` counts SOAP requests
(logins included).  Every method that finds things by path takes a
``datacenter`` (keyword; default: the client's, else the first found), so
that one session serves pools in several datacenters of one vCenter.

The pure helpers (:func:`pick_host`, :func:`build_annotation`,
:func:`split_path`) need no server.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, Callable, Mapping, Sequence, TypeVar

from pyVmomi import vim, vmodl

from .clone import BASE_SNAPSHOT, Cloner, build_annotation
from .collector import Collector
from .errors import as_vsphere_error
from .inventory import Inventory, pick_host
from .lookups import Lookups, split_path
from .session import Session
from .types import (
    Disk,
    Entry,
    HostState,
    LoginFailed,
    NoHostAvailable,
    NotFound,
    TaskFailed,
    VmState,
    VsphereError,
    VsphereTimeout,
    VsphereUnavailable,
)
from .vm_operations import VmOperations

__all__ = [
    "BASE_SNAPSHOT",
    "Disk",
    "Entry",
    "HostState",
    "LoginFailed",
    "NoHostAvailable",
    "NotFound",
    "TaskFailed",
    "VmState",
    "VsphereClient",
    "VsphereError",
    "VsphereTimeout",
    "VsphereUnavailable",
    "build_annotation",
    "pick_host",
    "split_path",
]

T = TypeVar("T")


def _operation(method: Callable[..., T]) -> Callable[..., T]:
    """Log in first; run once more with the cache emptied if a cached
    reference turned out stale (Note [Stale references], lookups.py); raise
    only VsphereError (and the caller's own mistakes: ValueError)."""

    @functools.wraps(method)
    def wrapper(self: VsphereClient, *args: Any, **kwargs: Any) -> T:
        try:
            self.session.connect()
            try:
                return method(self, *args, **kwargs)
            except vmodl.fault.ManagedObjectNotFound:
                if not self.lookups.forget():
                    raise
                return method(self, *args, **kwargs)
        except Exception as error:
            told = as_vsphere_error(error, self.server, self.timeout)
            if told is error:
                raise
            raise told from error

    return wrapper


class VsphereClient:
    """A vCenter session, opened on first use and reopened when it is lost."""

    def __init__(
        self,
        server: str,
        username: str,
        password: str,
        port: int = 443,
        insecure: bool = False,
        datacenter: str | None = None,
        timeout: float = 30.0,
        task_timeout: float = 600.0,
        pool_size: int = 10,
    ):
        self.server = server
        self.username = username
        self.port = port
        self.insecure = insecure
        self.datacenter = datacenter
        self.timeout = timeout
        self.task_timeout = task_timeout
        self.session = Session(server, username, password, port=port, insecure=insecure,
                               timeout=timeout, pool_size=pool_size)
        self.collector = Collector(self.session, task_timeout)
        self.lookups = Lookups(self.session, self.collector, datacenter)
        self._inventory = Inventory(self.collector, self.lookups)
        self._vms = VmOperations(self.collector, self.lookups)
        self._cloner = Cloner(self.session, self.collector, self.lookups, self._inventory,
                              start=self._clone_task)

    def __repr__(self) -> str:
        return f"<VsphereClient {self.username}@{self.server}:{self.port}>"

    # -- session -------------------------------------------------------------

    @property
    def round_trips(self) -> int:
        """SOAP requests sent so far (logins and resends included)."""
        return self.session.round_trips

    @property
    def session_key(self) -> str | None:
        """The current session's key (one more round trip), or None if not logged in."""
        if not self.session.connected:
            return None
        current = self.session.content.sessionManager.currentSession
        return current.key if current else None

    def close(self) -> None:
        """Log out (best effort) and drop the connections; the next call logs in anew."""
        self.session.close()
        self.lookups.forget()

    def __enter__(self) -> VsphereClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clone_task(self, source: Any, folder: Any, name: str, spec: Any) -> Any:
        """Start the clone (apart, so that the tests can see the spec sent)."""
        return source.CloneVM_Task(folder=folder, name=name, spec=spec)

    # -- the interface ----------------------------------------------------------

    @_operation
    def ping(self) -> datetime.datetime:
        """vCenter's clock (one round trip, logging in first if need be)."""
        now: datetime.datetime = vim.ServiceInstance("ServiceInstance",
                                                     self.session.stub).CurrentTime()
        return now

    @_operation
    def inventory(self, folder: str, datacenter: str | None = None) -> list[VmState]:
        """The VMs directly in ``folder``, by name, in one round trip (once the folder is known)."""
        return self._inventory.inventory(folder, datacenter)

    @_operation
    def inventories(self, folders: Sequence[str], datacenter: str | None = None,
                    ) -> list[list[VmState] | VsphereError]:
        """:meth:`inventory` of each folder (or the error it would raise),
        in one round trip for them all (once the folders are known)."""
        return self._inventory.inventories(folders, datacenter)

    @_operation
    def contents(self, folder: str, datacenter: str | None = None) -> list[Entry]:
        """The VMs and folders under ``folder`` at any depth, by path, in one round trip
        (once the folder is known)."""
        return self._inventory.contents(folder, datacenter)

    @_operation
    def remove_folder(self, folder: str, datacenter: str | None = None) -> bool:
        """Remove ``folder`` if it is empty (False if it is not, or is gone)."""
        return self._inventory.remove_folder(folder, datacenter)

    @_operation
    def vm_state(self, folder: str, name: str, datacenter: str | None = None) -> VmState:
        """One VM's state (two round trips); :class:`NotFound` if it does not exist."""
        return self._inventory.vm_state(folder, name, datacenter)

    @_operation
    def hosts(self, cluster: str, datacenter: str | None = None) -> list[HostState]:
        """The hosts of a cluster with their load, by name.

        One round trip once the cluster is known.
        """
        return self._inventory.hosts(cluster, datacenter)

    def least_loaded_host(self, cluster: str, datacenter: str | None = None) -> HostState:
        """:func:`pick_host` over :meth:`hosts`; :class:`NoHostAvailable` if none is healthy."""
        return pick_host(self.hosts(cluster, datacenter))

    @_operation
    def clone(
        self,
        template: str,
        folder: str,
        datastore: str,
        name: str,
        resource_pool: str | None = None,
        clone_target: str | None = None,
        annotation: str | None = None,
        extra_config: Mapping[str, str] | None = None,
        datacenter: str | None = None,
        linked: bool = False,
    ) -> float:
        """Clone ``template`` (a VM template or a plain VM) to ``folder/name``,
        power it on, and return the seconds it took.

        The clone lands on ``datastore``, in ``resource_pool`` (else the root
        pool of ``clone_target``, else the template's own pool or, for a real
        template, the root pool of its host's cluster), on the least-loaded
        healthy host of ``clone_target`` when given.  ``extra_config`` is
        added to ``guestinfo.hostname = name``; ``annotation`` defaults to
        :func:`build_annotation`.

        A ``linked`` clone is made from the template's current snapshot (see
        Note [Linked clones], clone.py), its disks children of the snapshot's.
        """
        return self._cloner.clone(template, folder, datastore, name, resource_pool,
                                  clone_target, annotation, extra_config, datacenter, linked)

    @_operation
    def power_on(self, folder: str, name: str, datacenter: str | None = None) -> bool:
        """Power the VM on; False if it already was."""
        return self._vms.power_on(folder, name, datacenter)

    @_operation
    def power_off(self, folder: str, name: str, datacenter: str | None = None) -> bool:
        """Power the VM off (hard); False if it already was off."""
        return self._vms.power_off(folder, name, datacenter)

    @_operation
    def destroy(self, folder: str, name: str, datacenter: str | None = None) -> bool:
        """Power the VM off if needed and destroy it; False if there was no such VM."""
        return self._vms.destroy(folder, name, datacenter)

    @_operation
    def disks(self, folder: str, name: str, datacenter: str | None = None) -> list[Disk]:
        """The VM's virtual disks."""
        return self._vms.disks(folder, name, datacenter)

    @_operation
    def add_disk(self, folder: str, name: str, size_gb: int, datastore: str | None = None,
                 datacenter: str | None = None) -> None:
        """Add a thin ``size_gb`` GB disk on the VM's first SCSI controller,
        on ``datastore`` (default: the VM's first datastore)."""
        self._vms.add_disk(folder, name, size_gb, datastore, datacenter)

    @_operation
    def snapshots(self, folder: str, name: str, datacenter: str | None = None) -> list[str]:
        """The names of the VM's snapshots, depth first."""
        return self._vms.snapshots(folder, name, datacenter)

    @_operation
    def create_snapshot(self, folder: str, name: str, snapshot: str, description: str = "",
                        datacenter: str | None = None) -> None:
        """Snapshot the VM (without memory, not quiesced)."""
        self._vms.create_snapshot(folder, name, snapshot, description, datacenter)

    @_operation
    def revert_snapshot(self, folder: str, name: str, snapshot: str,
                        datacenter: str | None = None) -> None:
        """Revert the VM to its snapshot named ``snapshot`` (:class:`NotFound` if none)."""
        self._vms.revert_snapshot(folder, name, snapshot, datacenter)
