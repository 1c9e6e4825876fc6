"""
What a 3.x fleet reads from Redis (Note [What a 3.x fleet reads] in
vmpoolerd/store/published.py): the pools published at start, and 3.x's
fields in each VM's hash.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vmpoolerd.config import Config, PoolConfig, parse_config
from vmpoolerd.config.sources import pool_from_redis
from vmpoolerd.store.ondemand import Wanted
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.store.published import pool_fields

from .manager_case import CENTOS, DEBIAN, ManagerCase
from .redis_server import fresh_redis
from .waiting import until

NOW = "2026-01-01 00:00:00 +0000"


def site(pools: list[dict[str, Any]] | None) -> str:
    raw: dict[str, Any] = {
        ":providers": {":vsphere": {"provider_class": "vsphere", "server": "s",
                                    "username": "u", "password": "p"}},
        ":config": {"domain": "site.example"},
        ":dns_configs": {":lab": {"dns_class": "dynamic-dns", "domain": "lab.example"}},
    }
    if pools is not None:
        raw[":pools"] = pools
    return yaml.safe_dump(raw)


POOLS = [
    {"name": "debian-7", "template": "Templates/debian-7", "folder": "Pools/debian-7",
     "datastore": "ds", "size": 3, "provider": "vsphere", "alias": ["debian", "deb"],
     "dns_plugin": "lab", "timeout": 10, "ready_ttl": 90, "clone_target": "cluster1",
     "pool": "rp", "datacenter": "dc1", "create_linked_clone": False,
     "check_hostname_for_mismatch": True},
    {"name": "centos-7", "template": "Templates/centos-7", "folder": "Pools/centos-7",
     "datastore": "ds", "size": 0, "provider": "vsphere"},
]


def a_config() -> Config:
    return parse_config(site(POOLS), {})


class FieldTests(SynchronousTestCase):
    def test_as_3x_keeps_a_pool(self) -> None:
        config = a_config()
        debian, centos = config.pools
        self.assertEqual(pool_fields(debian, config.domain_for(debian.name)), {
            "name": "debian-7", "template": "Templates/debian-7", "folder": "Pools/debian-7",
            "datastore": "ds", "size": "3", "provider": "vsphere", "alias": "debian,deb",
            "timeout": "10", "ready_ttl": "90", "clone_target": "cluster1", "pool": "rp",
            "datacenter": "dc1", "create_linked_clone": "false",
            "check_hostname_for_mismatch": "true", "dns_plugin": "lab",
            "domain": "lab.example"})
        self.assertEqual(pool_fields(centos, config.domain_for(centos.name)), {
            "name": "centos-7", "template": "Templates/centos-7", "folder": "Pools/centos-7",
            "datastore": "ds", "size": "0", "provider": "vsphere", "domain": "site.example"})

    def test_read_back_as_the_same_pools(self) -> None:
        """A file without :pools: finds in Redis the pools another daemon published."""
        config = a_config()
        published = [pool_from_redis(pool_fields(p, config.domain_for(p.name)))
                     for p in config.pools]
        again = parse_config(site(None), {}, redis_pools=published)

        def resolved(c: Config) -> list[PoolConfig]:
            # The domain read back is the pool's own, where it was :config:'s.
            return [dataclasses.replace(p, domain=c.domain_for(p.name)) for p in c.pools]
        self.assertEqual(resolved(again), resolved(config))


class StoreTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.store = PoolStore(self.redis, reactor)

    async def vm(self, host: str) -> dict[str, str]:
        return dict(await self.redis.hgetall(f"vmpooler__vm__{host}"))

    async def test_publish_replaces_and_drops(self) -> None:
        await self.redis.sadd("vmpooler__pools", "gone")
        await self.redis.hmset("vmpooler__pool__gone", {"name": "gone", "size": "1"})
        await self.redis.hmset("vmpooler__pool__debian-7", {"stale": "x"})
        config = a_config()
        self.assertEqual(await self.store.published.publish(config), ["gone"])
        self.assertEqual(set(await self.redis.smembers("vmpooler__pools")),
                         {"debian-7", "centos-7"})
        self.assertEqual(await self.redis.exists("vmpooler__pool__gone"), 0)
        for p in config.pools:
            self.assertEqual(dict(await self.redis.hgetall(f"vmpooler__pool__{p.name}")),
                             pool_fields(p, config.domain_for(p.name)))

    async def test_a_new_vm_has_its_pool_and_domain(self) -> None:
        await self.store.reserve_clones("centos-7", ["unpublished"], 10, 5, NOW, 0, 60)
        self.assertEqual((await self.vm("unpublished")).get("pool"), "centos-7")
        self.assertNotIn("domain", await self.vm("unpublished"))
        await self.store.published.publish(a_config())
        await self.store.reserve_clones("debian-7", ["h1"], 10, 5, NOW, 0, 60)
        fields = await self.vm("h1")
        self.assertEqual((fields["template"], fields["pool"], fields["domain"]),
                         ("debian-7", "debian-7", "lab.example"))

    async def test_an_ondemand_vm_has_its_pool_alias(self) -> None:
        await self.store.published.publish(a_config())
        wanted = [Wanted("deb", "debian-7", 1), Wanted("centos-7", "centos-7", 1)]
        self.assertEqual(await self.store.ondemand.create("r1", wanted, 0, "user:me", (10, 10)), 1)
        self.assertTrue(await self.store.ondemand.claim("r1", "me", 60, 0))
        fenced = self.store.claimed("r1", "me")
        for alias, pool, host in (("deb", "debian-7", "o1"), ("centos-7", "centos-7", "o2")):
            self.assertEqual(
                await fenced.ondemand.reserve("r1", alias, pool, [host], 10, 10, NOW, 0, 60),
                [host])
        one, two = await self.vm("o1"), await self.vm("o2")
        self.assertEqual((one["pool"], one["pool_alias"], one["domain"], one["request_id"]),
                         ("debian-7", "deb", "lab.example", "r1"))
        self.assertEqual((two["pool"], two["pool_alias"], two["domain"]),
                         ("centos-7", "centos-7", "site.example"))

    async def test_ready_with_its_ip(self) -> None:
        await self.store.reserve_clones("debian-7", ["h1", "h2"], 10, 5, NOW, 0, 60)
        self.assertTrue(await self.store.mark_ready("debian-7", "h1", NOW, "2026-01-01", 1.0,
                                                    ip="10.0.0.7"))
        self.assertTrue(await self.store.mark_ready("debian-7", "h2", NOW, "2026-01-01", 1.0,
                                                    ip=None))
        self.assertEqual((await self.vm("h1"))["ip"], "10.0.0.7")
        self.assertNotIn("ip", await self.vm("h2"))


class ManagerTests(ManagerCase):
    service = {"domain": "pooler.example"}

    async def test_a_filled_pool_as_3x_readers_see_it(self) -> None:
        self.start()
        await until("the pools full", self.full)
        self.assertEqual(set(await self.redis.smembers("vmpooler__pools")), {DEBIAN, CENTOS})
        published = await self.redis.hgetall(f"vmpooler__pool__{DEBIAN}")
        self.assertEqual((published["size"], published["domain"]), ("3", "pooler.example"))
        for pool in (DEBIAN, CENTOS):
            for host in await self.members("ready", pool):
                fields = await self.redis.hgetall(f"vmpooler__vm__{host}")
                self.assertEqual((fields["pool"], fields["template"], fields["domain"],
                                  fields["ip"]), (pool, pool, "pooler.example", "127.0.0.1"))


