"""
Several daemons on one Redis, as separate twistd processes:
managers spread the pools and take over a killed one's, a manager killed
mid-clone leaves its pool short for seconds, not for its timeout, and the
README's deployment (two managers, two API daemons, Sentinel) survives
its master's death.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import treq

from vmpoolerd.names import public_manager

from .daemons import DaemonCase
from .processes import free_port
from .redis_server import fresh_redis, redis_server
from .sentinel_servers import SentinelGroup, connected
from .vcsim_server import VcsimServer, start_vcsim
from .waiting import until

POOLS = {"debian-7": ("Templates/debian/debian-7-x86_64", "Pools/debian-7"),
         "centos-7": ("Templates/centos-7-plain", "Pools/nested/centos-7")}


def config(vcsim: VcsimServer, port: int, size: int = 2) -> str:
    pools = "".join(
        f"  - name: '{name}'\n    template: '{template}'\n    folder: '{folder}'\n"
        f"    datastore: 'LocalDS_0'\n    size: {size}\n"
        for name, (template, folder) in POOLS.items())
    return (f":vsphere:\n  server: '{vcsim.host}'\n  port: {vcsim.port}\n"
            f"  username: '{vcsim.username}'\n  password: '{vcsim.password}'\n"
            "  insecure: true\n"
            f":redis:\n  server: '127.0.0.1'\n  port: {redis_server().config.port}\n"
            f":config:\n  host: '127.0.0.1'\n  port: {port}\n  ready_check_port: 0\n"
            "  check_loop_delay_min: 0.2\n  check_loop_delay_max: 2\n  prefix: 't-'\n"
            ":pools:\n" + pools)


def pid_of(manager_id: str | None) -> int | None:
    """The process of a manager id (host:pid:random)."""
    return None if manager_id is None else int(manager_id.split(":")[1])


class SeveralManagersTests(DaemonCase):
    timeout = 120

    async def test_managers_spread_the_pools_and_take_over_a_killed_ones(self) -> None:
        redis = await fresh_redis(self)
        vcsim = start_vcsim(None, self, boot_delay_ms=100)
        api_port = free_port()
        managers: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
        for _ in range(2):
            port = free_port()
            process = self.start(config(vcsim, port), "--role", "manager")
            managers[process.pid] = (process, port)
            await self.wait_listening(process, port)
        api = self.start(config(vcsim, api_port), "--role", "api")
        await self.wait_listening(api, api_port)

        async def holders() -> dict[str, int | None]:
            return {pool: pid_of(await redis.get(f"vmpooler__lease__{pool}")) for pool in POOLS}

        async def spread() -> bool:
            return set((await holders()).values()) == set(managers)
        await until("each manager to hold a pool", spread, seconds=15)

        async def full() -> bool:
            return all([await redis.scard(f"vmpooler__ready__{p}") == 2 for p in POOLS])
        await until("the pools to fill", full, seconds=30)
        held = await holders()
        status = json.loads(await (await treq.get(
            f"http://127.0.0.1:{api_port}/status", persistent=False)).content())
        # /status names each holder by its public name (Note [Public failures]).
        ids = {p: await redis.get(f"vmpooler__lease__{p}") for p in POOLS}
        self.assertEqual({p: pid_of(ids[p]) for p in POOLS}, held)
        self.assertEqual({p: status["pools"][p]["manager"] for p in POOLS},
                         {p: public_manager(ids[p]) for p in POOLS})
        for pid, (_, port) in managers.items():
            metrics = (await (await treq.get(f"http://127.0.0.1:{port}/metrics",
                                             persistent=False)).content()).decode()
            for pool, holder in held.items():
                line = next(m for m in metrics.splitlines()
                            if m.startswith("vmpooler_pool_lease{") and f'pool="{pool}"' in m)
                self.assertTrue(line.endswith(" 1.0" if holder == pid else " 0.0"), line)

        # kill -9 the manager of debian-7: the other takes it over within
        # 15 s (its lease runs out in 10, the next round takes it) and
        # keeps it full.
        victim = held["debian-7"]
        assert victim is not None
        managers[victim][0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        survivor = next(pid for pid in managers if pid != victim)

        async def taken() -> bool:
            return set((await holders()).values()) == {survivor}
        await until("the survivor to hold both pools", taken, seconds=15)
        self.assertLess(time.monotonic() - killed, 15)
        response = await treq.post(
            f"http://127.0.0.1:{api_port}/api/v1/vm/debian-7+debian-7", persistent=False)
        body = json.loads(await response.content())
        self.assertEqual(response.code, 200, body)
        await until("the survivor to refill debian-7", full, seconds=30)
        self.assertEqual(len(vcsim.client().inventory(POOLS["debian-7"][1])), 4)

    async def test_a_manager_killed_mid_clone_is_replaced_in_seconds(self) -> None:
        """Clones take seconds; the manager dies with all of them in flight.
        A new manager fills the pool well within a minute, although the
        pool's timeout is 15: the dead one's reservations run out in 15 s,
        and its clones are adopted if they reached vSphere powered on,
        replaced if not (the simulator leaves a clone off until its
        daemon powers it on)."""
        redis = await fresh_redis(self)
        vcsim = start_vcsim(None, self, boot_delay_ms=100, clone_delay_ms=2000)
        port = free_port()
        first = self.start(config(vcsim, port, size=3), "--role", "manager")
        await self.wait_listening(first, port)

        async def full() -> bool:
            return all([await redis.scard(f"vmpooler__ready__{p}") == 3 for p in POOLS])
        await until("the pools to fill", full, seconds=30)
        for pool in POOLS:  # as checkouts would: six clones to make
            for host in await redis.smembers(f"vmpooler__ready__{pool}"):
                await redis.smove(f"vmpooler__ready__{pool}", f"vmpooler__running__{pool}",
                                  host)

        async def in_flight() -> bool:
            return await redis.hlen("vmpooler__cloning") == 6
        await until("six clones in flight", in_flight, seconds=15)
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await until("the manager to die", lambda: first.poll() is not None, seconds=5)
        second = self.start(config(vcsim, port, size=3), "--role", "manager")
        await self.wait_listening(second, port)
        await until("the pools to be full again", full, seconds=60)
        self.assertLess(time.monotonic() - killed, 60)
        self.assertEqual(await redis.hlen("vmpooler__cloning"), 0)
        # Nothing leaked: every VM in the folders is known to Redis.
        known: set[str] = set()
        for pool in POOLS:
            for state in ("pending", "ready", "running", "completed", "discovered"):
                known |= set(await redis.smembers(f"vmpooler__{state}__{pool}"))
        for _, folder in POOLS.values():
            names = {vm.name for vm in vcsim.client().inventory(folder)}
            self.assertLessEqual(names, known)
        second.send_signal(signal.SIGTERM)
        self.assertEqual(await self.wait_exit(second), -signal.SIGTERM)


class SentinelDeploymentTests(DaemonCase):
    timeout = 120

    async def test_two_managers_and_two_api_daemons_through_sentinel(self) -> None:
        """The README's example: two managers and two API daemons, Redis
        behind three Sentinels.  The managers share the pools, both API
        daemons hand VMs out, and after the master's kill -9 the promoted
        replica serves them all, the pools kept full, no VM handed twice,
        Redis not in doubt."""
        group = SentinelGroup()
        self.addCleanup(group.stop)
        redis = connected(group, self)
        vcsim = start_vcsim(None, self, boot_delay_ms=100)

        def sentinel_config(port: int) -> str:
            plain = config(vcsim, port)
            start, end = plain.index(":redis:"), plain.index(":config:")
            return plain[:start] + group.yaml() + plain[end:]
        managers: list[tuple[subprocess.Popen[bytes], int]] = []
        apis: list[tuple[subprocess.Popen[bytes], int]] = []
        for role, started in (("manager", managers), ("manager", managers), ("api", apis),
                              ("api", apis)):
            port = free_port()
            process = self.start(sentinel_config(port), "--role", role)
            await self.wait_listening(process, port)
            started.append((process, port))

        async def holders() -> set[str | None]:
            return {await redis.get(f"vmpooler__lease__{pool}") for pool in POOLS}

        async def spread_and_full() -> bool:
            return (len(await holders() - {None}) == 2
                    and all([await redis.scard(f"vmpooler__ready__{p}") == 2 for p in POOLS]))
        await until("the managers to share the pools and fill them", spread_and_full,
                    seconds=30)
        handed: list[str] = []

        async def checkout(port: int, pool: str) -> None:
            response = await treq.post(f"http://127.0.0.1:{port}/api/v1/vm/{pool}",
                                       persistent=False)
            body = json.loads(await response.content())
            self.assertEqual(response.code, 200, body)
            handed.append(body[pool]["hostname"])
        for (_, port), pool in zip(apis, POOLS):
            await checkout(port, pool)
        await until("the pools to refill", spread_and_full, seconds=30)
        group.kill_master()
        await until("the Sentinels to promote the replica", group.promoted, seconds=30)

        async def answered() -> bool:
            response = await treq.post(f"http://127.0.0.1:{apis[1][1]}/api/v1/vm/debian-7",
                                       persistent=False)
            body = json.loads(await response.content())
            if response.code == 200:
                handed.append(body["debian-7"]["hostname"])
            return response.code == 200
        await until("a checkout answered by the promoted replica", answered, seconds=15)
        await checkout(apis[0][1], "centos-7")
        await until("the managers to refill the pools on the promoted replica",
                    spread_and_full, seconds=30)
        self.assertEqual(len(handed), len(set(handed)))
        running = set()
        for pool in POOLS:
            running |= set(await redis.smembers(f"vmpooler__running__{pool}"))
        self.assertEqual(running, set(handed))
        status = json.loads(await (await treq.get(
            f"http://127.0.0.1:{apis[0][1]}/status", persistent=False)).content())
        self.assertNotIn("doubt", status["status"])
        self.assertEqual({status["pools"][p]["manager"] for p in POOLS},
                         {public_manager(h) for h in await holders() if h is not None})
