"""
API v3 (and v2) beside v1, against a real Redis: FQDNs from each pool's
domain, the extra VM fields, /poolstat, /totalrunning, /status?view=, and
v1's answers unchanged on the same configuration.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.dialect import rfc3339
from vmpoolerd.config import Config

from .api_case import C7, D32, D64, T0, ApiCase
from .fixtures import PASSWORD, USER, StubDirectory
from .http import Client

# D32 and C7 have domains of their own; D64 has :config: domain's.
DOMAINS = {D32: "d32.example.net", C7: "c7.example.org", D64: "example.com"}
V3 = ("/api/v3", "/api/v2")
V1 = ("/api/v1", "")


def with_domains(config: Config, domains: dict[str, str | None],
                 default: str | None = "example.com") -> Config:
    """``config`` with these pools' domains, and ``default`` as :config: domain."""
    pools = tuple(dataclasses.replace(p, domain=domains.get(p.name)) for p in config.pools)
    return dataclasses.replace(config, pools=pools,
                               service=dataclasses.replace(config.service, domain=default))


class V3Case(ApiCase):
    """ApiCase's pools, D32 and C7 with domains of their own."""

    domains: dict[str, str | None] = {D32: DOMAINS[D32], C7: DOMAINS[C7]}
    default: str | None = "example.com"
    authenticated = False

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        await super().setUp()
        self.config = with_domains(self.config, self.domains, self.default)
        self.api = VmpoolerApi(self.config, self.store, self.clock, rng=random.Random(7),
                               authenticator=StubDirectory() if self.authenticated else None)
        self.client = Client(self.api.resource())

    async def pool_of(self, host: str) -> str:
        pool: str = await self.redis.hget(f"vmpooler__vm__{host}", "template")
        return pool

    async def fqdn_pool(self, fqdn: str) -> str:
        """The pool of a VM named by its FQDN, checked to be its pool's domain."""
        name, _, domain = fqdn.partition(".")
        pool = await self.pool_of(name)
        self.assertEqual(domain, DOMAINS[pool], fqdn)
        return pool


class RoutesTests(V3Case):
    async def test_every_route_under_every_prefix(self) -> None:
        for prefix in (*V3, *V1):
            for path in (f"{prefix}/vm", f"{prefix}/vm/"):
                answer = await self.client.get(path)
                self.assertEqual((answer.code, answer.body), (200, [D32, D64, C7]), path)

    async def test_other_versions_are_no_routes(self) -> None:
        for path in ("/api/v4/vm", "/api/v0/vm", "/api/vm", "/api/v3/api/v3/vm"):
            self.assert_error(await self.client.get(path), 404)


class CheckoutTests(V3Case):
    async def test_hostnames_are_fqdns_and_there_is_no_domain(self) -> None:
        for prefix in V3:
            answer = await self.client.post(f"{prefix}/vm/{D32}+{D32}+{D64}")
            self.assertEqual(answer.code, 200, answer.body)
            self.assertEqual(set(answer.body), {"ok", D32, D64})
            for host in answer.body[D32]["hostname"]:
                self.assertEqual(await self.fqdn_pool(host), D32)
            self.assertIsInstance(answer.body[D64]["hostname"], str)
            self.assertEqual(await self.fqdn_pool(answer.body[D64]["hostname"]), D64)

    async def test_an_alias_over_pools_of_different_domains(self) -> None:
        # "debian" is an alias of D64 and C7: 8 VMs take both pools whole.
        answer = await self.client.post("/api/v3/vm", {"debian": 8})
        self.assertEqual(answer.code, 200, answer.body)
        pools = [await self.fqdn_pool(h) for h in answer.body["debian"]["hostname"]]
        self.assertEqual(sorted(pools), [C7] * 3 + [D64] * 5)

    async def test_v1_is_unchanged_by_pools_domains(self) -> None:
        for prefix in V1:
            answer = await self.client.post(f"{prefix}/vm/{D32}", {})
            self.assertEqual(answer.code, 200, answer.body)
            self.assertEqual(set(answer.body), {"ok", D32, "domain"})
            self.assertEqual(answer.body["domain"], "example.com")
            self.assertIn(answer.body[D32]["hostname"], self.ready[D32])

    async def test_refusals_are_json(self) -> None:
        self.assert_error(await self.client.post("/api/v3/vm/nothing"), 404)
        self.assert_error(await self.client.post("/api/v3/vm", {D32: 0}), 400)
        self.assert_error(await self.client.post("/api/v3/vm", {D32: 6}), 503)
        await self.assert_untouched()


class NoDomainTests(V3Case):
    domains = {D32: DOMAINS[D32]}
    default = None

    async def test_a_pool_without_a_domain_gives_short_names(self) -> None:
        answer = await self.client.post(f"/api/v3/vm/{D32}+{C7}")
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual(set(answer.body), {"ok", D32, C7})
        self.assertIn(answer.body[C7]["hostname"], self.ready[C7])
        self.assertTrue(answer.body[D32]["hostname"].endswith("." + DOMAINS[D32]))
        host = answer.body[C7]["hostname"]
        info = (await self.client.get(f"/api/v3/vm/{host}")).body[host]
        self.assertEqual(info["fqdn"], host)
        # v1 had no domain to give: it gives none.
        answer = await self.client.post(f"/api/v1/vm/{C7}")
        self.assertEqual(set(answer.body), {"ok", C7})


class VmTests(V3Case):
    async def checkout(self, pool: str) -> str:
        """A VM of ``pool`` checked out (through v1), by its short name."""
        host: str = (await self.client.post(f"/api/v1/vm/{pool}")).body[pool]["hostname"]
        return host

    async def test_a_running_vm(self) -> None:
        host = await self.checkout(D32)
        self.clock.advance(1.5 * 3600)
        for prefix in V3:
            for name in (host, f"{host}.{DOMAINS[D32]}"):
                answer = await self.client.get(f"{prefix}/vm/{name}")
                self.assertEqual(answer.code, 200, answer.body)
                self.assertEqual(set(answer.body), {"ok", host})
                self.assertEqual(answer.body[host], {
                    "template": D32, "lifetime": 24, "running": 1.5, "state": "running",
                    "remaining": 22.5, "start_time": rfc3339(T0),
                    "end_time": rfc3339(T0 + 24 * 3600), "fqdn": f"{host}.{DOMAINS[D32]}"})

    async def test_times_follow_a_changed_lifetime_and_remaining_stops_at_0(self) -> None:
        host = await self.checkout(D64)
        fqdn = f"{host}.example.com"
        self.assertEqual((await self.client.put(f"/api/v3/vm/{fqdn}", {"lifetime": 2})).code,
                         200)
        self.clock.advance(3 * 3600)
        info = (await self.client.get(f"/api/v3/vm/{fqdn}")).body[host]
        self.assertEqual((info["lifetime"], info["running"], info["remaining"]), (2, 3, 0))
        self.assertEqual(info["end_time"], rfc3339(T0 + 2 * 3600))

    async def test_start_time_is_rfc_3339(self) -> None:
        host = await self.checkout(D32)
        start = (await self.client.get(f"/api/v3/vm/{host}")).body[host]["start_time"]
        self.assertRegex(start, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")

    async def test_a_vm_not_running_has_no_times(self) -> None:
        host = self.ready[C7][0]
        answer = await self.client.get(f"/api/v2/vm/{host}.{DOMAINS[C7]}")
        self.assertEqual(answer.body[host], {"template": C7, "lifetime": 24, "running": 0,
                                             "state": "ready", "fqdn": f"{host}.{DOMAINS[C7]}"})

    async def test_v1_finds_a_vm_by_its_pools_domain_and_answers_as_before(self) -> None:
        host = await self.checkout(D32)
        for prefix in V1:
            for name in (host, f"{host}.{DOMAINS[D32]}", f"{host}.example.com"):
                answer = await self.client.get(f"{prefix}/vm/{name}")
                self.assertEqual(answer.body[host], {
                    "template": D32, "lifetime": 24, "running": 0, "state": "running",
                    "domain": "example.com"})

    async def test_changes_by_fqdn(self) -> None:
        host = await self.checkout(D32)
        fqdn = f"{host}.{DOMAINS[D32]}"
        answer = await self.client.put(f"/api/v3/vm/{fqdn}", {"tags": {"user": "jdoe"}})
        self.assertEqual(answer.code, 200, answer.body)
        answer = await self.client.post(f"/api/v3/vm/{fqdn}/disk/8")
        self.assertEqual((answer.code, answer.body), (202, {"ok": True, host: {"disk": "+8gb"}}))
        answer = await self.client.post(f"/api/v3/vm/{fqdn}/snapshot")
        self.assertEqual((answer.code, set(answer.body)), (202, {"ok", host}))
        self.assertEqual(await self.redis.hget(f"vmpooler__vm__{host}", "tag:user"), "jdoe")
        self.assertEqual((await self.client.delete(f"/api/v3/vm/{fqdn}")).code, 200)
        self.assertTrue(await self.redis.sismember(f"vmpooler__completed__{D32}", host))

    async def test_bad_names(self) -> None:
        self.assert_error(await self.client.get("/api/v3/vm/-bad"), 400)
        self.assert_error(await self.client.get("/api/v3/vm/nosuchvm.example.com"), 404)
        self.assert_error(await self.client.delete(f"/api/v3/vm/{self.ready[D32][0]}"), 404)


class TokenTests(V3Case):
    authenticated = True

    async def test_a_tokens_running_vms_are_fqdns_in_v3(self) -> None:
        token = (await self.client.post("/api/v3/token", auth=(USER, PASSWORD))).body["token"]
        answer = await self.client.post(f"/api/v3/vm/{D32}+{C7}",
                                        headers={"X-AUTH-TOKEN": token})
        fqdns = sorted([answer.body[D32]["hostname"], answer.body[C7]["hostname"]])
        running = (await self.client.get(f"/api/v3/token/{token}")).body[token]["vms"]["running"]
        self.assertEqual(sorted(running), fqdns)
        running = (await self.client.get(f"/api/v1/token/{token}")).body[token]["vms"]["running"]
        self.assertEqual(sorted(running), sorted(h.partition(".")[0] for h in fqdns))


class PoolStatTests(V3Case):
    async def test_pools_and_aliases(self) -> None:
        await self.client.post(f"/api/v1/vm/{D32}")
        for prefix in (*V3, *V1):
            answer = await self.client.get(f"{prefix}/poolstat?pool={D32},debian")
            self.assertEqual((answer.code, answer.body), (200, {"pools": {
                D32: {"ready": 4, "max": 5, "alias": ["debian-7-32"]},
                D64: {"ready": 5, "max": 5, "alias": ["debian-7-64", "debian"]},
                C7: {"ready": 3, "max": 3, "alias": ["debian"]}}}))

    async def test_unknown_names_are_left_out(self) -> None:
        answer = await self.client.get(f"/api/v3/poolstat?pool=nothing,{C7}")
        self.assertEqual(answer.body, {"pools": {C7: {"ready": 3, "max": 3,
                                                      "alias": ["debian"]}}})
        answer = await self.client.get("/api/v3/poolstat?pool=nothing")
        self.assertEqual((answer.code, answer.body), (200, {"pools": {}}))

    async def test_bad_lists(self) -> None:
        for query in ("", "?pool=", f"?pool={D32},,{C7}", f"?pool={D32},", "?pool=%ff",
                      "?pool=" + ",".join(["a"] * 1001)):
            self.assert_error(await self.client.get(f"/api/v3/poolstat{query}"), 400)


class TotalRunningTests(V3Case):
    async def test_every_pools_running_vms(self) -> None:
        self.assertEqual((await self.client.get("/api/v3/totalrunning")).body, {"running": 0})
        await self.client.post(f"/api/v1/vm/{D32}+{D64}+{C7}+{C7}")
        for prefix in (*V3, *V1):
            answer = await self.client.get(f"{prefix}/totalrunning/")
            self.assertEqual((answer.code, answer.body), (200, {"running": 4}))


class StatusViewTests(V3Case):
    async def test_only_the_named_sections(self) -> None:
        whole = (await self.client.get("/api/v3/status")).body
        self.assertEqual(whole, (await self.client.get("/api/v1/status")).body)
        for prefix in (*V3, *V1):
            answer = await self.client.get(f"{prefix}/status?view=queue,capacity")
            self.assertEqual((answer.code, answer.body), (200, {
                "capacity": whole["capacity"], "queue": whole["queue"]}))
        for view in ("capacity", "clone", "queue", "status", "pools"):
            answer = await self.client.get(f"/api/v3/status?view={view}")
            self.assertEqual(answer.body, {view: whole[view]})

    async def test_unknown_views(self) -> None:
        for query in ("nothing", "capacity,boot", "", "capacity,", "%ff"):
            answer: Any = await self.client.get(f"/api/v3/status?view={query}")
            self.assert_error(answer, 400)
