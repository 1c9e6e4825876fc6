"""
Tests of :mod:`vmpoolerd.provider`.

Its concurrency is tested with a small fake synchronous client whose
methods block on ``threading.Event`` gates (real threads, so real time,
kept short); where only the reactor's clock matters, a ``Clock`` stands in
for it.  One test runs against the vSphere simulator.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from .vcsim_server import inventory, start_vcsim
from .waiting import until
from vmpoolerd.vsphere.provider import Provider, ProviderStopped, ProviderTimeout
from vmpoolerd.vsphere.client import NotFound, VsphereClient, VsphereTimeout

FOLDER = "Pools/debian-7"


class FakeClient:
    """A synchronous client: methods that report their thread, block, or fail."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0  # the most calls ever running at once
        self.started: list[str] = []
        self.closed = 0

    def where(self) -> threading.Thread:
        return threading.current_thread()

    def echo(self, *args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, kwargs

    def fail(self, error: Exception) -> None:
        raise error

    def wait(self, gate: threading.Event, tag: str = "") -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.started.append(tag)
        try:
            if not gate.wait(10):
                raise RuntimeError(f"{tag}: gate never opened")
            return tag
        finally:
            with self.lock:
                self.running -= 1

    def close(self) -> None:
        self.closed += 1


class ThreadedClock(Clock):
    """Time from a Clock; results from threads through the real reactor."""

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        reactor.callFromThread(f, *args, **kwargs)  # type: ignore[attr-defined]


async def settle() -> None:
    """Let threads and the reactor run a little (for "nothing more happens").

    Real time, on purpose: that nothing happens cannot be polled for."""
    await deferLater(reactor, 0.1)


class ProviderTests(TestCase):
    def provider(self, client: Any = None, clock: Any = reactor, **kwargs: Any) -> Provider:
        """A started provider, stopped on cleanup."""
        self.client = FakeClient() if client is None else client
        kwargs.setdefault("name", "test-pool")
        # The provider runs whatever methods it is handed; a fake will do.
        provider = Provider(cast(VsphereClient, self.client), clock, **kwargs)
        provider.startService()
        self.addCleanup(lambda: provider.stopService() if provider.running else None)
        return provider

    def gate(self) -> threading.Event:
        """An event opened on cleanup (before the provider is stopped, if made after it)."""
        event = threading.Event()
        self.addCleanup(event.set)
        return event

    def call(self, provider: Provider, method: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return ensureDeferred(provider.run(getattr(self.client, method), *args, **kwargs))

    async def test_runs_in_a_named_pool_thread(self) -> None:
        provider = self.provider()
        thread = await provider.run(self.client.where)
        self.assertIsNot(thread, threading.current_thread())
        self.assertTrue(thread.name.startswith("PoolThread-test-pool-"), thread.name)
        self.assertTrue(thread.daemon)

    async def test_arguments(self) -> None:
        provider = self.provider()
        self.assertEqual(
            await provider.run(self.client.echo, 1, "b", size=3), ((1, "b"), {"size": 3})
        )

    async def test_at_most_threads_at_once(self) -> None:
        provider = self.provider(threads=3)
        gate = self.gate()
        calls = [self.call(provider, "wait", gate, str(i)) for i in range(6)]
        await until("3 calls running", lambda: self.client.running == 3, seconds=5)
        await settle()
        self.assertEqual((self.client.running, provider.in_flight, provider.queued), (3, 3, 3))
        gate.set()
        self.assertEqual([await d for d in calls], [str(i) for i in range(6)])
        self.assertEqual(self.client.most, 3)
        self.assertEqual(sorted(self.client.started), [str(i) for i in range(6)])
        await until("no call in flight", lambda: provider.in_flight == 0, seconds=5)
        self.assertEqual(provider.queued, 0)

    async def test_errors_propagate_as_themselves(self) -> None:
        provider = self.provider()
        for error in (NotFound("no such folder"), ValueError("bad")):
            with self.assertRaises(type(error)) as raised:
                await provider.run(self.client.fail, error)
            self.assertIs(raised.exception, error)

    async def test_timeout(self) -> None:
        provider = self.provider(call_timeout=0.2)
        gate = self.gate()
        started = time.monotonic()
        slow = self.call(provider, "wait", gate, "slow")
        await until("a call in flight", lambda: provider.in_flight == 1, seconds=5)
        with self.assertRaises(ProviderTimeout) as raised:
            await slow
        self.assertIsInstance(raised.exception, VsphereTimeout)
        self.assertIn("still running", str(raised.exception))
        self.assertLess(time.monotonic() - started, 2)
        # The thread cannot be interrupted: it stays busy until the call returns.
        self.assertEqual(provider.in_flight, 1)
        gate.set()
        await until("the thread freed", lambda: provider.in_flight == 0, seconds=5)

    async def test_timeout_per_call(self) -> None:
        provider = self.provider()
        gate = self.gate()
        with self.assertRaises(ProviderTimeout):
            await provider.run(self.client.wait, gate, "slow", timeout=0.2)

    async def test_timed_out_while_waiting_never_starts(self) -> None:
        provider = self.provider(threads=1)
        gate = self.gate()
        first = self.call(provider, "wait", gate, "first")
        await until("a call in flight", lambda: provider.in_flight == 1, seconds=5)
        with self.assertRaises(ProviderTimeout) as raised:
            await provider.run(self.client.wait, gate, "second", timeout=0.2)
        self.assertIn("not started", str(raised.exception))
        self.assertEqual(provider.queued, 0)
        gate.set()
        self.assertEqual(await first, "first")
        self.assertEqual(await provider.run(self.client.echo, 1), ((1,), {}))
        self.assertEqual(self.client.started, ["first"])

    async def test_timeout_on_the_injected_clock(self) -> None:
        clock = ThreadedClock()
        provider = self.provider(clock=clock, call_timeout=900)
        gate = self.gate()
        d = self.call(provider, "wait", gate, "slow")
        await until("a call in flight", lambda: provider.in_flight == 1, seconds=5)
        clock.advance(899)
        self.assertNoResult(d)
        clock.advance(1)
        self.failureResultOf(d, ProviderTimeout)

    async def test_not_started(self) -> None:
        client = FakeClient()
        provider = Provider(cast(VsphereClient, client), reactor)
        with self.assertRaises(ProviderStopped):
            await provider.run(client.echo)

    async def test_stop_waits_for_running_calls_then_refuses(self) -> None:
        provider = self.provider(stop_grace=5)
        gate = self.gate()
        running = self.call(provider, "wait", gate, "running")
        await until("a call in flight", lambda: provider.in_flight == 1, seconds=5)
        stopping = provider.stopService()
        with self.assertRaises(ProviderStopped):
            await provider.run(self.client.echo)
        await settle()
        self.assertNoResult(stopping)
        self.assertEqual(self.client.closed, 0)
        gate.set()
        self.assertEqual(await running, "running")
        await stopping
        self.assertEqual(self.client.closed, 1)
        with self.assertRaises(ProviderStopped):
            await provider.run(self.client.echo)

    async def test_stop_fails_waiting_calls(self) -> None:
        provider = self.provider(threads=1)
        gate = self.gate()
        running = self.call(provider, "wait", gate, "running")
        await until("a call in flight", lambda: provider.in_flight == 1, seconds=5)
        waiting = self.call(provider, "wait", gate, "waiting")
        stopping = provider.stopService()
        self.failureResultOf(waiting, ProviderStopped)
        gate.set()
        self.assertEqual(await running, "running")
        await stopping
        self.assertEqual(self.client.started, ["running"])

    async def test_stop_gives_up_on_a_stuck_call(self) -> None:
        provider = self.provider(stop_grace=0.3)
        gate = self.gate()  # opened only on cleanup
        stuck = self.call(provider, "wait", gate, "stuck")
        await until("a call in flight", lambda: provider.in_flight == 1, seconds=5)
        started = time.monotonic()
        await provider.stopService()
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.29)
        self.assertLess(elapsed, 1.3)
        self.failureResultOf(stuck, ProviderStopped)
        self.assertEqual(provider.in_flight, 1)  # abandoned: a daemon thread
        await until("the client closed", lambda: self.client.closed == 1, seconds=5)

    async def test_stop_grace_on_the_injected_clock(self) -> None:
        clock = ThreadedClock()
        provider = self.provider(clock=clock, stop_grace=30)
        gate = self.gate()
        stuck = self.call(provider, "wait", gate, "stuck")
        await until("a call in flight", lambda: provider.in_flight == 1, seconds=5)
        stopping = provider.stopService()
        clock.advance(29)
        self.assertNoResult(stopping)
        clock.advance(1)
        self.successResultOf(stopping)
        self.failureResultOf(stuck, ProviderStopped)
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_stop_without_calls(self) -> None:
        provider = self.provider()
        await provider.run(self.client.echo)
        await provider.stopService()
        self.assertEqual(self.client.closed, 1)
        self.assertFalse(provider.running)

    async def test_close_failure_is_logged(self) -> None:
        class Broken(FakeClient):
            def close(self) -> None:
                raise RuntimeError("logout failed")

        provider = self.provider(Broken())
        await provider.stopService()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_client_without_close(self) -> None:
        class Bare:
            def ping(self) -> str:
                return "pong"

        provider = self.provider(Bare())
        self.assertEqual(await provider.ping(), "pong")
        await provider.stopService()

    async def test_restart(self) -> None:
        provider = self.provider()
        await provider.stopService()
        provider.startService()
        self.assertEqual(await provider.run(self.client.echo, 2), ((2,), {}))


class SimulatorTests(TestCase):
    async def test_folders_asked_for_together_are_read_together(self) -> None:
        server = start_vcsim(inventory(vms=[
            {"folder": FOLDER, "names": ["vm1", "vm2"], "power_on": True},
            {"folder": "Pools/small", "count": 3, "prefix": "s"}]), self)
        client = server.client()
        provider = Provider(client, reactor, threads=2)
        provider.startService()
        self.addCleanup(provider.stopService)
        await provider.inventory(FOLDER)
        await provider.inventory("Pools/small")  # the folders are known now
        before = client.round_trips
        reads = [ensureDeferred(provider.inventory(folder))
                 for folder in (FOLDER, "Pools/small", "Pools/nope", FOLDER)]
        nope = reads.pop(2)
        debian, small, again = await gatherResults(reads)
        await self.assertFailure(nope, NotFound)
        self.assertEqual([vm.name for vm in debian], ["vm1", "vm2"])
        self.assertEqual([vm.name for vm in small], ["s-000", "s-001", "s-002"])
        self.assertEqual(again, debian)
        # the unknown folder's lookup (two finds, not cached), then one read
        self.assertEqual(client.round_trips - before, 3)

    async def test_inventory_timeout_and_recovery(self) -> None:
        server = start_vcsim(
            inventory(vms=[{"folder": FOLDER, "names": ["vm1", "vm2"], "power_on": True}]), self
        )
        # A 1 s socket timeout frees the thread of a call the provider gave up on.
        client = server.client(timeout=1)
        provider = Provider(client, reactor, threads=2, call_timeout=10, stop_grace=5)
        provider.startService()
        self.addCleanup(provider.stopService)

        vms = await provider.inventory(FOLDER)
        self.assertEqual([vm.name for vm in vms], ["vm1", "vm2"])

        server.hang()
        started = time.monotonic()
        with self.assertRaises(ProviderTimeout):
            await provider.run(client.inventory, FOLDER, timeout=0.3)
        self.assertLess(time.monotonic() - started, 1)
        await until("the socket timeout", lambda: provider.in_flight == 0, seconds=5)

        server.resume()
        vms = await provider.run(client.inventory, FOLDER, timeout=5)
        self.assertEqual([vm.name for vm in vms], ["vm1", "vm2"])
