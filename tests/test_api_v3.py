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
                    "end_time": rfc3339(T0 + 24 * 3600), "ip": "",
                    "fqdn": f"{host}.{DOMAINS[D32]}"})

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
                                             "state": "ready", "ip": "",
                                             "fqdn": f"{host}.{DOMAINS[C7]}"})

    async def test_what_the_manager_recorded_of_a_vm(self) -> None:
        host = await self.checkout(D32)
        await self.redis.hmset(f"vmpooler__vm__{host}", {
            "ip": "10.0.0.7", "host": "esxi-3", "migrated": "true"})
        info = (await self.client.get(f"/api/v3/vm/{host}")).body[host]
        self.assertEqual((info["ip"], info["host"], info["migrated"]),
                         ("10.0.0.7", "esxi-3", "true"))
        info = (await self.client.get(f"/api/v1/vm/{host}")).body[host]
        self.assertFalse({"ip", "host", "migrated"} & set(info))

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

    async def test_a_tokens_running_vms_are_short_names_under_every_prefix(self) -> None:
        # vmfloaty's list --active and delete --all look each one up by it.
        token = (await self.client.post("/api/v3/token", auth=(USER, PASSWORD))).body["token"]
        answer = await self.client.post(f"/api/v3/vm/{D32}+{C7}",
                                        headers={"X-AUTH-TOKEN": token})
        fqdns = sorted([answer.body[D32]["hostname"], answer.body[C7]["hostname"]])
        for prefix in (*V3, *V1):
            running = (await self.client.get(f"{prefix}/token/{token}")).body[token]["vms"][
                "running"]
            self.assertEqual(sorted(running), sorted(h.partition(".")[0] for h in fqdns))

    async def test_a_users_tokens(self) -> None:
        # None: 404 under v3 (as vmpooler 3.x), an empty list under v1 (as before).
        answer = await self.client.get("/api/v3/token", auth=(USER, PASSWORD))
        self.assert_error(answer, 404)
        answer = await self.client.get("/api/v1/token", auth=(USER, PASSWORD))
        self.assertEqual((answer.code, answer.body), (200, {"ok": True}))
        token = (await self.client.post("/api/v3/token", auth=(USER, PASSWORD))).body["token"]
        answer = await self.client.get("/api/v3/token", auth=(USER, PASSWORD))
        self.assertEqual(answer.body[token]["last"], "never")
        self.assertNotIn("last", (await self.client.get("/api/v1/token", auth=(
            USER, PASSWORD))).body[token])
        await self.client.post(f"/api/v3/vm/{D32}", headers={"X-AUTH-TOKEN": token})
        answer = await self.client.get("/api/v3/token", auth=(USER, PASSWORD))
        self.assertNotEqual(answer.body[token]["last"], "never")


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

    async def test_without_pools(self) -> None:
        # As vmpooler 3.x: no pools asked for, none reported (v1: 400, as before).
        for prefix in V3:
            answer = await self.client.get(f"{prefix}/poolstat")
            self.assertEqual((answer.code, answer.body), (200, {"pools": {}}))
        self.assert_error(await self.client.get("/api/v1/poolstat"), 400)

    async def test_bad_lists(self) -> None:
        for query in ("?pool=", f"?pool={D32},,{C7}", f"?pool={D32},", "?pool=%ff",
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
    async def test_v3_has_more_than_v1(self) -> None:
        whole = (await self.client.get("/api/v3/status")).body
        v1 = (await self.client.get("/api/v1/status")).body
        self.assertEqual(set(whole), {*v1, "boot"})
        self.assertEqual(whole["pools"], v1["pools"])
        self.assertEqual(whole["queue"], {"requested": 0, **v1["queue"]})
        self.assertEqual(whole["status"], {**v1["status"], "uptime": 0.0})
        self.assertEqual(whole["clone"]["duration"], {**v1["clone"]["duration"], "total": 0})
        self.clock.advance(12.34)
        self.assertEqual((await self.client.get("/api/v3/status")).body["status"]["uptime"],
                         12.3)

    async def test_only_the_named_sections_and_status(self) -> None:
        whole = (await self.client.get("/api/v3/status")).body
        v1 = (await self.client.get("/api/v1/status")).body
        for prefix in V3:
            answer = await self.client.get(f"{prefix}/status?view=queue,capacity")
            self.assertEqual((answer.code, answer.body), (200, {
                "capacity": whole["capacity"], "queue": whole["queue"],
                "status": whole["status"]}))
        for prefix in V1:
            answer = await self.client.get(f"{prefix}/status?view=queue,capacity")
            self.assertEqual((answer.code, answer.body), (200, {
                "capacity": v1["capacity"], "queue": v1["queue"]}))
        for view in ("capacity", "clone", "queue", "status", "pools", "boot"):
            answer = await self.client.get(f"/api/v3/status?view={view}")
            self.assertEqual(answer.body, {view: whole[view], "status": whole["status"]})

    async def test_unknown_views(self) -> None:
        # v3 ignores them, as vmpooler 3.x; v1 refuses them, as before.
        whole = (await self.client.get("/api/v3/status")).body
        for query in ("nothing", "capacity,nothing", "", "capacity,", "%ff"):
            answer: Any = await self.client.get(f"/api/v3/status?view={query}")
            self.assertEqual(answer.code, 200, answer.body)
            self.assertEqual(answer.body, {k: whole[k] for k in ("status", "capacity")
                                           if k in answer.body})
            self.assertIn("status", answer.body)
        for query in ("nothing", "capacity,boot", "", "capacity,", "%ff"):
            self.assert_error(await self.client.get(f"/api/v1/status?view={query}"), 400)

    async def test_queue_requested_counts_on_demand_requests_waiting(self) -> None:
        await self.redis.execute_command("ZADD", "vmpooler__provisioning__request",
                                         1, "a", 2, "b")
        answer = await self.client.get("/api/v3/status?view=queue")
        self.assertEqual(answer.body["queue"]["requested"], 2)


# --- against vmpooler 3.9.1's recorded answers ---------------------------------

def shape(value: Any) -> Any:
    """A JSON value's shape: its keys and their types, a list's first item's."""
    if isinstance(value, dict):
        return {key: shape(v) for key, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, (int, float)) else type(value).__name__


# Answers of vmpooler 3.9.1, as recorded (hostnames, tokens, ids and times
# replaced by "*": their values vary from run to run, their types do not).
RECORDED: dict[str, Any] = {
    "status": {
        "boot": {"duration": {"average": 12.1, "min": 7.13, "max": 17.14, "total": 72.81},
                 "count": {"total": 6}},
        "capacity": {"current": 6, "total": 6, "percent": 100.0},
        "clone": {"duration": {"average": 0.0, "min": 0.0, "max": 0.0, "total": 0.0},
                  "count": {"total": 6}},
        "pools": {D32: {"ready": 3, "running": 0, "pending": 0, "max": 3, "lastBoot": "*",
                        "alias": ["debian-7-32"]}},
        "queue": {"requested": 3, "pending": 0, "cloning": 0, "booting": 0, "ready": 0,
                  "running": 3, "completed": 0, "total": 6},
        "status": {"ok": True, "message": "*", "uptime": 17.2}},
    "poolstat": {"pools": {}},
    "config": {"pool_configuration": [{
        "name": D32, "template": "*", "folder": "*", "datastore": "*", "size": 3,
        "alias": ["debian-7-32"], "provider": "*", "template_ready": True}],
        "status": {"ok": True}},
    "token": {"ok": True, "token": "*"},
    "tokens": {"ok": True, "*": {"created": "*", "last": "never"}},
    "checkout": {"ok": True, D32: {"hostname": "*"}},
    "token status": {"ok": True, "*": {"user": "*", "created": "*", "last": "*",
                                       "vms": {"running": ["*"]}}},
    "vm": {"ok": True, "*": {"template": D32, "lifetime": 2, "running": 0.0,
                             "remaining": 2.0, "start_time": "*", "end_time": "*",
                             "state": "running", "tags": {"created_by": "ci"},
                             "snapshots": ["*"], "disk": ["+8gb"], "ip": "", "fqdn": "*"}},
    "bad lifetime": {"ok": False, "failure": ["*"]},
    "bad json": {"ok": False, "error": "*"},
    "disk": {"ok": True, "*": {"disk": "+8gb"}},
    "snapshot": {"ok": True, "*": {"snapshot": "*"}},
    "ondemand": {"ok": True, "request_id": "*"},
    "ondemand waiting": {"ok": True, "request_id": "*", "ready": False,
                         D64: {"ready": "0", "pending": "1"}},
    "ondemand unknown pool": {"ok": False, "bad_templates": ["nosuch"]},
    "ondemand too many": {"ok": False, "message": "*"},
    "ondemand bad json": {"ok": False, "message": "*"},
    "ondemand known id": {"ok": False, "request_id": "*", "message": "*"},
    "ondemand unknown id": {"ok": False, "message": "*"},
    "ok": {"ok": True},
    "not configured": {"ok": False, "not_configured": [D32]},
    "size reset": {"ok": True, "pool_size_before_reset": 4, "pool_size_before_overrides": 5},
    "bad template": {"ok": False, "bad_templates": [D32]},
    "template reset": {"ok": True, "template_before_reset": "*",
                       "template_before_overrides": "*"},
    "bad pools": {"ok": False, "bad_pools": ["nosuch"]},
    "refused": {"ok": False},
}


class RecordedShapeTests(V3Case):
    """Every answer has the keys of vmpooler 3.9.1's, with the same types
    (it may have more)."""

    authenticated = True
    service = {"experimental_features": True}

    def assert_like(self, answer: Any, code: int, recorded: str, named: str = "") -> None:
        """``answer`` has ``code`` and the recorded answer's keys and types;
        ``named``: the key recorded as "*" (a host, a token)."""
        self.assertEqual(answer.code, code, answer.body)
        theirs = shape(RECORDED[recorded])
        if "*" in theirs:
            theirs[named] = theirs.pop("*")
        self.assert_covers(shape(answer.body), theirs, recorded)

    def assert_covers(self, ours: Any, theirs: Any, where: str) -> None:
        if isinstance(theirs, dict):
            self.assertIsInstance(ours, dict, where)
            for key, value in theirs.items():
                self.assertIn(key, ours, f"{where}: {key}")
                self.assert_covers(ours[key], value, f"{where}.{key}")
        elif isinstance(theirs, list):
            self.assertIsInstance(ours, list, where)
            if theirs and ours:
                self.assert_covers(ours[0], theirs[0], f"{where}[0]")
        else:
            self.assertEqual(ours, theirs, where)

    async def test_reading(self) -> None:
        await self.client.post(f"/api/v1/vm/{D32}")
        self.assert_like(await self.client.get("/api/v3/status"), 200, "status")
        answer = await self.client.get("/api/v3/status?view=nonsense")
        self.assertEqual(set(answer.body), {"status"})
        self.assert_like(await self.client.get("/api/v3/poolstat"), 200, "poolstat")
        self.assert_like(await self.client.get("/api/v3/config"), 200, "config")
        self.assert_like(await self.client.get("/api/v3/nosuchendpoint"), 404, "refused")

    async def test_tokens_and_a_vm(self) -> None:
        auth = (USER, PASSWORD)
        answer = await self.client.post("/api/v3/token", auth=auth)
        self.assert_like(answer, 200, "token")
        token = answer.body["token"]
        self.assert_like(await self.client.get("/api/v3/token", auth=auth), 200, "tokens",
                         token)
        headers = {"X-AUTH-TOKEN": token}
        answer = await self.client.post(f"/api/v3/vm/{D32}", headers=headers)
        self.assert_like(answer, 200, "checkout")
        host = answer.body[D32]["hostname"].partition(".")[0]
        self.assert_like(await self.client.get(f"/api/v3/token/{token}"), 200,
                         "token status", token)
        path = f"/api/v3/vm/{host}"
        self.assert_like(await self.client.put(path, {"lifetime": "abc"}, headers=headers),
                         400, "bad lifetime")
        self.assert_like(await self.client.put(path, b"{not json", headers=headers), 400,
                         "bad json")
        self.assert_like(await self.client.put(path, {"lifetime": "2", "tags": {
            "created_by": "ci"}}, headers=headers), 200, "ok")
        self.assert_like(await self.client.post(f"{path}/disk/8", headers=headers), 202,
                         "disk", host)
        self.assert_like(await self.client.post(f"{path}/snapshot", headers=headers), 202,
                         "snapshot", host)
        await self.redis.hset(f"vmpooler__vm__{host}", "snapshot:s1", "2026-12-05")
        await self.redis.hset(f"vmpooler__vm__{host}", "disk", "+8gb")
        self.assert_like(await self.client.get(path), 200, "vm", host)
        self.assert_like(await self.client.delete(path, headers=headers), 200, "ok")
        self.assert_like(await self.client.delete(f"/api/v3/token/{token}", auth=auth), 200,
                         "ok")
        self.assert_like(await self.client.get("/api/v3/token", auth=auth), 404, "refused")

    async def test_on_demand(self) -> None:
        token = (await self.client.post("/api/v3/token", auth=(USER, PASSWORD))).body["token"]
        headers = {"X-AUTH-TOKEN": token}
        answer = await self.client.post("/api/v3/ondemandvm", {D64: "1"}, headers=headers)
        self.assert_like(answer, 201, "ondemand")
        rid = answer.body["request_id"]
        self.assert_like(await self.client.get(f"/api/v3/ondemandvm/{rid}"), 202,
                         "ondemand waiting")
        for body, code, recorded in [
                ({"nosuch": "1"}, 404, "ondemand unknown pool"),
                ({D32: "99"}, 403, "ondemand too many"),
                (b"{not json", 400, "ondemand bad json"),
                ({D32: "1", "request_id": rid}, 409, "ondemand known id")]:
            answer = await self.client.post("/api/v3/ondemandvm", body, headers=headers)
            self.assert_like(answer, code, recorded)
            self.assertIsInstance(answer.body["error"], str)
        self.assert_like(await self.client.get(f"/api/v3/ondemandvm/{'0' * 8}"), 404,
                         "ondemand unknown id")
        self.assert_like(await self.client.delete(f"/api/v3/ondemandvm/{rid}",
                                                  headers=headers), 200, "ok")
        # v1: the same refusals without 3.x's keys.
        answer = await self.client.post("/api/v1/ondemandvm", {D32: "99"}, headers=headers)
        self.assertEqual((answer.code, set(answer.body)), (403, {"ok", "error"}))

    async def test_the_config_api(self) -> None:
        token = (await self.client.post("/api/v3/token", auth=(USER, PASSWORD))).body["token"]
        headers = {"X-AUTH-TOKEN": token}
        for method, path, body, code, recorded in [
                ("POST", "/config/poolsize", {D32: "4"}, 201, "ok"),
                ("POST", "/config/poolsize", {D32: "abc"}, 400, "not configured"),
                ("DELETE", f"/config/poolsize/{D32}", None, 201, "size reset"),
                ("POST", "/config/pooltemplate", {D32: "notemplate"}, 400, "bad template"),
                ("POST", "/config/pooltemplate", {D32: "Templates/other"}, 201, "ok"),
                ("DELETE", f"/config/pooltemplate/{D32}", None, 201, "template reset"),
                ("POST", "/config/clonetarget", {D32: "cluster2"}, 201, "ok"),
                ("POST", "/poolreset", {D64: "1"}, 201, "ok"),
                ("POST", "/poolreset", {"nosuch": "1"}, 400, "bad pools")]:
            answer = await self.client.request(method, f"/api/v3{path}", body, headers=headers)
            self.assert_like(answer, code, recorded)
