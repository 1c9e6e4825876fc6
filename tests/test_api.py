"""The REST API against a real Redis, through StubTreq."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from typing import Any, Callable, cast

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock, deferLater
from twisted.logger import formatEvent
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.net import listen, port_of, tcp

from tests.logs import captured_events
from tests.waiting import until, wait_for

from vmpoolerd.api import reports
from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.errors import REFUSALS
from vmpoolerd.config import RedisConfig
from vmpoolerd.names import public_manager
from vmpoolerd.store.errors import StoreRefusal
from vmpoolerd.store.api_store import (
    MAX_TAGS, MAX_TASKS_PER_VM, ApiStore, DayHistory, Durations, Request,
)
from vmpoolerd.store import txredis_adapter
from vmpoolerd.store.connection import connect
from vmpoolerd.timefmt import format_time, local_date, parse_time
from vmpoolerd.api.site import ApiSite

from .fixtures import fill_ready, make_config, sets_of
from .http import Client
from .api_case import C7, D32, D64, T0, ApiCase
from .redis_server import RedisServer, private_redis, redis_server

class RoutesTests(ApiCase):
    async def test_pool_list_under_every_prefix(self) -> None:
        for path in ("/api/v1/vm", "/api/v1/vm/", "/vm", "/vm/"):
            answer = await self.client.get(path)
            self.assertEqual(answer.code, 200, path)
            self.assertEqual(answer.body, [D32, D64, C7])

    async def test_unknown_route_and_method_are_json(self) -> None:
        self.assert_error(await self.client.get("/api/v1/nothing"), 404)
        answer = await self.client.request("PATCH", "/api/v1/vm")
        self.assert_error(answer, 405)
        self.assertEqual(answer.headers.getRawHeaders("allow"), ["GET, HEAD, POST"])

    async def test_redis_commands_are_sent_before_the_reactor_turns(self) -> None:
        # Twisted alone would hold the command in the transport's buffer
        # until the reactor's next turn, which this test does not give it.
        pending = self.redis.set("vmpooler__test__sent", "now")
        seen = wait_for("the command in Redis", lambda: redis_server().cli(
            "GET", "vmpooler__test__sent").strip(), seconds=1, interval=0.01)
        self.assertEqual(seen, "now")
        await pending


class CheckoutTests(ApiCase):
    async def test_one_vm_from_the_path(self) -> None:
        answer = await self.client.post(f"/api/v1/vm/{D32}")
        self.assertEqual(answer.code, 200)
        self.assertEqual(set(answer.body), {"ok", D32, "domain"})
        host = answer.body[D32]["hostname"]
        self.assertIsInstance(host, str)
        self.assertEqual(answer.body["domain"], "example.com")
        self.assertTrue(await self.redis.sismember(f"vmpooler__running__{D32}", host))
        self.assertFalse(await self.redis.sismember(f"vmpooler__ready__{D32}", host))
        stamp = await self.redis.hget(f"vmpooler__vm__{host}", "checkout")
        self.assertEqual(stamp, format_time(T0))
        self.assertEqual(parse_time(stamp), T0)
        self.assertEqual(await self.redis.hget(f"vmpooler__active__{D32}", host), stamp)

    async def test_several_from_the_path(self) -> None:
        answer = await self.client.post(f"/vm/{D32}+{D32}+{D64}/")
        self.assertEqual(answer.code, 200)
        self.assertEqual(len(answer.body[D32]["hostname"]), 2)
        self.assertIsInstance(answer.body[D64]["hostname"], str)
        running = await self.redis.smembers(f"vmpooler__running__{D32}")
        self.assertEqual(running, set(answer.body[D32]["hostname"]))

    async def test_json_counts_as_numbers_and_strings(self) -> None:
        answer = await self.client.post("/api/v1/vm", {D32: "2", D64: 1, C7: "03"})
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual(len(answer.body[D32]["hostname"]), 2)
        self.assertIsInstance(answer.body[D64]["hostname"], str)
        self.assertEqual(len(answer.body[C7]["hostname"]), 3)
        self.assertEqual(await self.redis.scard(f"vmpooler__ready__{C7}"), 0)
        self.assertEqual(await self.redis.get(f"vmpooler__empty__{C7}"), "true")

    async def test_alias_is_the_answer_key(self) -> None:
        answer = await self.client.post("/api/v1/vm/debian-7-32")
        self.assertEqual(answer.code, 200)
        self.assertEqual(set(answer.body), {"ok", "debian-7-32", "domain"})
        host = answer.body["debian-7-32"]["hostname"]
        self.assertIn(host, self.ready[D32])
        self.assertEqual(await self.redis.hget(f"vmpooler__vm__{host}", "template"), D32)

    async def test_alias_of_several_pools_draws_from_all(self) -> None:
        # "debian" is D64 (5) and C7 (3): 8 VMs, which no one pool has.
        answer = await self.client.post("/api/v1/vm", {"debian": 8})
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual(set(answer.body["debian"]["hostname"]),
                         set(self.ready[D64]) | set(self.ready[C7]))

    async def test_pool_and_its_alias_together_count_once(self) -> None:
        self.assert_error(await self.client.post("/api/v1/vm", {D32: 4, "debian-7-32": 2}), 503)
        await self.assert_untouched()
        answer = await self.client.post("/api/v1/vm", {D32: 3, "debian-7-32": 2})
        self.assertEqual(answer.code, 200)
        handed = answer.body[D32]["hostname"] + answer.body["debian-7-32"]["hostname"]
        self.assertEqual(sorted(handed), sorted(self.ready[D32]))

    async def test_every_vm_asked_for_is_counted_as_demand(self) -> None:
        # Note [Counting demand]: met or not, by pool, per hour.
        self.assertEqual((await self.client.post("/api/v1/vm", {D32: 2, "debian": 6})).code, 200)
        self.assert_error(await self.client.post("/api/v1/vm", {D32: 9, C7: 1}), 503)

        async def counted(pool: str) -> dict[str, int]:
            fields = await self.redis.hgetall(f"vmpooler__demand__{pool}")
            totals: dict[str, int] = {}
            for field, value in fields.items():
                kind, hour = field.split(":")
                self.assertGreater(int(hour), 400_000)  # hours since 1970
                totals[kind] = totals.get(kind, 0) + int(value)
            return totals
        self.assertEqual(await counted(D32), {"asked": 11, "hit": 2})
        # "debian" drew its six from D64 and C7, each VM asked for where it
        # was handed out; the refused request's C7 VM was asked for only.
        d64, c7 = await counted(D64), await counted(C7)
        self.assertEqual(d64["asked"], d64["hit"])
        self.assertEqual(c7["asked"], c7["hit"] + 1)
        self.assertEqual(d64["hit"] + c7["hit"], 6)

    async def test_not_enough_takes_nothing(self) -> None:
        self.assert_error(await self.client.post("/api/v1/vm", {D32: 2, C7: 4}), 503)
        self.assert_error(await self.client.post(f"/api/v1/vm/{C7}+{C7}+{C7}+{C7}"), 503)
        await self.assert_untouched()

    async def test_unknown_pools_take_nothing(self) -> None:
        self.assert_error(await self.client.post("/api/v1/vm/nosuchpool"), 404)
        self.assert_error(await self.client.post(f"/api/v1/vm/{D32}+nosuchpool"), 404)
        self.assert_error(await self.client.post("/api/v1/vm", {D32: 1, "nosuch": 1}), 404)
        await self.assert_untouched()

    async def test_no_pool_given(self) -> None:
        self.assert_error(await self.client.post("/api/v1/vm"), 404)
        self.assert_error(await self.client.post("/api/v1/vm", {}), 404)
        await self.assert_untouched()

    async def test_malformed_bodies_and_counts(self) -> None:
        bodies: list[Any] = [
            b"{not json", b"\xff\xfe", b"[1, 2]", b'"debian"', b"null", b"42",
            {D32: 0}, {D32: -1}, {D32: 1.5}, {D32: "1.5"}, {D32: "abc"}, {D32: True},
            {D32: None}, {D32: [1]}, {D32: {"n": 1}}, {D32: "-1"}, {D32: ""},
            {D32: "99999999999999999999"}, {D32: 10 ** 30}, {D32: 1, D64: "x"},
            {"nosuch": "x"}, b"[" * 100_000, b'{"a": ' * 50_000,
        ]
        for body in bodies:
            self.assert_error(await self.client.post("/api/v1/vm", body), 400)
        await self.assert_untouched()

    async def test_request_size_limits(self) -> None:
        self.assert_error(await self.client.post("/api/v1/vm", {D32: 101}), 400)
        self.assert_error(await self.client.post("/api/v1/vm", {D32: 60, D64: 41}), 400)
        self.assert_error(await self.client.post(
            "/api/v1/vm", b'{"a": "' + b"x" * (1024 * 1024) + b'"}'), 413)
        self.assert_error(await self.client.post("/api/v1/vm/" + "+".join([D32] * 101)), 400)
        await self.assert_untouched()

    async def test_strange_paths(self) -> None:
        for path in (f"/api/v1/vm/{D32}%00", "/api/v1/vm/" + "a" * 5000,
                     f"/api/v1/vm/{D32}++{D32}", f"/api/v1/vm/+{D32}", "/api/v1/vm/%ff"):
            answer = await self.client.post(path)
            self.assertIn(answer.code, (400, 404), path)
            self.assertIs(answer.body["ok"], False)
        await self.assert_untouched()


class MaxRequestTests(ApiCase):
    service = {"max_request_vms": 3}

    async def test_configured_limit(self) -> None:
        self.assert_error(await self.client.post("/api/v1/vm", {D32: 2, D64: 2}), 400)
        await self.assert_untouched()
        self.assertEqual((await self.client.post("/api/v1/vm", {D32: 3})).code, 200)


class VmTests(ApiCase):
    service = {"allowed_tags": ["user", "url", "department"], "vm_lifetime": 12}

    async def checkout(self, pool: str = D32) -> str:
        answer = await self.client.post(f"/api/v1/vm/{pool}")
        self.assertEqual(answer.code, 200)
        host: str = answer.body[pool]["hostname"]
        return host

    async def test_describe_a_running_vm(self) -> None:
        host = await self.checkout()
        self.clock.advance(3 * 3600 + 360)
        for name in (host, f"{host}.example.com"):
            answer = await self.client.get(f"/api/v1/vm/{name}")
            self.assertEqual(answer.code, 200)
            self.assertEqual(answer.body, {"ok": True, host: {
                "template": D32, "lifetime": 12, "running": 3.1, "state": "running",
                "domain": "example.com"}})

    async def test_describe_ready_and_unknown(self) -> None:
        answer = await self.client.get(f"/vm/{self.ready[C7][0]}")
        self.assertEqual(answer.body[self.ready[C7][0]]["state"], "ready")
        self.assertEqual(answer.body[self.ready[C7][0]]["running"], 0)
        self.assert_error(await self.client.get("/api/v1/vm/nosuchvm"), 404)
        self.assert_error(await self.client.get("/api/v1/vm/bad%00name"), 400)
        self.assert_error(await self.client.get("/api/v1/vm/" + "a" * 300), 400)

    async def test_lifetime_and_tags(self) -> None:
        host = await self.checkout()
        answer = await self.client.put(f"/api/v1/vm/{host}", {
            "lifetime": "2", "tags": {"user": "jdoe", "department": "a,b=c"}})
        self.assertEqual((answer.code, answer.body), (200, {"ok": True}))
        info = (await self.client.get(f"/api/v1/vm/{host}")).body[host]
        self.assertEqual(info["lifetime"], 2)
        self.assertEqual(info["tags"], {"user": "jdoe", "department": "a,b=c"})
        today = local_date(T0).isoformat()
        self.assertEqual(await self.redis.hgetall(f"vmpooler__tag__{today}"),
                         {f"{host}:user": "jdoe", f"{host}:department": "a,b=c"})
        answer = await self.client.put(f"/vm/{host}/", {"lifetime": 48})
        self.assertEqual(answer.code, 200)
        self.assertEqual(await self.redis.hget(f"vmpooler__vm__{host}", "lifetime"), "48")

    async def test_only_a_running_vm_changes(self) -> None:
        """Note [Changes to running VMs only] in vmpoolerd/store/lua/vm_update.lua."""
        host = self.ready[D32][0]
        before = await self.redis.hgetall(f"vmpooler__vm__{host}")
        for method, path, body in (("PUT", f"/vm/{host}", {"lifetime": 100}),
                                   ("PUT", f"/vm/{host}", {"tags": {"user": "x"}}),
                                   ("POST", f"/vm/{host}/disk/8", None),
                                   ("POST", f"/vm/{host}/snapshot", None)):
            answer = await self.client.request(method, path, body)
            self.assert_error(answer, 404)
            self.assertEqual(answer.body["error"], "the VM is not running")
        self.assertEqual(await self.redis.hgetall(f"vmpooler__vm__{host}"), before)
        self.assertEqual(await self.redis.smembers("vmpooler__tasks__disk"), set())

    async def test_a_checkout_starts_a_vm_with_no_tags_and_its_pools_lifetime(self) -> None:
        for host in self.ready[D32]:  # as an older pooler could leave them
            await self.redis.hset(f"vmpooler__vm__{host}", "tag:user", "someone")
            await self.redis.hset(f"vmpooler__vm__{host}", "lifetime", "999999")
        host = await self.checkout()
        info = (await self.client.get(f"/vm/{host}")).body[host]
        self.assertEqual((info["lifetime"], info.get("tags")), (12, None))

    async def test_tags_are_bounded_per_vm_and_their_history_expires(self) -> None:
        host = await self.checkout()
        many = {f"t{i}": "v" for i in range(MAX_TAGS)}
        config = dataclasses.replace(self.config, service=dataclasses.replace(
            self.config.service, allowed_tags=None))
        client = Client(VmpoolerApi(config, self.store, self.clock).resource())
        self.assertEqual((await client.put(f"/vm/{host}", {"tags": many})).code, 200)
        self.assertEqual((await client.put(f"/vm/{host}", {"tags": {"t0": "w"}})).code, 200)
        answer = await client.put(f"/vm/{host}", {"tags": {"one-more": "v"}})
        self.assert_error(answer, 400)
        self.assertEqual(answer.body["error"], f"a VM holds at most {MAX_TAGS} tags")
        self.assertFalse(await self.redis.hexists(f"vmpooler__vm__{host}", "tag:one-more"))
        history = f"vmpooler__tag__{local_date(T0).isoformat()}"
        ttl = await self.redis.ttl(history)
        self.assertTrue(0 < ttl <= self.config.redis.data_ttl_hours * 3600, ttl)

    async def test_disk_requests_are_bounded_per_vm(self) -> None:
        host = await self.checkout()
        for gb in range(1, MAX_TASKS_PER_VM + 1):
            self.assertEqual((await self.client.post(f"/vm/{host}/disk/{gb}")).code, 202)
        self.assertEqual((await self.client.post(f"/vm/{host}/disk/1")).code, 202)  # asked
        self.assert_error(await self.client.post(f"/vm/{host}/disk/99"), 429)
        self.assertEqual(len(await self.redis.smembers("vmpooler__tasks__disk")),
                         MAX_TASKS_PER_VM)
        other = await self.checkout()
        self.assertEqual((await self.client.post(f"/vm/{other}/disk/99")).code, 202)

    async def test_a_name_ends_where_the_path_ends(self) -> None:
        host = await self.checkout()
        self.assert_error(await self.client.get(f"/vm/{host}%0A"), 400)
        self.assert_error(await self.client.delete(f"/vm/{host}%0A"), 400)
        self.assertTrue(await self.redis.sismember(f"vmpooler__running__{D32}", host))

    async def test_bad_changes_change_nothing(self) -> None:
        host = await self.checkout()
        before = await self.redis.hgetall(f"vmpooler__vm__{host}")
        for body in (b"", b"{}", b"[]", b"{bad", {"lifetime": 0}, {"lifetime": -3},
                     {"lifetime": 1.5}, {"lifetime": "soon"}, {"lifetime": True},
                     {"tags": "user=jdoe"}, {"tags": {"user": 5}}, {"tags": {"user": None}},
                     {"tags": {"secret": "x"}}, {"tags": {"": "x"}},
                     {"tags": {"user": "jdoe"}, "colour": "red"},
                     {"lifetime": 2, "tags": {"user": ["a"]}}, b"[" * 100_000,
                     b'{"tags": {"user": "\\ud800"}}', b'{"tags": {"\\udfff": "x"}}'):
            self.assert_error(await self.client.put(f"/api/v1/vm/{host}", body), 400)
        self.assertEqual(await self.redis.hgetall(f"vmpooler__vm__{host}"), before)
        self.assertEqual(await self.redis.keys("vmpooler__tag__*"), [])
        self.assert_error(await self.client.put("/api/v1/vm/nosuchvm", {"lifetime": 2}), 404)
        self.assertEqual(await self.redis.exists("vmpooler__vm__nosuchvm"), 0)

    async def test_delete(self) -> None:
        host = await self.checkout()
        answer = await self.client.delete(f"/api/v1/vm/{host}")
        self.assertEqual((answer.code, answer.body), (200, {"ok": True}))
        sets = await sets_of(self.redis, self.config)
        holding = [key for key, members in sets.items() if host in members]
        self.assertEqual(holding, [f"vmpooler__completed__{D32}"])
        self.assertEqual(await self.redis.hgetall(f"vmpooler__active__{D32}"), {})
        self.assertEqual((await self.client.get(f"/vm/{host}")).body[host]["state"], "destroyed")
        self.assert_error(await self.client.delete(f"/api/v1/vm/{host}"), 404)
        self.assert_error(await self.client.delete(f"/api/v1/vm/{self.ready[C7][0]}"), 404)
        self.assert_error(await self.client.delete("/api/v1/vm/nosuchvm"), 404)
        await self.assert_ready_intact(C7)

    async def assert_ready_intact(self, pool: str) -> None:
        self.assertEqual(await self.redis.smembers(f"vmpooler__ready__{pool}"),
                         set(self.ready[pool]))

    async def test_disk(self) -> None:
        host = await self.checkout()
        answer = await self.client.post(f"/api/v1/vm/{host}/disk/8")
        self.assertEqual((answer.code, answer.body), (202, {"ok": True, host: {"disk": "+8gb"}}))
        self.assertEqual(await self.redis.smembers("vmpooler__tasks__disk"), {f"{host}:8"})
        for size in ("0", "-1", "1.5", "abc", "99999999999"):
            self.assert_error(await self.client.post(f"/api/v1/vm/{host}/disk/{size}"), 400)
        self.assert_error(await self.client.post("/api/v1/vm/nosuchvm/disk/8"), 404)
        self.assertEqual(await self.redis.smembers("vmpooler__tasks__disk"), {f"{host}:8"})

    async def test_snapshots(self) -> None:
        host = await self.checkout()
        answer = await self.client.post(f"/api/v1/vm/{host}/snapshot")
        self.assertEqual(answer.code, 202)
        name = answer.body[host]["snapshot"]
        self.assertRegex(name, r"^[a-z0-9]{32}$")
        self.assertEqual(await self.redis.smembers("vmpooler__tasks__snapshot"),
                         {f"{host}:{name}"})
        # Reverting needs a snapshot the VM has (the manager records it).
        self.assert_error(await self.client.post(f"/api/v1/vm/{host}/snapshot/{name}"), 404)
        await self.redis.hset(f"vmpooler__vm__{host}", f"snapshot:{name}", format_time(T0))
        answer = await self.client.post(f"/api/v1/vm/{host}/snapshot/{name}")
        self.assertEqual((answer.code, answer.body), (202, {"ok": True}))
        self.assertEqual(await self.redis.smembers("vmpooler__tasks__snapshot-revert"),
                         {f"{host}:{name}"})
        info = (await self.client.get(f"/api/v1/vm/{host}")).body[host]
        self.assertEqual(info["snapshots"], [name])
        self.assert_error(await self.client.post("/api/v1/vm/nosuchvm/snapshot"), 404)
        self.assert_error(await self.client.post(f"/api/v1/vm/{host}/snapshot/a%00b"), 400)

    async def test_disks_show_once_recorded(self) -> None:
        host = await self.checkout()
        await self.redis.hset(f"vmpooler__vm__{host}", "disk", "+8gb:+4gb")
        info = (await self.client.get(f"/api/v1/vm/{host}")).body[host]
        self.assertEqual(info["disk"], ["+8gb", "+4gb"])


    async def test_refusals_of_the_store_in_words(self) -> None:
        host = await self.checkout()
        name = "a" * 32
        refusals: list[tuple[str, str, Any, int, str]] = [
            ("GET", "/api/v1/vm/nosuchvm", None, 404, "no such VM"),
            ("PUT", "/api/v1/vm/nosuchvm", {"lifetime": 2}, 404, "no such VM"),
            ("DELETE", f"/api/v1/vm/{self.ready[C7][0]}", None, 404, "the VM is not running"),
            ("POST", "/api/v1/vm/nosuchvm/snapshot", None, 404, "no such VM"),
            ("POST", f"/api/v1/vm/{host}/snapshot/{name}", None, 404, "no such snapshot"),
            ("POST", "/api/v1/vm", {C7: 4}, 503, "not enough ready VMs")]
        for method, path, body, code, error in refusals:
            answer = await self.client.request(method, path, body)
            self.assertEqual((answer.code, answer.body), (code, {"ok": False, "error": error}),
                             f"{method} {path}")


class SummaryShapeTests(SynchronousTestCase):
    def test_a_tag_value_called_total_does_not_replace_the_total(self) -> None:
        nothing = Durations(0, 0.0, 0.0, 0.0)
        days = [DayHistory(nothing, nothing, {"user": {"total": 5, "jdoe": 2}}),
                DayHistory(nothing, nothing, {"user": {"jdoe": 1}})]
        tags = reports.summary(["2026-11-27", "2026-11-28"], days)["tag"]
        self.assertEqual(tags["user"]["total"], 8)
        self.assertEqual(tags["user"]["jdoe"], 3)


class RefusalTableTests(SynchronousTestCase):
    def test_every_refusal_of_the_store_has_an_answer(self) -> None:
        def subclasses(cls: type[StoreRefusal]) -> set[type[StoreRefusal]]:
            found = set(cls.__subclasses__())
            return found.union(*(subclasses(c) for c in found))
        self.assertEqual(set(REFUSALS), subclasses(StoreRefusal))


class TagFilterTests(ApiCase):
    service = {"tagfilter": {"url": "(.*)/"}}

    async def test_captures_replace_the_value(self) -> None:
        host = (await self.client.post(f"/vm/{D32}")).body[D32]["hostname"]
        await self.client.put(f"/vm/{host}", {"tags": {
            "url": "http://jenkins.example.com/job/foo/", "user": "x/y"}})
        tags = (await self.client.get(f"/vm/{host}")).body[host]["tags"]
        self.assertEqual(tags, {"url": "http://jenkins.example.com/job/foo", "user": "x/y"})


class StatusTests(ApiCase):
    async def test_status(self) -> None:
        await self.client.post("/api/v1/vm", {C7: 3, D32: 1})
        await self.redis.sadd(f"vmpooler__pending__{D64}", ["p1", "p2"])
        await self.redis.set("vmpooler__tasks__clone", "1")
        await self.redis.hset("vmpooler__lastboot", D64, "2023-11-14 22:00:00 +0000")
        await self.redis.set(f"vmpooler__lease__{D64}", "host-a:123:0f0f0f")
        today = local_date(T0).isoformat()
        await self.redis.hset(f"vmpooler__clone__{today}", f"{D64}:a", "2.5")
        await self.redis.hset(f"vmpooler__clone__{today}", f"{D64}:b", "4.5")
        for path in ("/api/v1/status", "/status/"):
            answer = await self.client.get(path)
            self.assertEqual(answer.code, 200)
            body = answer.body
            self.assertEqual(body["capacity"], {"current": 9, "total": 13, "percent": 69.2})
            self.assertEqual(body["queue"], {"pending": 2, "cloning": 1, "booting": 1,
                                             "ready": 9, "running": 4, "completed": 0,
                                             "total": 15})
            self.assertEqual(body["clone"], {"duration": {"average": 3.5, "min": 2.5,
                                                          "max": 4.5},
                                             "count": {"total": 2}})
            self.assertEqual(body["status"], {"ok": False, "message": "Found 1 empty pools.",
                                              "empty": [C7]})
            self.assertEqual(body["pools"][D64], {
                "ready": 5, "running": 0, "pending": 2, "max": 5,
                "alias": ["debian-7-64", "debian"], "lastBoot": "2023-11-14 22:00:00 +0000",
                "manager": public_manager("host-a:123:0f0f0f")})  # Note [Public failures]
            self.assertEqual(body["pools"][C7]["running"], 3)
            self.assertIsNone(body["pools"][C7]["manager"])  # no manager holds it

    async def test_all_pools_ready(self) -> None:
        body = (await self.client.get("/api/v1/status")).body
        self.assertEqual(body["status"], {
            "ok": True, "message": "Battle station fully armed and operational."})


class SummaryTests(ApiCase):
    async def test_a_summary_is_summed_and_encoded_off_the_reactor(self) -> None:
        """Note [Summaries] in vmpoolerd/api/reports.py."""
        pool = ThreadPool(1, 1)
        pool.start()
        self.addCleanup(pool.stop)
        threads: list[threading.Thread] = []

        def off_reactor(render: Callable[[], bytes]) -> Deferred[bytes]:
            def run() -> bytes:
                threads.append(threading.current_thread())
                return render()
            return deferToThreadPool(cast(IReactorFromThreads, reactor), pool, run)
        client = Client(VmpoolerApi(self.config, self.store, self.clock,
                                    off_reactor=off_reactor).resource())
        start = local_date(T0 - 7000 * 86400).isoformat()
        for path in (f"/summary?from={start}", f"/summary/tag?from={start}",
                     f"/summary/boot/duration?from={start}"):
            answer = await client.get(path)
            self.assertEqual(answer.code, 200)
            self.assertEqual(answer.body, (await self.client.get(path)).body)  # inline
        self.assertEqual(len(threads), 3)
        self.assertNotIn(threading.main_thread(), threads)

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        await super().setUp()
        self.today = local_date(T0)
        self.yesterday = local_date(T0 - 86400)
        day = self.yesterday.isoformat()
        for host, seconds in (("a", "80"), ("b", "120.5")):
            await self.redis.hset(f"vmpooler__boot__{day}", f"{D32}:{host}", seconds)
        await self.redis.hset(f"vmpooler__clone__{day}", f"{D32}:a", "3")
        await self.redis.hset(f"vmpooler__tag__{day}", "a:user", "jdoe")
        await self.redis.hset(f"vmpooler__tag__{day}", "b:user", "jdoe")
        await self.redis.hset(f"vmpooler__tag__{day}", "b:job:name", "nightly")

    async def test_today_by_default(self) -> None:
        answer = await self.client.get("/api/v1/summary")
        self.assertEqual(answer.code, 200)
        self.assertEqual([d["date"] for d in answer.body["daily"]], [self.today.isoformat()])
        self.assertEqual(answer.body["boot"]["count"]["total"], 0)

    async def test_range(self) -> None:
        answer = await self.client.get(
            f"/api/v1/summary?from={self.yesterday.isoformat()}&to={self.today.isoformat()}")
        body = answer.body
        self.assertEqual(body["boot"], {
            "duration": {"average": 100.25, "min": 80, "max": 120.5, "total": 200.5},
            "count": {"average": 1, "min": 0, "max": 2, "total": 2}})
        self.assertEqual(body["clone"]["count"]["total"], 1)
        self.assertEqual(body["tag"], {"user": {"jdoe": 2, "total": 2},
                                       "job:name": {"nightly": 1, "total": 1}})
        first, second = body["daily"]
        self.assertEqual(first["boot"], {
            "duration": {"average": 100.25, "min": 80, "max": 120.5, "total": 200.5},
            "count": {"total": 2}})
        self.assertEqual(second["tag"], {})
        self.assertEqual(second["clone"], {
            "duration": {"average": 0, "min": 0, "max": 0, "total": 0}, "count": {"total": 0}})

    async def test_parts(self) -> None:
        query = f"?from={self.yesterday.isoformat()}"
        answer = await self.client.get("/api/v1/summary/boot/duration" + query)
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.body["boot"], {"duration": {
            "average": 100.25, "min": 80, "max": 120.5, "total": 200.5}})
        self.assertEqual(answer.body["daily"][0]["boot"]["duration"]["total"], 200.5)
        answer = await self.client.get("/summary/tag/user/" + query)
        self.assertEqual(answer.body["tag"], {"user": {"jdoe": 2, "total": 2}})
        answer = await self.client.get("/summary/clone" + query)
        self.assertEqual(set(answer.body), {"clone", "daily"})
        self.assert_error(await self.client.get("/api/v1/summary/nothing"), 404)
        self.assert_error(await self.client.get("/api/v1/summary/boot/nothing"), 404)

    async def test_bad_dates(self) -> None:
        tomorrow = local_date(T0 + 86400).isoformat()
        for query in ("from=yesterday", "from=2023-02-30", "from=2023-13-01", "to=2023-1-1",
                      f"from={tomorrow}", f"from={self.today}&to={self.yesterday}",
                      "from=1900-01-01", "from=%ff", "from=2023-11-01%00"):
            self.assert_error(await self.client.get(f"/api/v1/summary?{query}"), 400)

    async def test_long_range(self) -> None:
        # Twenty years (MAX_DAYS days, today included) and not a day more.
        start = local_date(T0 - (reports.MAX_DAYS - 1) * 86400).isoformat()
        answer = await self.client.get(f"/api/v1/summary?from={start}")
        self.assertEqual(answer.code, 200)
        self.assertEqual(len(answer.body["daily"]), reports.MAX_DAYS)
        self.assertEqual(answer.body["boot"]["count"]["total"], 2)
        start = local_date(T0 - reports.MAX_DAYS * 86400).isoformat()
        self.assert_error(await self.client.get(f"/api/v1/summary?from={start}"), 400)


class RedisDownTests(TestCase):
    async def test_503_then_recovery(self) -> None:
        server, redis = await private_redis(self, 0.5)
        config = make_config()
        store = ApiStore(redis, reactor, timeout=0.5)
        self.addCleanup(store.stop)  # give-backs of unanswered checkouts still retrying
        api = VmpoolerApi(config, store, Clock())
        client = Client(api.resource())
        await fill_ready(redis, D32, 2)
        self.assertEqual((await client.post(f"/vm/{D32}")).code, 200)
        server.stop()
        for path in (f"/vm/{D32}", "/status"):
            answer = await client.request("POST" if "vm" in path else "GET", path)
            self.assertEqual(answer.code, 503)
            self.assertIs(answer.body["ok"], False)
        server.start()  # an empty Redis, on the same port
        server.cli("SADD", f"vmpooler__ready__{D32}", "back00000")
        server.cli("HSET", "vmpooler__vm__back00000", "template", D32)
        # The daemon's connection comes back by itself (txredisapi backs
        # off up to 10 s between attempts).
        async def checked_out() -> Any:
            answer = await client.post(f"/vm/{D32}")
            if answer.code != 200:
                self.assertEqual(answer.code, 503)
                return None
            return answer
        answer = await until("a checkout from the new Redis", checked_out)
        self.assertEqual(answer.body[D32]["hostname"], "back00000")


    async def test_recovery_from_a_stall_that_outlasts_a_reconnection(self) -> None:
        # Database 1: each new connection must SELECT it, and while Redis is
        # stalled that times out too.
        server = RedisServer()
        self.addCleanup(server.stop)
        redis = connect(RedisConfig(server="127.0.0.1", port=server.port, db=1), 0.5)
        self.addCleanup(redis.disconnect)
        await txredis_adapter.connected(redis)
        store = ApiStore(redis, reactor, timeout=0.5)
        self.addCleanup(store.stop)
        client = Client(VmpoolerApi(make_config(), store, Clock()).resource())
        server.cli("-n", "1", "SADD", f"vmpooler__ready__{D32}", "db100000a", "db100000b")
        self.assertEqual((await client.post(f"/vm/{D32}")).code, 200)
        server.cli("CLIENT", "PAUSE", "4000", "ALL")
        self.assertEqual((await client.post(f"/vm/{D32}")).code, 503)
        async def answered() -> Any:
            answer = await client.post(f"/vm/{D32}")
            return answer if answer.code == 200 else None
        # the back-off between attempts grows to 10 s
        answer = await until("a checkout after the stall", answered)
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual(server.cli("-n", "1", "SCARD", f"vmpooler__ready__{D32}").strip(), "0")


class RedisLoginTests(TestCase):
    async def test_password_and_database(self) -> None:
        server = RedisServer("--requirepass", "s3cret-pw")
        self.addCleanup(server.stop)
        redis = connect(RedisConfig(server="127.0.0.1", port=server.port,
                                    password="s3cret-pw", db=2), 1)
        self.addCleanup(redis.disconnect)
        await txredis_adapter.connected(redis)
        await redis.set("vmpooler__test__db", "two")
        self.assertEqual(server.cli("-a", "s3cret-pw", "--no-auth-warning", "-n", "2",
                                    "GET", "vmpooler__test__db").strip(), "two")

    async def test_a_refused_password_is_logged_without_it_and_tried_again(self) -> None:
        server = RedisServer("--requirepass", "s3cret-pw")
        self.addCleanup(server.stop)
        events = captured_events(self)
        redis = connect(RedisConfig(server="127.0.0.1", port=server.port,
                                    password="wrong-pw"), 1)
        self.addCleanup(redis.disconnect)
        # One failure per connection of the pool (two), then, after a
        # second's back-off, attempts again.
        await until("a third login", lambda: sum(
            "logging in" in formatEvent(e) for e in events) > 2, seconds=5)
        failures = [formatEvent(e) for e in events if "logging in" in formatEvent(e)]
        self.assertGreater(len(failures), 2)
        self.assertIn("WRONGPASS", failures[0])
        self.assertFalse(any("wrong-pw" in formatEvent(e) for e in events))


class RedisBusyTests(TestCase):
    async def test_a_busy_redis_is_503(self) -> None:
        server, redis = await private_redis(self, 3)
        server.cli("CONFIG", "SET", "busy-reply-threshold", "100")
        store = ApiStore(redis, reactor, 3)
        self.addCleanup(store.stop)
        api = VmpoolerApi(make_config(), store, Clock())
        client = Client(api.resource())
        await redis.ping()
        # Another client's script keeps Redis busy for a second.
        spin = subprocess.Popen(
            ["redis-cli", "-p", str(server.port), "EVAL",
             "local t = redis.call('TIME') "
             "while tonumber(redis.call('TIME')[1]) * 1e6 + tonumber(redis.call('TIME')[2]) "
             "< tonumber(t[1]) * 1e6 + tonumber(t[2]) + 1e6 do end return 1", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(spin.wait)
        await deferLater(reactor, 0.4)  # real time: the script must be running in Redis
        answer = await client.post(f"/api/v1/vm/{D32}")
        self.assertEqual(answer.code, 503, answer.body)
        self.assertIn("BUSY", answer.body["error"])


class UnansweredCheckoutTests(TestCase):
    async def test_vms_of_an_unanswered_checkout_go_back(self) -> None:
        server, redis = await private_redis(self, 3)
        store = ApiStore(redis, reactor, 0.3)
        self.addCleanup(store.stop)
        client = Client(VmpoolerApi(make_config(), store, Clock()).resource())
        hosts = await fill_ready(redis, D32, 4)
        first = (await client.post("/api/v1/vm", {D32: 1})).body[D32]["hostname"]
        # Redis takes its time: the checkout is answered 503, but Redis runs
        # the script once it is back.
        server.cli("CLIENT", "PAUSE", "800", "ALL")
        answer = await client.post("/api/v1/vm", {D32: 2})
        self.assertEqual(answer.code, 503)

        async def given_back() -> bool:
            return (await redis.smembers(f"vmpooler__ready__{D32}") == set(hosts) - {first}
                    and await redis.smembers(f"vmpooler__running__{D32}") == {first})
        await until("the VMs given back", given_back, seconds=5)
        self.assertTrue(await given_back())
        self.assertEqual(set(await redis.hgetall(f"vmpooler__active__{D32}")), {first})
        for host in set(hosts) - {first}:
            self.assertNotIn("checkout", await redis.hgetall(f"vmpooler__vm__{host}"))
        self.assertEqual((await client.post("/api/v1/vm", {D32: 3})).code, 200)


class ClientGoneTests(TestCase):
    """Note [Clients that went away] in vmpoolerd/store/api_store.py."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.server, self.redis = await private_redis(self, 3)
        self.store = ApiStore(self.redis, reactor, 3)
        self.addCleanup(self.store.stop)
        self.hosts = set(await fill_ready(self.redis, D32, 3))

    async def all_back(self) -> bool:
        """The checkout ran (its batch key is there), and gave all back."""
        async def back() -> bool:
            return bool(await self.redis.keys("vmpooler__checkout_batch__*")
                        and await self.redis.smembers(f"vmpooler__ready__{D32}") == self.hosts
                        and not await self.redis.smembers(f"vmpooler__running__{D32}")
                        and not await self.redis.hgetall(f"vmpooler__active__{D32}"))
        return bool(await until("the checkout to give its VMs back", back, seconds=10))

    async def test_a_cancelled_checkout_gives_its_vms_back(self) -> None:
        answer = self.store.checkout(Request(((D32, 2, (D32,)),), format_time(T0), {}))
        answer.cancel()  # before its batch has even gone out
        self.assertFailure(answer, CancelledError)
        self.assertTrue(await self.all_back())
        for host in self.hosts:
            self.assertNotIn("checkout", await self.redis.hgetall(f"vmpooler__vm__{host}"))

    async def test_a_client_that_hangs_up_while_redis_is_slow(self) -> None:
        site = ApiSite(VmpoolerApi(make_config(), self.store, Clock()).resource(), reactor)
        port = listen(site)
        self.addCleanup(port.stopListening)
        self.server.cli("CLIENT", "PAUSE", "2500", "ALL")
        client = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port_of(port)), Protocol())
        tcp(client).write(f"POST /api/v1/vm/{D32} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await deferLater(reactor, 0.2)  # real time: the request must reach the paused Redis
        tcp(client).abortConnection()  # gone before Redis answers
        # Redis runs the checkout after all (all_back waits for its batch)
        self.assertTrue(await self.all_back())
