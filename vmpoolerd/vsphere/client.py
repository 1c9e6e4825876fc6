"""
vSphere behind a small, synchronous interface (pyvmomi).

Everything here blocks: the daemon calls :class:`VsphereClient` methods
through ``deferToThreadPool`` on a bounded thread pool, never on the
reactor thread.  One client may be used by several threads at once.

- Every SOAP request is bounded by a socket timeout (``timeout``), and
  every task wait by ``task_timeout``.
- The client logs in lazily, on its first call.  A request answered
  ``NotAuthenticated`` (the session expired or was terminated) logs in
  again and is sent once more; a request that found its pooled connection
  broken (reset, closed) is sent once more too.  Timeouts are not retried.
- No server-side view or filter is ever created: reads are
  ``RetrievePropertiesEx`` calls on the session's PropertyCollector with a
  traversal spec, so nothing can leak.  :meth:`VsphereClient.inventory`
  costs exactly one round trip per folder, whatever the number of VMs.
- ``round_trips`` counts SOAP requests (logins included).
- Tasks are waited for by reading only ``info.state`` and ``info.error``
  (plus ``info.result`` where needed): pyvmomi 9 cannot deserialise the
  whole ``info`` of some tasks (``RevertToSnapshot_Task``).
- Errors come out as :class:`VsphereError` and its subclasses.

Paths (templates, folders) are relative to the datacenter's VM folder
and written with ``/`` (``Templates/debian/debian-7-x86_64``); resource
pool paths are relative to its host folder, vmpooler's way
(``cluster1/pool1``: the pool ``pool1`` under the root pool of
``cluster1``; ``cluster1`` alone is that cluster's root pool).

Every method that finds things by path takes a ``datacenter`` (keyword;
default: the client's, else the first found), so that one session serves
pools in several datacenters of one vCenter.

The pure helpers (:func:`pick_host`, :func:`build_annotation`,
:func:`split_path`) need no server.
"""

from __future__ import annotations

import datetime
import functools
import http.client
import json
import ssl
import threading
import time
import xml.etree.ElementTree as ElementTree
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from pyVmomi import SoapStubAdapter, vim, vmodl
from pyVmomi.VmomiSupport import GetServiceVersions, versionIdMap

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

__all__ = [
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
#: The snapshot made on a template that has none, for linked clones.
BASE_SNAPSHOT = "vmpoolerd-linked-clone-base"
PropertyCollector = vmodl.query.PropertyCollector

#: What a request on a connection the server has closed meanwhile raises
#: (reset, broken pipe, TLS EOF on send, no status line): worth one resend.
#: Timeouts are not in it.
_STALE_CONNECTION = (
    ConnectionError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    http.client.BadStatusLine,
)
# Calls that may be sent again when their connection broke (a broken
# connection cannot tell whether vCenter had read the request): reads, and
# changes whose repetition does nothing more (a VM destroyed or powered off
# twice is destroyed or off, the second call failing harmlessly).
_READS = frozenset(
    {
        "RetrievePropertiesEx",
        "ContinueRetrievePropertiesEx",
        "RetrieveProperties",
        "RetrieveContent",
        "CurrentTime",
        "FindChild",
        "FindByInventoryPath",
        "FindByDnsName",
        "Destroy_Task",
        "PowerOffVM_Task",
    }
)


# -- pure helpers -------------------------------------------------------------


def split_path(path: str) -> list[str]:
    """``"Templates/debian/x"`` -> ``["Templates", "debian", "x"]``; ``""`` -> ``[]``."""
    parts = path.strip("/").split("/") if path.strip("/") else []
    if any(not p for p in parts):
        raise ValueError(f"empty component in path {path!r}")
    return parts


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


def _fault_message(fault: BaseException) -> str:
    msg = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None) or ""
    return f"{type(fault).__name__}: {msg}" if msg else type(fault).__name__


def _empty(value: Any) -> Any:
    return value if value not in ("", None) else None


_VM_PATHS = (
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


def _vm_state(ref: Any, props: Mapping[str, Any]) -> VmState:
    return VmState(
        name=props.get("name", ""),
        power_state=str(props.get("runtime.powerState", "")),
        hostname=_empty(props.get("guest.hostName")),
        ip=_empty(props.get("guest.ipAddress")),
        boot_time=props.get("summary.runtime.bootTime"),
        template=bool(props.get("config.template")),
        moid=ref._moId,
    )


def _host_state(ref: Any, props: Mapping[str, Any]) -> HostState:
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
        moid=ref._moId,
    )


# -- the client ---------------------------------------------------------------


class _CountingStub(SoapStubAdapter):
    """A SOAP stub that routes every request through its client (counting, retries)."""

    def __init__(self, client: VsphereClient, **kwargs: Any):
        super().__init__(**kwargs)
        self._client = client

    def InvokeMethod(  # noqa: N802 (pyvmomi's name)
        self, mo: Any, info: Any, args: Any, outerStub: Any = None
    ) -> Any:
        return self._client._invoke(
            lambda: SoapStubAdapter.InvokeMethod(self, mo, info, args, outerStub),
            resendable=getattr(info, "wsdlName", "") in _READS,
        )


def _api(method: Callable[..., T]) -> Callable[..., T]:
    """Connect first; run once more if a cached reference turned out stale
    (a folder deleted and made again, say); raise only VsphereError."""

    @functools.wraps(method)
    def wrapper(self: VsphereClient, *args: Any, **kwargs: Any) -> T:
        try:
            self._ensure_connected()
            try:
                return method(self, *args, **kwargs)
            except vmodl.fault.ManagedObjectNotFound:
                if not self._forget_cache():
                    raise
                return method(self, *args, **kwargs)
        except VsphereError:
            raise
        except TimeoutError as e:
            raise VsphereTimeout(
                f"vCenter {self.server} did not answer within {self.timeout} s"
            ) from e
        except vim.fault.InvalidLogin as e:
            raise LoginFailed(_fault_message(e), e) from e
        except vmodl.fault.ManagedObjectNotFound as e:
            raise NotFound(_fault_message(e), e) from e
        except vmodl.MethodFault as e:
            raise VsphereError(_fault_message(e), e) from e
        except (OSError, http.client.HTTPException) as e:
            raise VsphereUnavailable(f"vCenter {self.server}: {e or type(e).__name__}") from e

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
        self._password = password
        self.port = port
        self.insecure = insecure
        self.datacenter = datacenter
        self.timeout = timeout
        self.task_timeout = task_timeout
        self._pool_size = pool_size

        self._login_lock = threading.Lock()
        self._base_lock = threading.Lock()  # one base snapshot made at a time
        self._count_lock = threading.Lock()
        self._local = threading.local()
        self._round_trips = 0
        self._generation = 0  # bumped at every login
        self._stub: _CountingStub | None = None
        self._content: Any = None
        self._cache: dict[tuple, Any] = {}

    def __repr__(self) -> str:
        return f"<VsphereClient {self.username}@{self.server}:{self.port}>"

    # -- session -------------------------------------------------------------

    @property
    def round_trips(self) -> int:
        """SOAP requests sent so far (logins and retries included)."""
        return self._round_trips

    @property
    def session_key(self) -> str | None:
        """The current session's key (one more round trip), or None if not logged in."""
        if self._content is None:
            return None
        session = self._content.sessionManager.currentSession
        return session.key if session else None

    def close(self) -> None:
        """Log out (best effort) and drop the connections."""
        with self._login_lock:
            content, stub = self._content, self._stub
            self._content = self._stub = None
            self._cache.clear()
        if content is not None:
            self._local.raw = True  # a lost session needs no new login to be closed
            try:
                content.sessionManager.Logout()
            except Exception:  # noqa: BLE001 (the session may be gone already)
                pass
            finally:
                self._local.raw = False
        if stub is not None:
            stub.DropConnections()

    def __enter__(self) -> VsphereClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _api_version(self, context: ssl.SSLContext) -> str:
        """The newest API version both pyvmomi and the server speak (not a SOAP call)."""
        conn = http.client.HTTPSConnection(
            self.server, self.port, timeout=self.timeout, context=context
        )
        try:
            conn.request("GET", "/sdk/vimServiceVersions.xml")
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise VsphereUnavailable(
                f"{self.server}:{self.port} is not a vCenter (HTTP {response.status})"
            )
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as e:
            raise VsphereUnavailable(f"{self.server}:{self.port} is not a vCenter") from e
        offered = {v.text or "" for v in root.iter("version")}
        for version in GetServiceVersions("vim25"):
            if versionIdMap.get(version) in offered:
                return version
        raise VsphereUnavailable(f"{self.server}: no API version in common ({sorted(offered)})")

    def _ensure_connected(self) -> None:
        if self._content is not None:
            return
        with self._login_lock:
            if self._content is not None:
                return
            context = self._ssl_context()
            stub = _CountingStub(
                self,
                host=self.server,
                port=self.port,
                version=self._api_version(context),
                sslContext=context,
                httpConnectionTimeout=self.timeout,
                poolSize=self._pool_size,
            )
            self._local.raw = True
            try:
                content: Any = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
                content.sessionManager.Login(self.username, self._password, None)
            except Exception:
                stub.DropConnections()
                raise
            finally:
                self._local.raw = False
            self._stub, self._content = stub, content
            self._generation += 1

    def _relogin(self, generation: int) -> None:
        """Log in again, unless another thread did since ``generation``."""
        with self._login_lock:
            if self._generation != generation or self._content is None:
                return
            self._local.raw = True
            try:
                self._content.sessionManager.Login(self.username, self._password, None)
            finally:
                self._local.raw = False
            self._generation += 1

    def _invoke(self, call: Callable[[], T], resendable: bool = False) -> T:
        """Send one SOAP request: count it; log in again (the request was
        refused, so it may go again), or resend a read once if its pooled
        connection turned out broken."""
        if getattr(self._local, "raw", False):
            self._count()
            return call()
        generation = self._generation
        relogged = resent = False
        while True:
            self._count()
            try:
                return call()
            except vim.fault.NotAuthenticated:
                if relogged:
                    raise
                relogged = True
                self._relogin(generation)
            except _STALE_CONNECTION:
                # A pooled keep-alive connection the server had closed, or a
                # restarted server: the stub dropped its connections; a read
                # is sent again, a change is not (it may have been done).
                if resent or not resendable:
                    raise
                resent = True

    def _count(self) -> None:
        with self._count_lock:
            self._round_trips += 1

    def _forget_cache(self) -> bool:
        had = bool(self._cache)
        self._cache.clear()
        return had

    # -- reading -------------------------------------------------------------

    def _retrieve(self, spec: PropertyCollector.FilterSpec) -> list[Any]:
        """RetrievePropertiesEx (+ continuations), checked for lost sessions."""
        for attempt in (1, 2):
            generation = self._generation
            collector = self._content.propertyCollector
            options = (
                PropertyCollector.RetrieveOptions()
            )  # no maxObjects: as many as vCenter allows
            result = collector.RetrievePropertiesEx(specSet=[spec], options=options)
            objects: list[Any] = []
            while result is not None:
                objects.extend(result.objects)
                if not result.token:
                    break
                result = collector.ContinueRetrievePropertiesEx(token=result.token)
            lost = [
                m
                for o in objects
                for m in (o.missingSet or [])
                if isinstance(m.fault, vim.fault.NotAuthenticated)
            ]
            if not lost:
                return objects
            if attempt == 2:
                raise lost[0].fault
            self._relogin(generation)  # some servers answer unauthenticated reads with missingSet
        raise AssertionError("unreachable")

    def _collect(
        self,
        obj: Any,
        kind: type,
        paths: Sequence[str],
        hop: tuple[type, str] | None = None,
        recurse: bool = False,
    ) -> list[tuple[Any, dict[str, Any]]]:
        """In one round trip: properties ``paths`` of ``obj`` itself or, with
        ``hop`` (a type and a property of it), of the ``kind`` objects that
        property of ``obj`` refers to; ``recurse`` follows the hop again from
        there (folders in folders)."""
        select = []
        if hop is not None:
            again = [PropertyCollector.SelectionSpec(name="hop")] if recurse else []
            traversal = PropertyCollector.TraversalSpec(
                name="hop", type=hop[0], path=hop[1], selectSet=again
            )
            select = [traversal]
        spec = PropertyCollector.FilterSpec(
            objectSet=[
                PropertyCollector.ObjectSpec(obj=obj, skip=hop is not None, selectSet=select)
            ],
            propSet=[PropertyCollector.PropertySpec(type=kind, pathSet=list(paths))],
        )
        return [(o.obj, {p.name: p.val for p in o.propSet or []}) for o in self._retrieve(spec)]

    def _props(self, obj: Any, *paths: str) -> dict[str, Any]:
        found = self._collect(obj, type(obj), paths)
        if not found:
            raise NotFound(f"{obj} no longer exists")
        return found[0][1]

    # -- finding things (cached: references outlive sessions) -----------------

    def _cached(self, key: tuple, find: Callable[[], T]) -> T:
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = find()
            return value

    def _dc(self, dc: str | None) -> dict[str, Any]:
        """The datacenter named ``dc`` (None: the client's), with its folders."""
        name = dc or self.datacenter

        def find() -> dict[str, Any]:
            found = self._collect(
                self._content.rootFolder,
                vim.Datacenter,
                ["name", "vmFolder", "hostFolder"],
                hop=(vim.Folder, "childEntity"),
                recurse=True,
            )
            for ref, props in found:
                if name is None or props["name"] == name:
                    return {"ref": ref, **props}
            raise NotFound(f"datacenter {name or '(any)'} not found")

        return self._cached(("dc", name), find)

    def _walk(self, base: Any, path: str, what: str) -> Any:
        ref = base
        for part in split_path(path):
            ref = self._content.searchIndex.FindChild(entity=ref, name=part)
            if ref is None:
                raise NotFound(f"{what} {path!r} not found")
        return ref

    def _folder(self, path: str, dc: str | None) -> Any:
        def find() -> Any:
            ref = self._walk(self._dc(dc)["vmFolder"], path, "folder")
            if not isinstance(ref, vim.Folder):
                raise NotFound(f"{path!r} is not a folder")
            return ref

        return self._cached(("folder", dc, path.strip("/")), find)

    def _template(self, path: str, dc: str | None) -> Any:
        def find() -> Any:
            ref = self._walk(self._dc(dc)["vmFolder"], path, "template")
            if not isinstance(ref, vim.VirtualMachine):
                raise NotFound(f"template {path!r} is not a VM")
            return ref

        return self._cached(("template", dc, path.strip("/")), find)

    def _vm(self, folder: str, name: str, dc: str | None) -> Any:
        ref = self._content.searchIndex.FindChild(entity=self._folder(folder, dc), name=name)
        if not isinstance(ref, vim.VirtualMachine):
            raise NotFound(f"VM {name!r} not found in folder {folder!r}")
        return ref

    def _datastores(self, dc: str | None) -> dict[str, Any]:
        def find() -> dict[str, Any]:
            found = self._collect(self._dc(dc)["ref"], vim.Datastore, ["name"],
                                  hop=(vim.Datacenter, "datastore"))
            return {props["name"]: ref for ref, props in found}

        return self._cached(("datastores", dc), find)

    def _datastore(self, name: str, dc: str | None) -> Any:
        try:
            return self._datastores(dc)[name]
        except KeyError:
            raise NotFound(f"datastore {name!r} not found") from None

    def _cluster(self, name: str, dc: str | None) -> tuple[Any, Any]:
        """(cluster, its root resource pool), searched anywhere under the host folder."""

        def find() -> tuple[Any, Any]:
            found = self._collect(
                self._dc(dc)["hostFolder"],
                vim.ComputeResource,
                ["name", "resourcePool"],
                hop=(vim.Folder, "childEntity"),
                recurse=True,
            )
            for ref, props in found:
                if props["name"] == name:
                    return ref, props["resourcePool"]
            raise NotFound(f"cluster {name!r} not found")

        return self._cached(("cluster", dc, name), find)

    def _resource_pool(self, path: str, dc: str | None) -> Any:
        """vmpooler's walk: folders, then a cluster, then pools under its root pool."""

        def find() -> Any:
            ref = self._dc(dc)["hostFolder"]
            for part in split_path(path):
                if isinstance(ref, vim.ComputeResource):
                    ref = self._props(ref, "resourcePool")["resourcePool"]
                found = self._content.searchIndex.FindChild(entity=ref, name=part)
                if found is None:
                    raise NotFound(f"resource pool {path!r} not found")
                ref = found
            if isinstance(ref, vim.ComputeResource):
                ref = self._props(ref, "resourcePool")["resourcePool"]
            if not isinstance(ref, vim.ResourcePool):
                raise NotFound(f"{path!r} is not a resource pool")
            return ref

        return self._cached(("pool", dc, path.strip("/")), find)

    # -- tasks ----------------------------------------------------------------

    def _wait(self, task: Any, result: bool = False) -> Any:
        """Poll info.state/info.error (and info.result) until the task ends."""
        paths = ["info.state", "info.error"] + (["info.result"] if result else [])
        deadline = time.monotonic() + self.task_timeout
        delay = 0.02
        while True:
            info = self._props(task, *paths)
            state = info.get("info.state")
            if state == "success":
                return info.get("info.result")
            if state == "error":
                error = info.get("info.error")
                fault = getattr(error, "fault", None)
                message = _fault_message(fault) if fault is not None else str(error)
                raise TaskFailed(f"task {task._moId} failed: {message}", fault)
            if time.monotonic() + delay > deadline:
                raise VsphereTimeout(f"task {task._moId} still {state} after {self.task_timeout} s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # -- the interface ----------------------------------------------------------

    @_api
    def ping(self) -> datetime.datetime:
        """vCenter's clock (one round trip, logging in first if need be)."""
        now: datetime.datetime = vim.ServiceInstance("ServiceInstance", self._stub).CurrentTime()
        return now

    @_api
    def inventory(self, folder: str, datacenter: str | None = None) -> list[VmState]:
        """The VMs directly in ``folder``, by name, in one round trip (once the folder is known)."""
        ref = self._folder(folder, datacenter)
        found = self._collect(ref, vim.VirtualMachine, _VM_PATHS, hop=(vim.Folder, "childEntity"))
        return sorted((_vm_state(ref, props) for ref, props in found), key=lambda vm: vm.name)

    @_api
    def contents(self, folder: str, datacenter: str | None = None) -> list[Entry]:
        """The VMs and folders under ``folder`` at any depth, by path, in one round trip
        (once the folder is known)."""
        root = self._folder(folder, datacenter)
        traversal = PropertyCollector.TraversalSpec(
            name="hop", type=vim.Folder, path="childEntity",
            selectSet=[PropertyCollector.SelectionSpec(name="hop")])
        spec = PropertyCollector.FilterSpec(
            objectSet=[PropertyCollector.ObjectSpec(obj=root, skip=True, selectSet=[traversal])],
            propSet=[PropertyCollector.PropertySpec(type=vim.Folder, pathSet=["name", "parent"]),
                     PropertyCollector.PropertySpec(type=vim.VirtualMachine,
                                                    pathSet=["name", "parent",
                                                             "config.template"])])
        found = {o.obj._moId: (o.obj, {p.name: p.val for p in o.propSet or []})
                 for o in self._retrieve(spec)}
        base = "/".join(split_path(folder))

        def path(moid: str) -> str:
            ref, props = found[moid]
            parent = props.get("parent")
            above = base if parent is None or parent._moId not in found else path(parent._moId)
            return f"{above}/{props.get('name', '')}"

        return sorted((Entry(path(moid), isinstance(ref, vim.Folder),
                             bool(props.get("config.template")))
                       for moid, (ref, props) in found.items()), key=lambda e: e.path)

    @_api
    def remove_folder(self, folder: str, datacenter: str | None = None) -> bool:
        """Remove ``folder`` if it is empty (False if it is not, or is gone)."""
        try:
            ref = self._folder(folder, datacenter)
        except NotFound:
            return False
        if self._props(ref, "childEntity").get("childEntity"):
            return False
        self._wait(ref.Destroy_Task())
        self._forget_cache()
        return True

    @_api
    def vm_state(self, folder: str, name: str, datacenter: str | None = None) -> VmState:
        """One VM's state (two round trips); :class:`NotFound` if it does not exist."""
        ref = self._vm(folder, name, datacenter)
        return _vm_state(ref, self._props(ref, *_VM_PATHS))

    @_api
    def hosts(self, cluster: str, datacenter: str | None = None) -> list[HostState]:
        """The hosts of a cluster with their load, by name.

        One round trip once the cluster is known.
        """
        ref, _ = self._cluster(cluster, datacenter)
        found = self._collect(ref, vim.HostSystem, _HOST_PATHS, hop=(vim.ComputeResource, "host"))
        return sorted((_host_state(ref, props) for ref, props in found), key=lambda h: h.name)

    def least_loaded_host(self, cluster: str, datacenter: str | None = None) -> HostState:
        """:func:`pick_host` over :meth:`hosts`; :class:`NoHostAvailable` if none is healthy."""
        return pick_host(self.hosts(cluster, datacenter))

    @_api
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
        Note [Linked clones]), its disks children of the snapshot's.
        """
        started = time.monotonic()
        dc = datacenter
        source = self._template(template, dc)
        relocate = vim.vm.RelocateSpec(datastore=self._datastore(datastore, dc))
        if clone_target:
            _, root_pool = self._cluster(clone_target, dc)
            relocate.host = vim.HostSystem(pick_host(self.hosts(clone_target, dc)).moid,
                                           self._stub)
            relocate.pool = root_pool
        if resource_pool:
            relocate.pool = self._resource_pool(resource_pool, dc)
        if relocate.pool is None:
            props = self._props(source, "config.template", "resourcePool", "runtime.host")
            if props.get("config.template") or props.get("resourcePool") is None:
                cluster = self._props(props["runtime.host"], "parent")["parent"]
                relocate.pool = self._props(cluster, "resourcePool")["resourcePool"]
        if annotation is None:
            now = datetime.datetime.now(datetime.timezone.utc)
            annotation = build_annotation(name, self.username, template, now)
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
        clone = self._wait(self._clone_task(source, self._folder(folder, dc), name, spec),
                           result=True)
        # A real vCenter honours powerOn; govmomi's simulator leaves the clone off.
        if self._power_state(clone) != "poweredOn":
            self._wait(clone.PowerOnVM_Task())
        return time.monotonic() - started

    def _clone_task(self, source: Any, folder: Any, name: str, spec: Any) -> Any:
        """Start the clone (apart, so that the tests can see the spec sent)."""
        return source.CloneVM_Task(folder=folder, name=name, spec=spec)

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
            info = self._props(source, "snapshot").get("snapshot")
            if info is not None and info.currentSnapshot is not None:
                return info.currentSnapshot
            made = self._wait(source.CreateSnapshot_Task(
                name=BASE_SNAPSHOT, description="the base of vmpoolerd's linked clones",
                memory=False, quiesce=False), result=True)
            bases = [n.snapshot for n in self._snapshot_tree(source) if n.name == BASE_SNAPSHOT]
            if bases and bases[0]._moId != made._moId:
                self._wait(made.RemoveSnapshot_Task(removeChildren=False))
                return bases[0]
            return made

    def _power_state(self, vm: Any) -> str:
        state: str = self._props(vm, "runtime.powerState")["runtime.powerState"]
        return state

    @_api
    def power_on(self, folder: str, name: str, datacenter: str | None = None) -> bool:
        """Power the VM on; False if it already was."""
        vm = self._vm(folder, name, datacenter)
        if self._power_state(vm) == "poweredOn":
            return False
        self._wait(vm.PowerOnVM_Task())
        return True

    @_api
    def power_off(self, folder: str, name: str, datacenter: str | None = None) -> bool:
        """Power the VM off (hard); False if it already was off."""
        vm = self._vm(folder, name, datacenter)
        if self._power_state(vm) == "poweredOff":
            return False
        self._wait(vm.PowerOffVM_Task())
        return True

    @_api
    def destroy(self, folder: str, name: str, datacenter: str | None = None) -> bool:
        """Power the VM off if needed and destroy it; False if there was no such VM."""
        try:
            vm = self._vm(folder, name, datacenter)
        except NotFound:
            return False
        if self._power_state(vm) != "poweredOff":
            self._wait(vm.PowerOffVM_Task())
        self._wait(vm.Destroy_Task())
        return True

    @_api
    def disks(self, folder: str, name: str, datacenter: str | None = None) -> list[Disk]:
        """The VM's virtual disks."""
        props = self._props(self._vm(folder, name, datacenter), "config.hardware.device")
        devices = props.get("config.hardware.device") or []
        return [
            Disk(
                label=d.deviceInfo.label if d.deviceInfo else str(d.key),
                capacity_kb=int(d.capacityInKB or 0),
                file_name=getattr(d.backing, "fileName", "") or "",
            )
            for d in devices
            if isinstance(d, vim.vm.device.VirtualDisk)
        ]

    @_api
    def add_disk(self, folder: str, name: str, size_gb: int, datastore: str | None = None,
                 datacenter: str | None = None) -> None:
        """Add a thin ``size_gb`` GB disk on the VM's first SCSI controller,
        on ``datastore`` (default: the VM's first datastore)."""
        if size_gb <= 0:
            raise ValueError("size_gb must be positive")
        vm = self._vm(folder, name, datacenter)
        props = self._props(vm, "config.hardware.device", "datastore")
        devices = props.get("config.hardware.device") or []
        controllers = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)]
        if not controllers:
            raise VsphereError(f"VM {name!r} has no SCSI controller")
        controller = controllers[0]
        used = {d.unitNumber for d in devices if d.controllerKey == controller.key} | {
            7
        }  # 7: the controller
        free = [u for u in range(16) if u not in used]
        if not free:
            raise VsphereError(f"VM {name!r}: no free unit on its first SCSI controller")
        if datastore is not None:
            ds = self._datastore(datastore, datacenter)
        elif props.get("datastore"):
            ds = props["datastore"][0]
            datastore = next((n for n, r in self._datastores(datacenter).items()
                              if r._moId == ds._moId), "")
        else:
            raise VsphereError(f"VM {name!r} is on no datastore; name one")
        disk = vim.vm.device.VirtualDisk(
            key=-1,
            controllerKey=controller.key,
            unitNumber=free[0],
            capacityInKB=size_gb * 1024 * 1024,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                diskMode="persistent", thinProvisioned=True, fileName=f"[{datastore}]", datastore=ds
            ),
        )
        change = vim.vm.device.VirtualDeviceSpec(
            operation="add", fileOperation="create", device=disk
        )
        self._wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])))

    def _snapshot_tree(self, vm: Any) -> list[Any]:
        """The VM's snapshot tree nodes, depth first (one round trip)."""
        info = self._props(vm, "snapshot").get("snapshot")
        nodes: list[Any] = []
        todo = list(info.rootSnapshotList or []) if info is not None else []
        while todo:
            node = todo.pop(0)
            nodes.append(node)
            todo[0:0] = list(node.childSnapshotList or [])
        return nodes

    @_api
    def snapshots(self, folder: str, name: str, datacenter: str | None = None) -> list[str]:
        """The names of the VM's snapshots, depth first."""
        return [node.name for node in self._snapshot_tree(self._vm(folder, name, datacenter))]

    @_api
    def create_snapshot(self, folder: str, name: str, snapshot: str, description: str = "",
                        datacenter: str | None = None) -> None:
        """Snapshot the VM (without memory, not quiesced)."""
        vm = self._vm(folder, name, datacenter)
        task = vm.CreateSnapshot_Task(
            name=snapshot, description=description, memory=False, quiesce=False
        )
        self._wait(task)

    @_api
    def revert_snapshot(self, folder: str, name: str, snapshot: str,
                        datacenter: str | None = None) -> None:
        """Revert the VM to its snapshot named ``snapshot`` (:class:`NotFound` if none)."""
        for node in self._snapshot_tree(self._vm(folder, name, datacenter)):
            if node.name == snapshot:
                self._wait(node.snapshot.RevertToSnapshot_Task())
                return
        raise NotFound(f"VM {name!r} has no snapshot {snapshot!r}")
