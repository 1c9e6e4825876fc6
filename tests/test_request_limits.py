"""
vmpooler 3.x's rate limits (api/ratelimit.py, Note [Request limits]) on a
real Redis: two API daemons sharing it reach one limit together; the 429's
headers and body; the kinds and clients counted apart; a window that
requests do not push back and that ends on time; Redis down lets requests
through, and says so in the log; the configuration's keys.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.clients import Clients
from vmpoolerd.api.ratelimit import DEFAULTS, RateLimits, RequestLimiter, kind_of, rate_limits
from vmpoolerd.config import parse_config
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.store.ratelimit import RateLimitStore

from .api_case import D32, D64, T0
from .fixtures import PASSWORD, USER, StubDirectory, config_text, fill_ready, make_config
from .http import Client
from .logs import captured_events
from .redis_server import fresh_redis, private_redis
from .waiting import until


def header(answer: Any, name: str) -> str:
    (value,) = answer.headers.getRawHeaders(name)
    return str(value)


def limits(**kinds: tuple[int, int]) -> RateLimits:
    return RateLimits(True, {**DEFAULTS, **kinds})


class LimitCase(TestCase):
    """Two API daemons on one Redis, each with its own stores."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.clock = Clock()
        self.clock.advance(T0)
        await fill_ready(self.redis, D32, 10)
        await fill_ready(self.redis, D64, 10)

    def daemon(self, rate: RateLimits, redis: Any = None, timeout: float = 3.0,
               **service: Any) -> Client:
        redis = redis or self.redis
        config = make_config(**service)
        store = ApiStore(redis, reactor, timeout)
        self.addCleanup(store.stop)
        limiter = RequestLimiter(rate, RateLimitStore(redis, reactor, timeout), self.clock,
                                 Clients.of(config))
        api = VmpoolerApi(config, store, self.clock, StubDirectory(), random.Random(1),
                          limiter=limiter)
        return Client(api.resource())

    async def ttl(self, key: str) -> int:
        return int(await self.redis.execute_command("TTL", key))


class SharedLimitTests(LimitCase):
    async def test_two_daemons_reach_one_limit_together(self) -> None:
        rate = limits(global_per_ip=(5, 60))
        daemons = [self.daemon(rate), self.daemon(rate)]
        for i in range(5):
            answer = await daemons[i % 2].get("/api/v3/vm")
            self.assertEqual(answer.code, 200, answer.body)
        for client in daemons:
            answer = await client.get("/api/v1/vm")
            self.assertEqual(answer.code, 429)
            self.assertEqual(answer.body, {"ok": False, "error": "Rate limit exceeded",
                                           "limit": 5, "period": 60, "retry_after": 60})
            self.assertEqual([header(answer, name) for name in (
                "X-RateLimit-Limit", "X-RateLimit-Remaining", "Retry-After", "Content-Type")],
                ["5", "0", "60", "application/json"])
            self.assertEqual(int(header(answer, "X-RateLimit-Reset")), int(T0) + 60)
        keys = await self.redis.keys("vmpooler__ratelimit__global_per_ip__ip:*")
        self.assertEqual(len(keys), 1)
        self.assertEqual(await self.redis.get(keys[0]), "7")

    async def test_a_refused_request_goes_no_further(self) -> None:
        client = self.daemon(limits(vm_creation=(1, 60)))
        self.assertEqual((await client.post(f"/api/v3/vm/{D32}")).code, 200)
        self.assertEqual((await client.post(f"/api/v3/vm/{D64}")).code, 429)
        self.assertEqual(await self.redis.scard(f"vmpooler__running__{D64}"), 0)

    async def test_kinds_are_counted_apart(self) -> None:
        client = self.daemon(limits(vm_creation=(2, 60), vm_deletion=(1, 60),
                                    global_per_ip=(3, 60)))
        hosts = [(await client.post(f"/api/v1/vm/{D32}")).body[D32]["hostname"]
                 for _ in range(2)]
        self.assertEqual((await client.post(f"/api/v1/vm/{D32}")).code, 429)
        self.assertEqual((await client.delete(f"/api/v1/vm/{hosts[0]}")).code, 200)
        self.assertEqual((await client.delete(f"/api/v1/vm/{hosts[1]}")).code, 429)
        for _ in range(3):  # other requests: their own count
            self.assertEqual((await client.get("/api/v3/status")).code, 200)
        self.assertEqual((await client.get("/api/v3/status")).code, 429)

    async def test_the_health_check_and_metrics_are_not_limited(self) -> None:
        client = self.daemon(limits(global_per_ip=(1, 60)))
        for _ in range(3):
            self.assertNotEqual((await client.get("/api/v1/healthcheck")).code, 429)
            response = await client.stub.get("http://vmpooler.test/metrics")
            self.assertEqual(response.code, 200)
            await response.content()
        self.assertEqual(await self.redis.keys("vmpooler__ratelimit__*"), [])

    async def test_a_token_is_a_client_of_its_own_an_invented_one_is_not(self) -> None:
        client = self.daemon(limits(authenticated=(2, 60), global_per_ip=(2, 60)))
        token = (await client.post("/api/v3/token", auth=(USER, PASSWORD))).body["token"]
        mine = {"X-AUTH-TOKEN": token}
        for _ in range(2):
            self.assertEqual((await client.get("/api/v3/status", headers=mine)).code, 200)
        self.assertEqual((await client.get("/api/v3/status", headers=mine)).code, 429)
        self.assertTrue(await self.redis.exists(
            f"vmpooler__ratelimit__authenticated__token:{token}"))
        # Invented tokens count as the client's address, all together.
        for i, code in enumerate((200, 200, 429)):
            answer = await client.get("/api/v3/status", headers={"X-AUTH-TOKEN": f"x{i}"})
            self.assertEqual(answer.code, code)
        self.assertEqual(len(await self.redis.keys(
            "vmpooler__ratelimit__authenticated__ip:*")), 1)


class ProxyTests(LimitCase):
    """Note [Client addresses] in api/clients.py: StubTreq's peer is 127.0.0.1."""

    async def test_a_trusted_proxys_clients_are_counted_apart(self) -> None:
        client = self.daemon(limits(global_per_ip=(1, 60)), trusted_proxies=["127.0.0.1"])
        for address, code in (("198.51.100.1", 200), ("198.51.100.1", 429),
                              ("198.51.100.2", 200), ("2001:db8::1", 200),
                              ("2001:db8::2", 429)):  # one /64
            answer = await client.get("/api/v3/vm", headers={"X-Forwarded-For": address})
            self.assertEqual(answer.code, code, address)
        self.assertIn("vmpooler__ratelimit__global_per_ip__ip:2001:db8::/64",
                      await self.redis.keys("vmpooler__ratelimit__*"))

    async def test_an_untrusted_peers_forwarded_address_is_not_believed(self) -> None:
        client = self.daemon(limits(global_per_ip=(1, 60)))
        self.assertEqual((await client.get("/api/v3/vm")).code, 200)
        answer = await client.get("/api/v3/vm", headers={"X-Forwarded-For": "198.51.100.3"})
        self.assertEqual(answer.code, 429)


class WindowTests(LimitCase):
    async def test_requests_do_not_push_the_window_back(self) -> None:
        client = self.daemon(limits(global_per_ip=(1, 30)))
        self.assertEqual((await client.get("/api/v3/vm")).code, 200)
        (key,) = await self.redis.keys("vmpooler__ratelimit__*")
        await self.redis.execute_command("EXPIRE", key, 5)  # the window, 25 s on
        for _ in range(3):
            answer = await client.get("/api/v3/vm")
            self.assertEqual(answer.code, 429)
            self.assertLessEqual(int(header(answer, "Retry-After")), 5)
        self.assertLessEqual(await self.ttl(key), 5)

    async def test_the_window_ends_on_time(self) -> None:
        client = self.daemon(limits(global_per_ip=(1, 1)))
        self.assertEqual((await client.get("/api/v3/vm")).code, 200)
        self.assertEqual((await client.get("/api/v3/vm")).code, 429)

        async def let_in() -> bool:
            return (await client.get("/api/v3/vm")).code == 200
        # A one-second window: let in again within a little over a second.
        await until("the window to end", let_in, seconds=2.5, interval=0.1)

    async def test_a_counter_without_an_expiry_gets_one(self) -> None:
        client = self.daemon(limits(global_per_ip=(1, 30)))
        self.assertEqual((await client.get("/api/v3/vm")).code, 200)
        (key,) = await self.redis.keys("vmpooler__ratelimit__*")
        await self.redis.execute_command("PERSIST", key)
        self.assertEqual((await client.get("/api/v3/vm")).code, 429)
        self.assertEqual(await self.ttl(key), 30)


class RedisDownTests(LimitCase):
    async def test_requests_go_through_and_the_log_says_so(self) -> None:
        server, redis = await private_redis(self, 0.3)
        client = self.daemon(limits(global_per_ip=(1, 60)), redis, 0.3)
        events = captured_events(self)
        server.stop()
        for _ in range(3):
            self.assertEqual((await client.get("/api/v3/vm")).code, 200)
        said = [e for e in events if "let through" in e.get("log_format", "")]
        self.assertEqual(len(said), 1)  # once a minute, not once a request


class DisabledTests(LimitCase):
    async def test_off_unless_enabled(self) -> None:
        config = make_config()
        api = VmpoolerApi(config, ApiStore(self.redis, reactor), self.clock)
        client = Client(api.resource())
        for _ in range(3):
            self.assertEqual((await client.get("/api/v3/vm")).code, 200)
        self.assertEqual(await self.redis.keys("vmpooler__ratelimit__*"), [])


class ConfigTests(TestCase):
    def test_defaults(self) -> None:
        self.assertEqual(rate_limits(make_config()), RateLimits(False, dict(DEFAULTS)))

    def test_read_from_the_configuration(self) -> None:
        found = rate_limits(parse_config(
            config_text(None, None, None, rate_limiting_enabled=True)
            + ":rate_limits:\n  :vm_deletion:\n    limit: 3\n    period: 30\n", {}))
        self.assertEqual((found.enabled, found.kinds["vm_deletion"]), (True, (3, 30)))
        self.assertEqual(found.kinds["vm_creation"], DEFAULTS["vm_creation"])

    def test_kinds(self) -> None:
        self.assertEqual(kind_of(b"POST", b"/api/v3/vm/a+b", True), "vm_creation")
        self.assertEqual(kind_of(b"DELETE", b"/vm/host", False), "vm_deletion")
        self.assertEqual(kind_of(b"POST", b"/api/v3/ondemandvm", True), "authenticated")
        self.assertEqual(kind_of(b"GET", b"/api/v3/vm", False), "global_per_ip")
