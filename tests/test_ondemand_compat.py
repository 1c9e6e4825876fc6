"""
On-demand requests shared with vmpooler 3.x both ways (Note [On-demand
records] in vmpoolerd/store/lua/preamble/ondemand.lua): a request 3.x's API
wrote, served by our manager and read through our API; one our API made,
read as 3.x's API reads it; one 3.x was filling at a switch-over, finished.
And the claim that fences a manager's every write to a request (Note
[On-demand requests]): a manager that lost it changes nothing.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from vmpoolerd.manager.ondemand import OndemandWorker
from vmpoolerd.store.errors import LeaseLost
from vmpoolerd.store.ondemand import Wanted
from vmpoolerd.store.pools import PoolStore
from vmpoolerd.timefmt import format_time

from .fixtures import USER
from .manager_case import CENTOS, DEBIAN, ScriptedProvider, manager_config
from .redis_server import fresh_redis
from .test_ondemand import OndemandCase
from .waiting import until

QUEUE, PROCESSING, TASKS = ("vmpooler__provisioning__request",
                            "vmpooler__provisioning__processing", "vmpooler__odcreate__task")


async def write_as_3x(redis: Any, rid: str, requested: str, token: str, user: str,
                      asked: float) -> None:
    """What vmpooler 3.x's API writes for a new request: the id queued,
    the hash with ``requested`` and the token's fields, no status."""
    await redis.zadd(QUEUE, asked, rid)
    await redis.hset(f"vmpooler__odrequest__{rid}", "requested", requested)
    await redis.hset(f"vmpooler__odrequest__{rid}", "token:token", token)
    await redis.hset(f"vmpooler__odrequest__{rid}", "token:user", user)


async def read_as_3x(redis: Any, rid: str, domain: str) -> tuple[int, dict[str, Any]]:
    """The status and body vmpooler 3.x's API answers ``GET
    /ondemandvm/<rid>`` with, from the keys and fields it reads: the hash's
    ``status`` and ``requested``, and each entry's set of VMs."""
    fields = await redis.hgetall(f"vmpooler__odrequest__{rid}")
    if not fields:
        return 404, {"ok": False}
    body: dict[str, Any] = {"ok": True, "request_id": rid, "ready": False}
    entries = [e.split(":") for e in fields["requested"].split(",")]
    status = fields.get("status")
    if status == "ready":
        body["ready"] = True
        for alias, pool, _ in entries:
            hosts = await redis.smembers(f"vmpooler__{rid}__{alias}__{pool}")
            body.setdefault(alias, {"hostname": []})["hostname"] += sorted(
                f"{h}.{domain}" if domain else h for h in hosts)
        return 200, body
    if status in ("failed", "deleted"):
        return 200, body
    for alias, pool, count in entries:
        ready = await redis.scard(f"vmpooler__{rid}__{alias}__{pool}")
        body[alias] = {"ready": str(ready), "pending": str(int(count) - ready)}
    return 202, body


class SharedWith3xTests(OndemandCase):
    async def served(self, rid: str) -> Any:
        return await until("the request ready", lambda: self.ready(rid))

    async def test_a_request_3x_wrote_is_served_and_read_back(self) -> None:
        self.start()
        await write_as_3x(self.redis, "from-3x", f"deb:{DEBIAN}:2,{CENTOS}:{CENTOS}:1",
                          self.token, USER, self.clock_now())
        answer = await self.served("from-3x")
        hosts = {h.partition(".")[0] for h in answer.body["deb"]["hostname"]}
        self.assertEqual(len(hosts), 2)
        self.assertEqual(len(answer.body[CENTOS]["hostname"]), 1)
        # Recorded as 3.x records a request it filled.
        fields = await self.redis.hgetall("vmpooler__odrequest__from-3x")
        self.assertEqual(fields["status"], "ready")
        self.assertEqual(await self.redis.smembers(f"vmpooler__from-3x__deb__{DEBIAN}"), hosts)
        for host in hosts:
            vm = await self.redis.hgetall(f"vmpooler__vm__{host}")
            self.assertEqual((vm["request_id"], vm["pool_alias"], vm["token:user"]),
                             ("from-3x", "deb", USER))
        self.assertTrue(hosts <= await self.members("running", DEBIAN))
        for queue in (QUEUE, PROCESSING, TASKS):
            self.assertEqual(await self.redis.zcard(queue), 0, queue)

    async def test_a_request_our_api_made_reads_as_3x_reads_it(self) -> None:
        rid = await self.ask({DEBIAN: 2})
        code, body = await read_as_3x(self.redis, rid, "example.com")
        self.assertEqual((code, body[DEBIAN]), (202, {"ready": "0", "pending": "2"}))
        self.assertEqual(await self.redis.zrange(QUEUE, 0, -1), [rid])
        self.start()
        ours = await self.served(rid)
        domain = ours.body[DEBIAN]["hostname"][0].partition(".")[2]
        code, body = await read_as_3x(self.redis, rid, domain)
        self.assertEqual(code, 200)
        self.assertEqual(sorted(ours.body[DEBIAN]["hostname"]), body[DEBIAN]["hostname"])

    async def test_a_request_3x_was_filling_at_the_switch_is_finished(self) -> None:
        """3.x had taken it (processing, a clone queued) and handed one VM
        out: our manager makes only the other."""
        rid, handed = "in-flight", "poolvm-from-3x"
        await write_as_3x(self.redis, rid, f"{DEBIAN}:{DEBIAN}:2", self.token, USER,
                          self.clock_now())
        await self.redis.zrem(QUEUE, rid)
        await self.redis.zadd(PROCESSING, self.clock_now(), rid)
        await self.redis.zadd(TASKS, self.clock_now(), f"{DEBIAN}:{DEBIAN}:1:{rid}")
        await self.redis.sadd(f"vmpooler__{rid}__{DEBIAN}__{DEBIAN}", handed)
        await self.redis.hset(f"vmpooler__vm__{handed}", "request_id", rid)
        answer = await self.poll(rid)
        self.assertEqual((answer.code, answer.body[DEBIAN]), (202, {"ready": "1", "pending": "1"}))
        self.start()
        answer = await self.served(rid)
        hosts = {h.partition(".")[0] for h in answer.body[DEBIAN]["hostname"]}
        self.assertEqual(len(hosts), 2)
        self.assertIn(handed, hosts)
        self.assertEqual(await self.request_vms(rid), hosts)
        self.assertEqual(await self.redis.zcard(TASKS), 0)

    async def test_one_3x_deleted_mid_provisioning_is_let_go(self) -> None:
        """3.x's API deletes without dequeuing: what our manager was
        provisioning goes, the status stays 3.x's."""
        self.start()
        await until("full pools", self.full)
        rid = await self.ask({DEBIAN: 2})
        await until("clones started", lambda: self.redis.scard(f"vmpooler__odpending__{rid}"))
        await self.redis.hset(f"vmpooler__odrequest__{rid}", "status", "deleted")
        vms = await self.request_vms(rid)
        await until("no VM of the request in vSphere", lambda: not self.in_vsphere(vms),
                    seconds=60)
        self.assertEqual(await self.redis.zcard(PROCESSING), 0)
        answer = await self.poll(rid)
        self.assertEqual((answer.code, answer.body["ready"], answer.body["message"]),
                         (200, False, "The request has been deleted"))

    def clock_now(self) -> float:
        return reactor.seconds()


class ClaimFenceTests(TestCase):
    """Two managers and one request, driven by hand on fake clocks."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.config = manager_config(1, 0, ready_check_port=0)
        self.store = PoolStore(self.redis, Clock())
        await self.store.ondemand.create("r1", [Wanted(DEBIAN, DEBIAN, 1)], 1000.0, "user:u",
                                         (9, 9))
        # A VM made for it and ready, as a cycle before left it.
        await self.redis.hset("vmpooler__vm__v1", "template", DEBIAN)
        await self.redis.hset("vmpooler__vm__v1", "pool_alias", DEBIAN)
        await self.redis.sadd("vmpooler__odready__r1", "v1")
        await self.redis.sadd(f"vmpooler__ondemand__{DEBIAN}", "v1")

    def worker(self, owner: str, at: float) -> tuple[OndemandWorker, ScriptedProvider]:
        clock, provider = Clock(), ScriptedProvider()
        clock.advance(at)
        return OndemandWorker(self.config, self.store, {DEBIAN: provider}, clock,
                              owner=owner), provider

    async def asked(self, provider: ScriptedProvider, method: str) -> None:
        await until(f"a {method} call", lambda: bool(provider.calls.get(method)))

    async def test_a_late_ending_changes_nothing_handed_out(self) -> None:
        """A's cycle outlasts its claim (its vCenter slow); B takes the
        request over and hands it out; A's ending past the TTL is refused."""
        a, slow = self.worker("A", 1000.0 + 400)  # past ondemand_request_ttl
        late = ensureDeferred(a.cycle())
        await self.asked(slow, "inventory")
        await self.redis.execute_command("PEXPIRE", "vmpooler__odclaim__r1", 1)
        await until("A's claim run out",
                    lambda: self.redis.exists("vmpooler__odclaim__r1").addCallback(
                        lambda n: not n))
        b, fast = self.worker("B", 1010.0)
        second = ensureDeferred(b.cycle())
        await self.asked(fast, "inventory")
        fast.answer("inventory", [])
        await second
        self.assertEqual(await self.redis.hget("vmpooler__odrequest__r1", "status"), "ready")
        slow.answer("inventory", [])
        await late
        self.assertEqual(await self.redis.hget("vmpooler__odrequest__r1", "status"), "ready")
        self.assertEqual(await self.redis.smembers(f"vmpooler__running__{DEBIAN}"), {"v1"})
        self.assertEqual(await self.redis.smembers(f"vmpooler__completed__{DEBIAN}"), set())

    async def test_every_manager_write_is_fenced_by_the_claim(self) -> None:
        self.assertTrue(await self.store.ondemand.claim("r1", "B", 30, 1000.0))
        stale = self.store.claimed("r1", "A")
        now = format_time(1000.0)
        requests = stale.ondemand
        for write in (requests.end("r1", "failed", "late", 60), requests.hand_out("r1", now, 60),
                      requests.vm_ready("r1", "v1", DEBIAN, now),
                      requests.vm_failed("r1", "v1", DEBIAN, now, "late", 1000.0),
                      requests.reserve("r1", DEBIAN, DEBIAN, ["v2"], 10, 10, now, 1000.0, 15)):
            with self.assertRaises(LeaseLost):
                await write
        request = await self.store.ondemand.request("r1")
        assert request is not None
        self.assertEqual((request.status, [vm.name for vm in request.ready]), ("pending", ["v1"]))
        self.assertFalse(await self.redis.exists("vmpooler__vm__v2"))
        # The holder's own writes go through.
        self.assertTrue(await self.store.claimed("r1", "B").ondemand.hand_out("r1", now, 60))

    async def test_an_api_delete_needs_no_claim(self) -> None:
        self.assertTrue(await self.store.ondemand.claim("r1", "B", 30, 1000.0))
        self.assertEqual(await self.store.ondemand.end("r1", "deleted", "deleted by u", 60), 1)
        self.assertEqual(await self.redis.smembers(f"vmpooler__completed__{DEBIAN}"), {"v1"})


