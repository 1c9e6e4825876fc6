"""The pool manager against a real Redis and the vSphere simulator."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.task import Clock, deferLater
from twisted.logger import formatEvent
from twisted.trial.unittest import TestCase

from vmpoolerd.config import RedisConfig
from vmpoolerd.manager.clones import SlotWaiters
from vmpoolerd.manager.loop import WAKE_SPACING
from vmpoolerd.manager.maintainer import Maintainer
from vmpoolerd.manager.ondemand import OndemandWorker
from vmpoolerd.manager.pool_plan import Clone, MarkEmpty
from vmpoolerd.manager.tasks import TASK_LEASE
from vmpoolerd.manager.service import Manager
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.store.connection import subscribe_checkouts
from vmpoolerd.store.ondemand import Wanted
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.timefmt import format_time, local_date
from vmpoolerd.vsphere.types import VmState

from .fixtures import sets_of
from .logs import captured_events
from .manager_case import CENTOS, DEBIAN, FOLDERS, ManagerCase, ScriptedProvider, manager_config
from .redis_server import RedisServer, fresh_redis
from .waiting import until


class FillTests(ManagerCase):
    async def test_pools_fill_with_ready_vms(self) -> None:
        self.start()
        await until("full pools", self.full)
        for pool in (DEBIAN, CENTOS):
            ready = await self.members("ready", pool)
            vms = {vm.name: vm for vm in self.vsphere.inventory(FOLDERS[pool])}
            for name in ready:
                self.assertTrue(name.startswith("t-") and len(name) == 17, name)
                self.assertTrue(vms[name].powered_on)
                self.assertEqual(vms[name].hostname, name)
                fields = await self.redis.hgetall(f"vmpooler__vm__{name}")
                self.assertEqual(fields["template"], pool)
                self.assertIn("clone_time", fields)
            self.assertIsNone(await self.redis.get(f"vmpooler__empty__{pool}"))
        day = local_date(reactor.seconds()).isoformat()
        self.assertGreaterEqual(len(await self.redis.hgetall(f"vmpooler__clone__{day}")), 5)
        self.assertGreaterEqual(len(await self.redis.hgetall(f"vmpooler__boot__{day}")), 5)
        self.assertEqual(set(await self.redis.hkeys("vmpooler__lastboot")), {DEBIAN, CENTOS})
        await until("no clone in flight",
                         lambda: self.redis.get("vmpooler__tasks__clone").addCallback(
                             lambda n: n == "0"))
        await self.assert_one_set_each()
        status = (await self.client.get("/api/v1/status")).body
        self.assertEqual(status["pools"][DEBIAN]["ready"], 3)


class SlotWaitTests(ManagerCase):
    """Note [Waiting for a clone slot]: one slot for both pools and loops
    that would wait 30 s after a quiet cycle; the pool refused the slot is
    woken by the other's clone ending, not by its loop."""

    service = {"task_limit": 1, "check_loop_delay_min": 30, "check_loop_delay_max": 60}
    vcsim = {"boot_delay_ms": 0, "clone_delay_ms": 300}

    async def test_a_pool_refused_a_slot_clones_when_one_frees(self) -> None:
        self.start()

        async def both_cloned() -> bool:
            for pool in (DEBIAN, CENTOS):
                if not (await self.redis.scard(f"vmpooler__pending__{pool}")
                        or await self.redis.scard(f"vmpooler__ready__{pool}")):
                    return False
            return True
        await until("a clone for each pool, well before their loops' 30 s", both_cloned,
                    seconds=15)


class SlotWaitersTests(TestCase):
    def test_the_longest_waiting_pool_is_woken_first_and_once(self) -> None:
        woken: list[str] = []
        waiters = SlotWaiters()
        for pool in ("a", "b", "a", "c"):
            waiters.wait(pool, lambda pool=pool: woken.append(pool))  # type: ignore[misc]
        for _ in range(4):
            waiters.freed()
        self.assertEqual(woken, ["a", "b", "c"])


class NoHostnameTests(ManagerCase):
    """Readiness as vmpooler 3.x's: the port, not the hostname."""

    vcsim = {"boot_delay_ms": 200, "no_hostname": True}

    async def test_a_template_that_never_reports_a_hostname_fills_its_pool(self) -> None:
        self.start()
        await until("full pools", self.full)
        for pool in (DEBIAN, CENTOS):
            for vm in self.vsphere.inventory(FOLDERS[pool]):
                self.assertIsNone(vm.hostname, vm.name)
                self.assertIsNotNone(vm.ip, vm.name)


class CheckoutTests(ManagerCase):
    # Quiet cycles back off fast: 0.05, 0.5, 5, 30 s.
    service = {"check_loop_delay_max": 30, "check_loop_delay_decay": 10}

    async def test_checkout_is_replaced_at_once(self) -> None:
        self.start()
        await until("full pools", self.full)
        # Let the loop back off, so that only the wake-up can be fast (real
        # time: the daemon's own reactor runs the loop).
        await deferLater(reactor, 1.0)
        cycles = self.manager.maintainers[DEBIAN].cycles
        await deferLater(reactor, 1.0)  # real time: no cycle in a second shows the back-off
        self.assertEqual(self.manager.maintainers[DEBIAN].cycles, cycles, "not backed off")
        answer = await self.client.post(f"/api/v1/vm/{DEBIAN}")
        self.assertEqual(answer.code, 200)
        asked = reactor.seconds()
        host = answer.body[DEBIAN]["hostname"]

        async def replacement() -> bool:
            pending = await self.members("pending", DEBIAN)
            return bool(pending)
        await until("a replacement clone", replacement, seconds=5)
        self.assertLess(reactor.seconds() - asked, 1.0)
        await until("full pools again", self.full)
        self.assertIn(host, await self.members("running", DEBIAN))

        # Handing it back destroys it.
        self.assertEqual((await self.client.delete(f"/api/v1/vm/{host}")).code, 200)
        await until("the VM destroyed", lambda: self._gone(host, DEBIAN))
        fields = await self.redis.hgetall(f"vmpooler__vm__{host}")
        self.assertIn("destroy", fields)
        ttl = await self.redis.ttl(f"vmpooler__vm__{host}")
        self.assertTrue(0 < ttl <= 168 * 3600, ttl)
        await self.assert_one_set_each()

    async def _gone(self, host: str, pool: str) -> bool:
        sets = await sets_of(self.redis, self.config)
        return host not in self.names_in(pool) and not any(host in m for m in sets.values())

    async def test_running_past_lifetime_is_destroyed(self) -> None:
        self.start()
        await until("full pools", self.full)
        host = (await self.client.post(f"/api/v1/vm/{CENTOS}")).body[CENTOS]["hostname"]
        await self.redis.hset(f"vmpooler__vm__{host}", "checkout",
                              format_time(reactor.seconds() - 7200))
        await self.redis.hset(f"vmpooler__vm__{host}", "lifetime", "1")
        await until("the VM destroyed", lambda: self._gone(host, CENTOS))


class HealingTests(ManagerCase):
    async def test_ready_vm_powered_off_is_replaced(self) -> None:
        self.start()
        await until("full pools", self.full)
        victim = sorted(await self.members("ready", DEBIAN))[0]
        self.vsphere.power_off(FOLDERS[DEBIAN], victim)

        async def replaced() -> bool:
            return victim not in self.names_in(DEBIAN) and await self.full()
        await until("the powered-off VM replaced", replaced)

    async def test_a_checked_out_vm_also_discovered_is_kept(self) -> None:
        # vmpooler's inventory check could leave a VM in two sets.
        self.start()
        await until("full pools", self.full)
        host = (await self.client.post(f"/api/v1/vm/{DEBIAN}")).body[DEBIAN]["hostname"]
        await self.redis.sadd(f"vmpooler__discovered__{DEBIAN}", [host])
        self.manager.wake(DEBIAN)

        async def undiscovered() -> bool:
            return not await self.redis.sismember(f"vmpooler__discovered__{DEBIAN}", host)
        await until("the VM out of discovered", undiscovered)
        await until("the pool refilled", self.full)
        self.assertIn(host, self.names_in(DEBIAN))
        self.assertIn(host, await self.members("running", DEBIAN))
        await self.assert_one_set_each()

    async def test_unknown_vm_in_folder_is_destroyed(self) -> None:
        self.start()
        await until("full pools", self.full)
        self.vsphere.clone("Templates/centos-7-plain", FOLDERS[CENTOS], "LocalDS_0", "stray-vm")
        self.assertIn("stray-vm", self.names_in(CENTOS))
        await until("the stray VM destroyed", lambda: "stray-vm" not in self.names_in(CENTOS))
        # Its record goes once the destroy has returned (a moment after).
        await until("the stray VM out of discovered", lambda: self.redis.sismember(
            f"vmpooler__discovered__{CENTOS}", "stray-vm").addCallback(lambda member: not member))

    async def test_restart_reconciles(self) -> None:
        # A crashed daemon left: a pending name whose clone never started,
        # a stale clone-in-flight entry, and a VM in vSphere Redis never knew.
        await self.redis.sadd(f"vmpooler__pending__{DEBIAN}", ["t-lostclone00000"])
        await self.redis.hset("vmpooler__vm__t-lostclone00000", "template", DEBIAN)
        await self.redis.hset("vmpooler__vm__t-lostclone00000", "clone",
                              format_time(reactor.seconds() - 3600))
        await self.redis.hset("vmpooler__cloning", "t-lostclone00000",
                              str(int(reactor.seconds() - 3600)))
        self.vsphere.clone("Templates/centos-7-plain", FOLDERS[DEBIAN], "LocalDS_0",
                           "t-orphan0000000")
        self.start()
        await until("full pools", self.full)

        async def clean() -> bool:
            names = self.names_in(DEBIAN)
            pending = await self.members("pending", DEBIAN)
            return ("t-orphan0000000" not in names and "t-lostclone00000" not in pending
                    and not await self.redis.hexists("vmpooler__cloning", "t-lostclone00000"))
        await until("the crash cleaned up", clean)
        await self.assert_one_set_each()


class TimeoutTests(ManagerCase):
    vcsim = {"boot_delay_ms": 3_600_000}  # clones never boot
    service = {"timeout": 0.02}  # 1.2 s

    async def test_pending_past_timeout_is_destroyed(self) -> None:
        self.start()

        async def timed_out() -> set[str]:
            day = local_date(reactor.seconds()).isoformat()
            clones = await self.redis.hkeys(f"vmpooler__clone__{day}")
            names = {c.split(":", 1)[1] for c in clones if c.startswith(DEBIAN)}
            held = {h for m in (await sets_of(self.redis, self.config)).values() for h in m}
            return names - self.names_in(DEBIAN) - held
        gone = await until("a clone timed out and destroyed", timed_out)
        for name in gone:
            self.assertIn("destroy", await self.redis.hgetall(f"vmpooler__vm__{name}"))
        self.assertEqual(await self.members("ready", DEBIAN), set())
        self.assertEqual(await self.redis.get(f"vmpooler__empty__{DEBIAN}"), "true")


class SessionTests(ManagerCase):
    vcsim = {"boot_delay_ms": 200, "session_idle": "1s"}
    # Quiet cycles back off fast (0.05, 0.5, 5 s), so the session idles.
    service = {"check_loop_delay_max": 30, "check_loop_delay_decay": 10}

    async def test_an_expired_session_logs_in_again(self) -> None:
        self.start()
        await until("full pools", self.full)
        session = self.daemon_vsphere.session_key
        # The session ends while the daemon idles, as an idle one would.
        self.server.end_sessions()
        host = (await self.client.post(f"/api/v1/vm/{DEBIAN}")).body[DEBIAN]["hostname"]
        await until("a replacement clone ready", self.full)
        self.assertIn(host, await self.members("running", DEBIAN))
        self.assertNotEqual(self.daemon_vsphere.session_key, session)
        self.assertIsNotNone(session)


class TaskLimitTests(ManagerCase):
    vcsim = {"boot_delay_ms": 100, "clone_delay_ms": 400}
    service = {"task_limit": 2}

    async def test_never_more_clones_than_the_limit(self) -> None:
        self.start()
        seen = []

        async def full_while_counting() -> bool:
            seen.append(await self.redis.hlen("vmpooler__cloning"))
            return await self.full()
        await until("full pools", full_while_counting, seconds=60)
        self.assertEqual(max(seen), 2)
        self.assertLessEqual(max(int(n) for n in [await self.redis.get(
            "vmpooler__tasks__clone")]), 2)


class StaleLeaseTests(ManagerCase):
    service = {"task_limit": 3}

    async def test_a_crashed_daemons_clones_do_not_stop_the_filling(self) -> None:
        # As many clone entries as task_limit, long past their deadline.
        stale = [f"t-crashed{i:07d}" for i in range(3)]
        for name in stale:
            await self.redis.hset("vmpooler__cloning", name, str(int(reactor.seconds() - 3600)))
        self.start()
        await until("full pools", self.full)
        self.assertFalse(set(stale) & set(await self.redis.hkeys("vmpooler__cloning")))


class SlowCloneTests(ManagerCase):
    vcsim = {"boot_delay_ms": 100, "clone_delay_ms": 4000}
    # Clones take 4 s; the pool's timeout is 1.2 s, and so is the lease
    # (two cycles of at most 0.5 s are less): the maintainers renew it.
    service = {"task_limit": 2, "timeout": 0.02}

    async def test_clones_outlasting_the_timeout_keep_their_slots(self) -> None:
        lock = threading.Lock()
        running, most, ended = [0], [0], [0]
        clone = self.daemon_vsphere.clone

        def counted(*args: Any, **kwargs: Any) -> Any:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                return clone(*args, **kwargs)
            finally:
                with lock:
                    running[0] -= 1
                    ended[0] += 1
        self.daemon_vsphere.clone = counted  # type: ignore[method-assign]
        self.start()
        # Two rounds of clones: each outlives its first lease, renewed meanwhile.
        await until("two rounds of clones", lambda: ended[0] >= 4, seconds=30)
        self.assertEqual(most[0], 2)
        self.assertLessEqual(len(await self.redis.hkeys("vmpooler__cloning")), 2)


class OutageTests(ManagerCase):
    client_timeout = 1.0

    async def test_vsphere_stops_answering(self) -> None:
        self.start()
        await until("full pools", self.full)
        ready_before = await self.members("ready", DEBIAN)
        self.server.hang()
        cycles = self.manager.maintainers[DEBIAN].cycles
        # Inventories time out, cycles fail and are logged, the loop goes on.
        await until("cycles despite the outage",
                    lambda: self.manager.maintainers[DEBIAN].cycles >= cycles + 2)
        # Checkouts go on from the ready pools, and nothing was destroyed
        # or completed on missing data.
        answer = await self.client.post(f"/api/v1/vm/{DEBIAN}")
        self.assertEqual(answer.code, 200)
        host = answer.body[DEBIAN]["hostname"]
        self.assertEqual(await self.members("ready", DEBIAN) | {host}, ready_before)
        self.assertEqual(await self.members("completed", DEBIAN), set())
        self.server.resume()
        await until("full pools again", self.full, seconds=60)
        self.assertIn(host, await self.members("running", DEBIAN))


class TaskTests(ManagerCase):
    async def test_disks_and_snapshots(self) -> None:
        self.start()
        await until("full pools", self.full)
        host = (await self.client.post(f"/api/v1/vm/{DEBIAN}")).body[DEBIAN]["hostname"]
        self.assertEqual((await self.client.post(f"/api/v1/vm/{host}/disk/4")).code, 202)
        answer = await self.client.post(f"/api/v1/vm/{host}/snapshot")
        snapshot = answer.body[host]["snapshot"]

        async def done() -> Any:
            info = (await self.client.get(f"/api/v1/vm/{host}")).body[host]
            return info.get("disk") and info.get("snapshots") and info
        info = await until("disk and snapshot done", done)
        self.assertEqual(info["disk"], ["+4gb"])
        self.assertEqual(info["snapshots"], [snapshot])
        self.assertIn(4, [round(d.size_gb) for d in self.vsphere.disks(FOLDERS[DEBIAN], host)])
        self.assertEqual(self.vsphere.snapshots(FOLDERS[DEBIAN], host), [snapshot])
        answer = await self.client.post(f"/api/v1/vm/{host}/snapshot/{snapshot}")
        self.assertEqual(answer.code, 202)
        await until("revert done", lambda: self.redis.scard(
            "vmpooler__tasks__snapshot-revert").addCallback(lambda n: n == 0))


class RaceTests(TestCase):
    """Interleavings the simulator cannot time, driven by hand."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.config = manager_config(1, 0, ready_check_port=0, check_loop_delay_min=0.1)
        self.pool = dataclasses.replace(self.config.pools[0], size=1)

    async def test_a_clone_ending_during_the_inventory_is_kept(self) -> None:
        provider = ScriptedProvider()
        maintainer = Maintainer(self.pool, self.config, PoolStore(self.redis, reactor),
                                provider, reactor)
        first = ensureDeferred(maintainer.cycle())
        await self.asked(provider, "inventory")
        provider.answer("inventory", [])
        self.assertEqual(await first, [Clone(1), MarkEmpty(True)])
        await self.asked(provider, "clone")
        name = provider.calls["clone"][0][0][3]
        # The next inventory is read while the clone is still running...
        second = ensureDeferred(maintainer.cycle())
        await self.asked(provider, "inventory")
        # ...the clone ends, and is recorded, before the inventory answers.
        provider.answer("clone", 2.0)
        await until("the clone's end recorded", lambda: self.redis.hexists(
            "vmpooler__cloning", name).addCallback(lambda there: not there))
        provider.answer("inventory", [])
        self.assertEqual(await second, [])
        self.assertEqual(await self.redis.smembers(f"vmpooler__pending__{DEBIAN}"), {name})

    async def test_an_on_demand_clone_ending_during_the_inventory_is_kept(self) -> None:
        """The same interleaving for an on-demand request's clone: it was
        once taken for a lost clone, failing the request."""
        provider = ScriptedProvider()
        store = PoolStore(self.redis, reactor)
        worker = OndemandWorker(self.config, store, {DEBIAN: provider, CENTOS: provider},
                                reactor)
        now = reactor.seconds()
        await store.ondemand.create("r1", [Wanted(DEBIAN, DEBIAN, 1)], now, "user:u", (1, 1))
        first = ensureDeferred(worker.cycle())
        await self.asked(provider, "inventory")
        provider.answer("inventory", [])
        await first
        await self.asked(provider, "clone")
        name = provider.calls["clone"][0][0][3]
        second = ensureDeferred(worker.cycle())
        await self.asked(provider, "inventory")
        provider.answer("clone", 2.0)
        await until("the clone's end recorded", lambda: self.redis.hexists(
            "vmpooler__cloning", name).addCallback(lambda there: not there))
        provider.answer("inventory", [])
        await second
        request = await store.ondemand.request("r1")
        assert request is not None
        self.assertEqual((request.failures, [vm.name for vm in request.pending]), (0, [name]))

    async def test_linked_clones_where_the_config_asks(self) -> None:
        for own, linked in ((None, False), (True, True)):
            pool = dataclasses.replace(self.pool, create_linked_clone=own)
            config = dataclasses.replace(self.config, pools=(pool,))
            provider = ScriptedProvider()
            maintainer = Maintainer(pool, config, PoolStore(self.redis, reactor), provider,
                                    reactor)
            cycle = ensureDeferred(maintainer.cycle())
            await self.asked(provider, "inventory")
            provider.answer("inventory", [])
            await cycle
            await self.asked(provider, "clone")
            self.assertIs(provider.answer("clone", 1.0)[4], linked)
            await maintainer.stop(1)
            await self.redis.flushdb()

    async def test_a_slow_inventory_does_not_let_a_clones_lease_run_out(self) -> None:
        # A lease of 1 s (the pool's timeout is shorter, two cycles of at
        # most 0.5 s are not); the inventory takes 2.5 s on the maintainer's
        # clock (deadlines are whole seconds).
        pool = dataclasses.replace(self.pool, timeout_minutes=0.01)
        provider = ScriptedProvider()
        clock = Clock()
        clock.advance(reactor.seconds())
        maintainer = Maintainer(pool, self.config, PoolStore(self.redis, reactor),
                                provider, clock)
        first = ensureDeferred(maintainer.cycle())
        await self.asked(provider, "inventory")
        provider.answer("inventory", [])
        await first
        (name,) = await self.redis.hkeys("vmpooler__cloning")  # its clone runs on
        second = ensureDeferred(maintainer.cycle())
        await self.asked(provider, "inventory")
        clock.advance(2.5)
        provider.answer("inventory", [])
        await second
        deadline = await self.redis.hget("vmpooler__cloning", name)
        self.assertIsNotNone(deadline, "the lease ran out and was dropped")
        self.assertGreaterEqual(int(deadline), int(clock.seconds()))

    async def asked(self, provider: ScriptedProvider, method: str) -> None:
        """Until ``method`` has been called and not answered."""
        await until(f"{method} called", lambda: provider.calls.get(method), seconds=5)

    async def test_two_daemons_fill_a_pool_once(self) -> None:
        pool = dataclasses.replace(self.pool, size=5)
        providers = [ScriptedProvider(), ScriptedProvider()]
        maintainers = [Maintainer(pool, self.config, PoolStore(self.redis, reactor), p,
                                  reactor) for p in providers]
        cycles = [ensureDeferred(m.cycle()) for m in maintainers]
        for provider in providers:
            await self.asked(provider, "inventory")
        for provider in providers:
            provider.answer("inventory", [])
        await gatherResults(cycles)
        started = sum(len(p.calls.get("clone", [])) for p in providers)
        self.assertEqual(started, 5)
        self.assertEqual(await self.redis.scard(f"vmpooler__pending__{DEBIAN}"), 5)
        self.assertEqual(await self.redis.get("vmpooler__tasks__clone"), "5")

    async def test_stop_is_bounded_with_vsphere_work_stuck(self) -> None:
        host = "t-stuck000000000"
        await self.redis.hset(f"vmpooler__vm__{host}", "template", DEBIAN)
        await self.redis.sadd("vmpooler__tasks__disk", [f"{host}:8", f"{host}:9"])
        provider = ScriptedProvider()  # answers nothing: a vCenter that hangs
        manager = Manager(self.config, PoolStore(self.redis, reactor), provider, reactor,
                          grace=0.5)
        manager.startService()
        await self.asked(provider, "add_disk")
        self.assertEqual(len(provider.calls["add_disk"]), 1)  # one stuck, one queued
        started = reactor.seconds()
        await manager.stopService()
        self.assertLess(reactor.seconds() - started, 2.0)
        # The request not begun is still queued for the next start, and the
        # stuck one is still recorded as in progress: neither is lost.
        self.assertEqual(await self.redis.scard("vmpooler__tasks__disk"), 1)
        self.assertEqual(await self.redis.hlen("vmpooler__tasks__disk__working"), 1)
        self.flushLoggedErrors()

    async def test_a_request_a_dead_worker_took_is_queued_again_after_the_lease(self) -> None:
        """Note [Requests in progress] in vmpoolerd/store/lua/task_pop.lua."""
        host = "t-known000000000"
        await self.redis.hset(f"vmpooler__vm__{host}", "template", DEBIAN)
        await self.redis.sadd("vmpooler__tasks__disk", [f"{host}:8"])
        store = PoolStore(self.redis, reactor)
        taken = await store.pop_task("disk", 1000.0, TASK_LEASE)  # then the worker dies
        assert taken is not None
        self.assertIsNone(await store.pop_task("disk", 1000.0 + TASK_LEASE, TASK_LEASE))
        again = await store.pop_task("disk", 1000.0 + TASK_LEASE + 1, TASK_LEASE)
        self.assertEqual(again, taken)
        await store.task_done(taken)
        self.assertEqual(await self.redis.hlen("vmpooler__tasks__disk__working"), 0)
        self.assertIsNone(await store.pop_task("disk", 1e9, TASK_LEASE))

    async def test_task_requests_are_taken_with_their_pool(self) -> None:
        host = "t-known000000000"
        await self.redis.hset(f"vmpooler__vm__{host}", "template", DEBIAN)
        await self.redis.sadd("vmpooler__tasks__disk", [f"{host}:8", "t-unknown0000000:8"])
        provider = ScriptedProvider()
        worker = Manager(self.config, PoolStore(self.redis, reactor), provider, reactor).tasks
        events = captured_events(self)
        run = ensureDeferred(worker.run_once())
        await self.asked(provider, "add_disk")
        self.assertEqual(provider.answer("add_disk", None), (FOLDERS[DEBIAN], host, 8))
        self.assertEqual(await run, 1)
        self.assertEqual(await self.redis.hget(f"vmpooler__vm__{host}", "disk"), "+8gb")
        self.assertEqual(await self.redis.scard("vmpooler__tasks__disk"), 0)
        self.assertEqual(await self.redis.hlen("vmpooler__tasks__disk__working"), 0)
        self.assertTrue(any("request for unknown VM 't-unknown0000000' dropped"
                            in formatEvent(e) for e in events))

    async def test_a_wake_during_a_cycle_runs_another(self) -> None:
        config = manager_config(1, 0, ready_check_port=0, check_loop_delay_min=30,
                                check_loop_delay_max=60)
        provider = ScriptedProvider()
        clock = Clock()
        maintainer = Maintainer(self.pool, config, PoolStore(self.redis, reactor), provider,
                                clock)
        maintainer.start()
        def stop() -> Deferred[None]:
            stopped = ensureDeferred(maintainer.stop(0))
            clock.advance(0)  # the grace is over: the clone in flight is given up
            return stopped
        self.addCleanup(stop)
        clock.advance(0)
        await self.asked(provider, "inventory")
        maintainer.wake()  # a checkout while the inventory is being read
        provider.answer("inventory", [])
        await until("the cycle done", lambda: maintainer.cycles == 1)
        clock.advance(WAKE_SPACING - 0.01)
        self.assertNotIn("inventory", {m for m, calls in provider.calls.items() if calls})
        clock.advance(0.01)  # WAKE_SPACING, not check_loop_delay_min
        await self.asked(provider, "inventory")
        provider.answer("inventory", [])
        await until("the second cycle done", lambda: maintainer.cycles == 2)


class WakeupTests(TestCase):
    async def test_the_subscription_logs_in_again_until_redis_accepts(self) -> None:
        server = RedisServer("--requirepass", "old-pw")
        self.addCleanup(server.stop)
        woken: list[str] = []
        subscription = subscribe_checkouts(
            RedisConfig(server="127.0.0.1", port=server.port, password="new-pw"), reactor,
            woken.append)
        self.addCleanup(subscription.disconnect)
        await deferLater(reactor, 0.3)  # refused: wrong password
        server.cli("-a", "old-pw", "--no-auth-warning", "CONFIG", "SET", "requirepass", "new-pw")

        def published() -> bool:
            server.cli("-a", "new-pw", "--no-auth-warning", "PUBLISH", "vmpooler__checkout",
                       DEBIAN)
            return bool(woken)
        # The back-off between attempts grows: give it a while.
        await until("a wake-up through the new password", published, seconds=20)
        self.assertEqual(woken[:1], [DEBIAN])


class LifetimeRaceTests(TestCase):
    """Note [Lifetimes re-checked] (issue 23, item 8): a lifetime extended
    between the cycle's read and its expiry move wins."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.config = manager_config(1, 0, ready_check_port=0, check_loop_delay_min=0.1)
        self.pool = dataclasses.replace(self.config.pools[0], size=0)
        self.host = "old1"
        await self.redis.sadd(f"vmpooler__running__{self.pool.name}", self.host)
        await self.redis.hmset(f"vmpooler__vm__{self.host}", {
            "template": self.pool.name, "checkout": format_time(reactor.seconds() - 7200),
            "lifetime": "1", "token:token": "t" * 32, "token:user": "jdoe"})

    async def cycle(self, put: str | None) -> list[Any]:
        """One cycle, with the VM's lifetime set to ``put`` (as a PUT
        would) just after the cycle read the pool."""
        redis = self.redis

        class PutBetween(PoolStore):
            async def pool_state(self, pool: str, epoch: float) -> Any:
                state = await super().pool_state(pool, epoch)
                if put is not None:
                    await ApiStore(redis, reactor).update_vm(
                        "old1", "2026-11-28", put, {})
                return state

        provider = ScriptedProvider()
        maintainer = Maintainer(self.pool, self.config, PutBetween(self.redis, reactor),
                                provider, reactor)
        cycle = ensureDeferred(maintainer.cycle())
        await until("the inventory asked", lambda: provider.calls.get("inventory"))
        provider.answer("inventory", [VmState(self.host, "poweredOn", self.host, None, None)])
        return await cycle

    async def test_a_lifetime_extended_after_the_read_keeps_the_vm(self) -> None:
        actions = await self.cycle(put="48")
        self.assertIn("Complete", [type(a).__name__ for a in actions])  # judged expired
        self.assertEqual(await self.redis.smembers(f"vmpooler__running__{self.pool.name}"),
                         {self.host})
        self.assertEqual(await self.redis.smembers(f"vmpooler__completed__{self.pool.name}"),
                         set())

    async def test_an_unchanged_lifetime_ends(self) -> None:
        await self.cycle(put=None)
        self.assertEqual(await self.redis.smembers(f"vmpooler__completed__{self.pool.name}"),
                         {self.host})
