"""
The on-demand routes on a real Redis (no manager: what the API stores and
answers, and bad input refused without a trace in Redis).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.store.api_store import ApiStore

from .api_case import C7, D32, D64
from .fixtures import PASSWORD, USER, StubDirectory, make_config
from .http import Client
from .redis_server import private_redis

QUEUE = "vmpooler__provisioning__request"


class OndemandApiCase(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.server, self.redis = await private_redis(self, 0.5)
        self.config = make_config(auth={"host": "127.0.0.1", "base": ["dc=example,dc=com"]},
                                  max_ondemand_instances_per_request=4)
        store = ApiStore(self.redis, reactor, timeout=0.5)
        self.addCleanup(store.stop)
        api = VmpoolerApi(self.config, store, reactor, StubDirectory(), random.Random(1))
        self.client = Client(api.resource())
        self.token = (await self.client.post("/api/v3/token", auth=(USER, PASSWORD))
                      ).body["token"]
        self.headers = {"X-AUTH-TOKEN": self.token}

    async def post(self, body: Any, path: str = "/api/v3/ondemandvm") -> Any:
        return await self.client.post(path, body, headers=self.headers)

    async def nothing_stored(self) -> None:
        self.assertEqual(await self.redis.zcard(QUEUE), 0)
        self.assertEqual(await self.redis.keys("vmpooler__odrequest__*"), [])


class OndemandApiTests(OndemandApiCase):
    async def test_a_request_as_vmpooler_3_keeps_it(self) -> None:
        answer = await self.post({D32: 2, "debian-7-32": 1, "request_id": "job-1"})
        self.assertEqual((answer.code, answer.body), (201, {"ok": True, "request_id": "job-1"}))
        fields = await self.redis.hgetall("vmpooler__odrequest__job-1")
        self.assertEqual(sorted(fields["requested"].split(",")),
                         [f"debian-7-32:{D32}:1", f"{D32}:{D32}:2"])
        # As vmpooler 3.x's API writes one: no status until it has one
        # (Note [On-demand records]).
        self.assertNotIn("status", fields)
        self.assertEqual((fields["token:token"], fields["token:user"]), (self.token, USER))
        self.assertEqual(await self.redis.zrange(QUEUE, 0, -1), ["job-1"])
        answer = await self.client.get("/api/v1/ondemandvm/job-1")
        self.assertEqual(answer.code, 202)
        self.assertEqual(answer.body, {
            "ok": True, "request_id": "job-1", "ready": False,
            D32: {"ready": "0", "pending": "2"}, "debian-7-32": {"ready": "0", "pending": "1"}})

    async def test_a_path_request_and_a_generated_id(self) -> None:
        answer = await self.post(None, f"/api/v2/ondemandvm/{C7}+{C7}+debian")
        self.assertEqual(answer.code, 201, answer.body)
        rid = answer.body["request_id"]
        requested = (await self.redis.hget(f"vmpooler__odrequest__{rid}", "requested"))
        entries = dict((e.split(":")[0], e) for e in requested.split(","))
        self.assertEqual(entries[C7], f"{C7}:{C7}:2")
        self.assertIn(entries["debian"].split(":")[1], (D64, C7))

    async def test_bad_input_stores_nothing(self) -> None:
        for body, code in [({"nope": 1, D32: 1}, 404), ({D32: 5}, 403),
                           ({D32: 3, "debian-7-32": 2}, 403), ({D32: 0}, 400),
                           ({D32: "x"}, 400), ({}, 400), ([D32], 400),
                           ({D32: 1, "request_id": "a b"}, 400),
                           ({D32: 1, "request_id": 7}, 400), (b"{oops", 400)]:
            answer = await self.post(body)
            self.assertEqual(answer.code, code, (body, answer.body))
            self.assertIs(answer.body["ok"], False)
        answer = await self.post({"nope": 1, "other": 2})
        self.assertEqual(answer.body["bad_templates"], ["nope", "other"])
        await self.nothing_stored()

    async def test_a_known_id_is_409(self) -> None:
        await self.post({D32: 1, "request_id": "same"})
        answer = await self.post({C7: 1, "request_id": "same"})
        self.assertEqual(answer.code, 409)
        self.assertEqual(await self.redis.hget("vmpooler__odrequest__same", "requested"),
                         f"{D32}:{D32}:1")

    async def test_a_token_is_required(self) -> None:
        answer = await self.client.post("/api/v3/ondemandvm", {D32: 1})
        self.assertEqual(answer.code, 401)
        await self.nothing_stored()

    async def test_unknown_ids(self) -> None:
        self.assertEqual((await self.client.get("/api/v3/ondemandvm/nope")).code, 404)
        answer = await self.client.delete("/api/v3/ondemandvm/nope", headers=self.headers)
        self.assertEqual(answer.code, 404)
        self.assertEqual((await self.client.get("/api/v3/ondemandvm/a%20b")).code, 400)

    async def test_delete_ends_it_and_only_its_owner_may(self) -> None:
        await self.post({D32: 1, "request_id": "mine"})
        dn = await self.redis.hget("vmpooler__odrequest__mine", "token:user_dn")
        await self.redis.hset("vmpooler__odrequest__mine", "token:user_dn", "uid=someone")
        answer = await self.client.delete("/api/v3/ondemandvm/mine", headers=self.headers)
        self.assertEqual(answer.code, 401)
        await self.redis.hset("vmpooler__odrequest__mine", "token:user_dn", dn)
        answer = await self.client.delete("/api/v3/ondemandvm/mine", headers=self.headers)
        self.assertEqual((answer.code, answer.body), (200, {"ok": True}))
        answer = await self.client.get("/api/v3/ondemandvm/mine")
        self.assertEqual(answer.code, 200)
        self.assertEqual((answer.body["ready"], answer.body["message"]),
                         (False, f"deleted by {USER}"))
        self.assertEqual(await self.redis.zcard(QUEUE), 0)
        # Deleting again changes nothing.
        answer = await self.client.delete("/api/v3/ondemandvm/mine", headers=self.headers)
        self.assertEqual(answer.code, 200)

    async def test_redis_down_is_503(self) -> None:
        self.server.stop()
        answer = await self.client.get("/api/v3/ondemandvm/any")
        self.assertEqual(answer.code, 503)
        self.assertIs(answer.body["ok"], False)


class ReadsWhat3xWroteTests(OndemandApiCase):
    """Requests vmpooler 3.x's manager filled or ended, read through our
    API (Note [On-demand records])."""

    async def three_x(self, rid: str, requested: str, **fields: str) -> None:
        await self.redis.hset(f"vmpooler__odrequest__{rid}", "requested", requested)
        for name, value in fields.items():
            await self.redis.hset(f"vmpooler__odrequest__{rid}", name, value)

    async def test_one_3x_filled_answers_with_its_hostnames(self) -> None:
        await self.three_x("filled", f"deb:{D32}:2,{C7}:{C7}:1", status="ready")
        await self.redis.sadd(f"vmpooler__filled__deb__{D32}", "poolvm-a")
        await self.redis.sadd(f"vmpooler__filled__deb__{D32}", "poolvm-b")
        await self.redis.sadd(f"vmpooler__filled__{C7}__{C7}", "poolvm-c")
        answer = await self.client.get("/api/v3/ondemandvm/filled")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.body, {
            "ok": True, "request_id": "filled", "ready": True,
            "deb": {"hostname": ["poolvm-a.example.com", "poolvm-b.example.com"]},
            C7: {"hostname": ["poolvm-c.example.com"]}})

    async def test_one_an_earlier_vmpoolerd_filled_keeps_its_hostnames(self) -> None:
        """Before the requests were kept as 3.x keeps them, a handed-out
        request's VMs were in its own ``hostnames`` field."""
        await self.three_x("earlier", f"{D32}:{D32}:2,{C7}:{C7}:1", status="ready",
                           hostnames=f"{D32}:poolvm-a,{D32}:poolvm-b,{C7}:poolvm-c")
        answer = await self.client.get("/api/v3/ondemandvm/earlier")
        self.assertEqual((answer.code, answer.body), (200, {
            "ok": True, "request_id": "earlier", "ready": True,
            D32: {"hostname": ["poolvm-a.example.com", "poolvm-b.example.com"]},
            C7: {"hostname": ["poolvm-c.example.com"]}}))

    async def test_one_3x_is_filling_counts_what_it_handed_out(self) -> None:
        await self.three_x("filling", f"{D32}:{D32}:2")
        await self.redis.sadd(f"vmpooler__filling__{D32}__{D32}", "poolvm-a")
        answer = await self.client.get("/api/v3/ondemandvm/filling")
        self.assertEqual((answer.code, answer.body[D32]), (202, {"ready": "1", "pending": "1"}))

    async def test_one_3x_ended_says_why(self) -> None:
        await self.three_x("failed", f"{D32}:{D32}:1", status="failed")
        await self.three_x("deleted", f"{D32}:{D32}:1", status="deleted")
        for rid, why in (("failed", "ondemand_request_ttl '5'"),
                         ("deleted", "The request has been deleted")):
            answer = await self.client.get(f"/api/v3/ondemandvm/{rid}")
            self.assertEqual((answer.code, answer.body["ready"]), (200, False))
            self.assertIn(why, answer.body["message"])


class OutstandingBoundTests(OndemandApiCase):
    """Note [Outstanding on-demand requests]: refused with 429 and a
    message, storing nothing."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        await super().setUp()
        self.config = dataclasses.replace(self.config, service=dataclasses.replace(
            self.config.service, max_ondemand_requests_per_user=2, max_ondemand_requests=3))
        store = ApiStore(self.redis, reactor, timeout=0.5)
        self.addCleanup(store.stop)
        api = VmpoolerApi(self.config, store, reactor, StubDirectory(), random.Random(1))
        self.client = Client(api.resource())

    async def refused(self, rid: str, why: str) -> None:
        answer = await self.post({D32: 1, "request_id": rid})
        self.assertEqual(answer.code, 429, answer.body)
        self.assertIs(answer.body["ok"], False)
        self.assertIn(why, answer.body["message"])
        self.assertFalse(await self.redis.exists(f"vmpooler__odrequest__{rid}"))
        self.assertIsNone(await self.redis.zscore(QUEUE, rid))

    async def test_per_user_then_for_all(self) -> None:
        for rid in ("one", "two"):
            self.assertEqual((await self.post({D32: 1, "request_id": rid})).code, 201)
        await self.refused("three", "max_ondemand_requests_per_user")
        # An ended request is no longer outstanding.
        await self.client.delete("/api/v3/ondemandvm/one", headers=self.headers)
        self.assertEqual((await self.post({D32: 1, "request_id": "three"})).code, 201)
        # Another user's request (as 3.x's API writes one) counts for all.
        await self.redis.hset("vmpooler__odrequest__other", "requested", f"{D32}:{D32}:1")
        await self.redis.hset("vmpooler__odrequest__other", "token:user", "someone")
        await self.redis.zadd(QUEUE, 1, "other")
        await self.client.delete("/api/v3/ondemandvm/two", headers=self.headers)
        await self.redis.zadd("vmpooler__provisioning__processing", 2, "more")
        await self.redis.hset("vmpooler__odrequest__more", "requested", f"{D32}:{D32}:1")
        await self.refused("four", "max_ondemand_requests)")
