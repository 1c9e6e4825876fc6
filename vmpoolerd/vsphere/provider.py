"""
The vSphere provider: the synchronous :class:`vmpoolerd.vsphere.client.VsphereClient`
run on a bounded, named thread pool that a service owns.

``await provider.destroy(folder, name)`` runs ``client.destroy(folder, name)`` in a
pool thread and gives its result (or its exception) back on the reactor
thread; each client method the daemon uses has such a typed twin here (the
manager's are :class:`vmpoolerd.vsphere.types.Vsphere`), all going through
:meth:`Provider.run`.  Every call is bounded by a timeout, counted from the moment it is
asked for: a call that is still waiting for a thread when its time is up is
never started at all; one already running cannot be interrupted (pyvmomi
blocks in a socket), so it keeps its thread until it returns, bounded by the
client's own socket and task timeouts, and its result is dropped.

Note [Folder reads together]: each pool's cycle reads its folder, and a
vSphere request costs the daemon about 10 ms of CPU (pyVmomi writes and
parses the SOAP) whatever the folder holds: a thousand pools cycling every
few seconds would spend a core on those reads alone.  So the folder reads
asked for in one reactor iteration, or while FOLDER_READS_IN_FLIGHT reads
of the datacenter are at vCenter, go out as one request
(``client.inventories``, up to FOLDERS_PER_READ folders; the coalescer is
the checkouts', vmpoolerd/coalesce.py).  A read is never older than its
asking: a folder joins only a request not yet sent.  A folder's VMs are
those its own ``childEntity`` names in that answer, not guessed from the
VMs' side; a folder missing from the answer fails its read rather than
look empty (its VMs would look lost), and a folder that does not exist
fails its own read only.

Note [Stopping the provider]: a SIGTERM must not cut a vSphere call halfway
without need, and must not hang the daemon because vCenter stopped answering
(docs/compatibility.rst, "Stopping").  ``stopService``:

1. refuses new calls (``ProviderStopped``), and fails the calls still
   waiting for a thread with ``ProviderStopped``: they never start;
2. waits, on the injected reactor's clock, until no call is running (calls
   whose caller already gave up on a timeout included: they are vSphere
   work still in progress) or until ``stop_grace`` seconds have passed;
3. fails the calls still running past the grace with ``ProviderStopped``
   (their callers stop waiting; the threads go on until pyvmomi returns);
4. closes the client (logout) and stops the pool in a separate, daemon
   thread, and waits for that only for what is left of the grace.

``ThreadPool.stop()`` joins every worker thread, so it is never called on
the reactor thread.  The pool's worker threads, and the thread that stops
it, are daemon threads: Python's exit does not wait for daemon threads, so a
call stuck in pyvmomi beyond the grace is abandoned with the process instead
of holding it up (relying on socket timeouts alone would not do: a task wait
may legitimately last ``task_timeout``, ten minutes by default).  What a
daemon thread abandons is a wait on vCenter, never daemon state: Redis is
not written from these threads.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any, Awaitable, Callable, TypeVar, cast

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ..coalesce import Coalescer
from ..telemetry.metrics import Metrics
from .client import VsphereClient
from .types import Entry, VmState, Vsphere, VsphereError, VsphereTimeout

__all__ = ["FOLDER_READS_IN_FLIGHT", "Provider", "ProviderStopped", "ProviderTimeout"]

T = TypeVar("T")

# Note [Folder reads together]
FOLDERS_PER_READ = 100
FOLDER_READS_IN_FLIGHT = 4


class ProviderTimeout(VsphereTimeout):
    """A call did not finish within its timeout (it may have never started)."""


class ProviderStopped(VsphereError):
    """The provider is not running, or stopped before the call finished."""


class _DaemonThread(threading.Thread):
    """A pool thread the interpreter does not wait for at exit (see the Note)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon = True


# The life of one call; changed under Provider._lock (the pool threads and
# the reactor thread both change it).
_QUEUED, _RUNNING, _DONE, _DROPPED = "queued", "running", "done", "dropped"


class _Call:
    def __init__(self, method: str) -> None:
        self.method = method
        self.state = _QUEUED
        self.stopped = False  # failed by stopService
        self.deferred: Deferred[Any] | None = None


class _Calls:
    """
    The client's methods the daemon uses, typed (the manager's are
    :class:`~vmpoolerd.vsphere.types.Vsphere`), each run by ``_call`` in
    ``datacenter`` (None: the client's).
    """

    datacenter: str | None = None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        raise NotImplementedError

    async def ping(self, timeout: float | None = None) -> datetime.datetime:
        now: datetime.datetime = await self._call("ping", timeout=timeout)
        return now

    def _folder_reads(self, datacenter: str | None) -> Coalescer[str, list[VmState] | VsphereError]:
        raise NotImplementedError

    async def inventory(self, folder: str) -> list[VmState]:
        """Read together with the other folders of the datacenter asked for
        meanwhile (Note [Folder reads together])."""
        vms = await self._folder_reads(self.datacenter).submit(folder)
        if isinstance(vms, VsphereError):
            raise vms
        return vms

    async def clone(self, template: str, folder: str, datastore: str, name: str,
                    resource_pool: str | None = None,
                    clone_target: str | None = None, linked: bool = False) -> float:
        seconds: float = await self._call("clone", template, folder, datastore, name,
                                          resource_pool=resource_pool,
                                          clone_target=clone_target,
                                          datacenter=self.datacenter, linked=linked)
        return seconds

    async def destroy(self, folder: str, name: str) -> bool:
        done: bool = await self._call("destroy", folder, name, datacenter=self.datacenter)
        return done

    async def power_on(self, folder: str, name: str) -> bool:
        done: bool = await self._call("power_on", folder, name, datacenter=self.datacenter)
        return done

    async def power_off(self, folder: str, name: str) -> bool:
        done: bool = await self._call("power_off", folder, name, datacenter=self.datacenter)
        return done

    async def add_disk(self, folder: str, name: str, size_gb: int) -> None:
        await self._call("add_disk", folder, name, size_gb, datacenter=self.datacenter)

    async def create_snapshot(self, folder: str, name: str, snapshot: str) -> None:
        await self._call("create_snapshot", folder, name, snapshot, datacenter=self.datacenter)

    async def revert_snapshot(self, folder: str, name: str, snapshot: str) -> None:
        await self._call("revert_snapshot", folder, name, snapshot, datacenter=self.datacenter)

    async def contents(self, folder: str) -> list[Entry]:
        entries: list[Entry] = await self._call("contents", folder, datacenter=self.datacenter)
        return entries

    async def remove_folder(self, folder: str) -> bool:
        done: bool = await self._call("remove_folder", folder, datacenter=self.datacenter)
        return done


class Provider(_Calls, Service):
    """Runs :class:`~vmpoolerd.vsphere.VsphereClient` methods off the reactor thread."""

    log = Logger()

    def __init__(
        self,
        client: VsphereClient,
        reactor: IReactorTime,
        threads: int = 10,
        name: str = "vmpoolerd-vsphere",
        call_timeout: float = 900.0,
        stop_grace: float = 30.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.setName(name)
        self._metrics = metrics
        self._client = client
        self._reactor = reactor
        # Results come back from the pool's threads through callFromThread,
        # which every reactor has (and the tests' threaded clocks).
        self._from_threads = cast(IReactorFromThreads, reactor)
        self._threads = threads
        self._call_timeout = call_timeout
        self._stop_grace = stop_grace
        self._pool: ThreadPool | None = None
        self._lock = threading.Lock()
        self._queued = 0
        self._running: set[_Call] = set()  # in a pool thread now
        self._calls: set[_Call] = set()  # not answered yet (reactor thread only)
        self._idle_waiters: list[Deferred[None]] = []
        self._reads: dict[str | None, Coalescer[str, list[VmState] | VsphereError]] = {}

    @property
    def in_flight(self) -> int:
        """Calls running in a pool thread (including those whose caller timed out)."""
        return len(self._running)

    @property
    def queued(self) -> int:
        """Calls waiting for a free thread."""
        return self._queued

    def startService(self) -> None:
        # A new pool each time: a stopped ThreadPool cannot be started again.
        self._pool = ThreadPool(minthreads=0, maxthreads=self._threads, name=self.name)
        self._pool.threadFactory = _DaemonThread
        self._pool.start()
        super().startService()
        self.log.info(
            "vSphere provider {name} started: {threads} threads",
            name=self.name,
            threads=self._threads,
        )

    def at(self, datacenter: str | None) -> Vsphere:
        """This provider, finding things in ``datacenter`` (None: the client's)."""
        return self if datacenter is None else _InDatacenter(self, datacenter)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self.run(getattr(self._client, method), *args, **kwargs)

    def _folder_reads(self, datacenter: str | None) -> Coalescer[str, list[VmState] | VsphereError]:
        if datacenter not in self._reads:
            self._reads[datacenter] = Coalescer(
                lambda folders: self.run(self._client.inventories, folders,
                                         datacenter=datacenter),
                self._reactor, max_batch=FOLDERS_PER_READ, in_flight=FOLDER_READS_IN_FLIGHT)
        return self._reads[datacenter]

    # -- the thread pool ----------------------------------------------------------

    async def run(
        self, function: Callable[..., T], *args: Any, timeout: float | None = None,
        **kwargs: Any
    ) -> T:
        """``function(*args, **kwargs)`` (a method of the client) in a pool
        thread, within ``timeout`` seconds (default ``call_timeout``); raises
        what it raises, :class:`ProviderTimeout`, or :class:`ProviderStopped`."""
        method = function.__name__
        if not self.running or self._pool is None:
            raise ProviderStopped(
                f"vSphere provider {self.name} is not running; {method} not called"
            )
        limit = self._call_timeout if timeout is None else timeout
        call = _Call(method)

        def timed_out(result: Any, after: float) -> None:
            what = (
                "was still waiting for a thread (not started)"
                if self._drop(call)
                else "was still running"
            )
            self.log.warn(
                "vSphere call {method} timed out after {timeout}s: it {what}",
                method=method,
                timeout=after,
                what=what,
            )
            raise ProviderTimeout(f"vSphere call {method} timed out after {after} s: it {what}")

        with self._lock:
            self._queued += 1
        d = deferToThreadPool(
            self._from_threads, self._pool, self._in_thread, call, function, args, kwargs
        )
        d.addTimeout(limit, self._reactor, onTimeoutCancel=timed_out)
        call.deferred = d
        self._calls.add(call)
        started, outcome = self._reactor.seconds(), "error"
        try:
            result: T = await d
            outcome = "ok"
            return result
        except ProviderTimeout:
            outcome = "timeout"
            raise
        except CancelledError:
            if call.stopped:
                raise ProviderStopped(
                    f"vSphere provider {self.name} stopped before {method} finished"
                ) from None
            raise
        finally:
            self._calls.discard(call)
            self._drop(call)  # cancelled or failed while waiting: never start it
            if self._metrics is not None:
                self._metrics.vsphere_call(method, outcome, self._reactor.seconds() - started)

    def _in_thread(
        self,
        call: _Call,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """In a pool thread: run the call unless it was given up while it waited."""
        with self._lock:
            if call.state != _QUEUED:
                return None  # its Deferred has failed already
            call.state = _RUNNING
            self._queued -= 1
            self._running.add(call)
        try:
            return function(*args, **kwargs)
        finally:
            with self._lock:
                call.state = _DONE
                self._running.discard(call)
                idle = not self._running
            if idle:
                self._from_threads.callFromThread(self._wake_idle)

    def _drop(self, call: _Call) -> bool:
        """Make sure a call that has not started never will; True if it was waiting."""
        with self._lock:
            if call.state != _QUEUED:
                return False
            call.state = _DROPPED
            self._queued -= 1
            return True

    def _wake_idle(self) -> None:
        if not self.in_flight:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    async def _wait_idle(self, timeout: float) -> None:
        """Until no call runs, or ``timeout`` seconds have passed."""
        if not self.in_flight:
            return
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        waiter.addTimeout(
            max(timeout, 0), self._reactor, onTimeoutCancel=lambda result, after: None
        )
        try:
            await waiter
        finally:
            if waiter in self._idle_waiters:
                self._idle_waiters.remove(waiter)

    def _fail_calls(self, running: bool) -> None:
        """Fail waiting calls (and running ones too, if ``running``) with ProviderStopped."""
        for call in list(self._calls):
            # A call done already (state _DONE) has its result on the way.
            if self._drop(call) or (running and call.state == _RUNNING):
                call.stopped = True
                if call.deferred is not None:
                    call.deferred.cancel()

    def stopService(self) -> Deferred[None]:
        """See Note [Stopping the provider]."""
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        deadline = self._reactor.seconds() + self._stop_grace
        self._fail_calls(running=False)
        if self.in_flight:
            self.log.info(
                "vSphere provider {name} stopping: "
                "waiting up to {grace}s for {count} running calls",
                name=self.name,
                grace=self._stop_grace,
                count=self.in_flight,
            )
            await self._wait_idle(deadline - self._reactor.seconds())
        with self._lock:
            stuck = sorted(call.method for call in self._running)
        if stuck:
            self.log.warn(
                "vSphere provider {name}: abandoning {count} calls "
                "still running after {grace}s: {methods}",
                name=self.name,
                count=len(stuck),
                grace=self._stop_grace,
                methods=", ".join(stuck),
            )
        self._fail_calls(running=True)
        await self._shut_down(pool, deadline - self._reactor.seconds())
        self.log.info("vSphere provider {name} stopped", name=self.name)

    async def _shut_down(self, pool: ThreadPool, timeout: float) -> None:
        """Close the client, then stop the pool, in a daemon thread; wait at most ``timeout``."""
        close = getattr(self._client, "close", None)
        finished: Deferred[bool] = Deferred()

        def shut_down() -> None:
            try:
                if close is not None:
                    close()
            except Exception:
                self._from_threads.callFromThread(
                    self.log.failure,
                    "vSphere provider {name}: closing the client failed",
                    Failure(),
                    name=self.name,
                )
            pool.stop()
            self._from_threads.callFromThread(finished.callback, True)

        threading.Thread(target=shut_down, name=f"{self.name}-stop", daemon=True).start()
        if timeout > 0:
            finished.addTimeout(timeout, self._reactor, onTimeoutCancel=lambda result, after: False)
            if await finished:
                return
        self.log.info(
            "vSphere provider {name}: grace over, not waiting for the client to close",
            name=self.name,
        )



class _InDatacenter(_Calls):
    """A :class:`Provider`'s calls in another datacenter (see :meth:`Provider.at`)."""

    def __init__(self, provider: Provider, datacenter: str) -> None:
        self._provider = provider
        self.datacenter = datacenter

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._provider._call(method, *args, **kwargs)

    def _folder_reads(self, datacenter: str | None) -> Coalescer[str, list[VmState] | VsphereError]:
        return self._provider._folder_reads(datacenter)
