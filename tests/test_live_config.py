"""
The config API and pool reset through the API, on a real Redis: vmpooler
3.x's keys and answers, bad input refused whole, the gate and the token.
(What the manager makes of the overrides: test_live_pools.)
"""

from __future__ import annotations

import random
from typing import Any

import yaml
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.auth import LdapAuthenticator
from vmpoolerd.api.config_routes import template_allowed
from vmpoolerd.config import Config, parse_config
from vmpoolerd.manager.failures import public
from vmpoolerd.store.api_store import ApiStore

from .api_case import C7, D32, D64, ApiCase
from .fixtures import PASSWORD, USER, StubDirectory, config_text, fill_ready, make_config
from .http import Client
from .ldap_server import ADMINS, GROUPS, PEOPLE, STAFF, USERS as LDAP_USERS, ldap_server
from .redis_server import fresh_redis, private_redis

# What a v3 DELETE of an override says (the overrides test_deleting_an_override makes).
BEFORE: dict[str, dict[str, Any]] = {
    "poolsize": {"pool_size_before_reset": 3, "pool_size_before_overrides": 5},
    "pooltemplate": {"template_before_reset": "Templates/x",
                     "template_before_overrides": "Templates/d32"}}
FAULTS = {"poolsize": "not_configured", "pooltemplate": "bad_templates",
          "clonetarget": "bad_templates"}
SIZES, TEMPLATES = "vmpooler__config__poolsize", "vmpooler__config__template"
TARGETS = "vmpooler__config__clone_target"
UNDO_SIZE, UNDO_TEMPLATE = ("vmpooler__pool__undo_size_override",
                            "vmpooler__pool__undo_template_override")
# The routes that change the live config (GET /config only reads: open under v3).
ROUTES = [("POST", "/config/poolsize"),
          ("DELETE", f"/config/poolsize/{D32}"), ("POST", "/config/pooltemplate"),
          ("DELETE", f"/config/pooltemplate/{D32}"), ("POST", "/config/clonetarget"),
          ("POST", "/poolreset")]


class ConfigApiTests(ApiCase):
    service = {"experimental_features": True}

    async def overrides(self) -> dict[str, Any]:
        return {key: await self.redis.hgetall(key) for key in (SIZES, TEMPLATES, TARGETS)}

    async def test_get_config_shows_live_values(self) -> None:
        answer = await self.client.get("/api/v3/config")
        self.assertEqual(answer.code, 200, answer.body)
        self.assertEqual(answer.body["status"], {"ok": True})
        pools = {p["name"]: p for p in answer.body["pool_configuration"]}
        self.assertEqual(set(pools), {D32, D64, C7})
        self.assertEqual((pools[D32]["size"], pools[D32]["template"]), (5, "Templates/d32"))
        self.assertNotIn("size_before_overrides", pools[D32])
        await self.client.post("/api/v3/config/poolsize", {D32: "2"})
        await self.client.post("/api/v3/config/pooltemplate", {D32: "Templates/new"})
        await self.client.post("/api/v3/config/clonetarget", {D32: "cluster2"})
        pools = {p["name"]: p for p in (await self.client.get("/config")).body[
            "pool_configuration"]}
        self.assertEqual({k: pools[D32][k] for k in (
            "size", "size_before_overrides", "template", "template_before_overrides",
            "clone_target")}, {"size": 2, "size_before_overrides": 5,
                               "template": "Templates/new",
                               "template_before_overrides": "Templates/d32",
                               "clone_target": "cluster2"})

    async def test_poolsize_201_when_changed_200_when_not(self) -> None:
        answer = await self.client.post("/api/v3/config/poolsize", {D32: "3", C7: 0})
        self.assertEqual((answer.code, answer.body), (201, {"ok": True}))
        self.assertEqual((await self.overrides())[SIZES], {D32: "3", C7: "0"})
        self.assertEqual((await self.client.post("/api/v3/config/poolsize", {D32: 3})).code, 200)
        # The file's size, not overridden: nothing changes.
        self.assertEqual((await self.client.post("/api/v1/config/poolsize", {D64: "5"})).code,
                         200)

    async def test_deleting_an_override(self) -> None:
        await self.client.post("/api/v3/config/poolsize", {D32: "3"})
        await self.client.post("/api/v3/config/pooltemplate", {D32: "Templates/x"})
        for route, undo in (("poolsize", UNDO_SIZE), ("pooltemplate", UNDO_TEMPLATE)):
            answer = await self.client.delete(f"/api/v3/config/{route}/{D32}")
            self.assertEqual((answer.code, answer.body), (201, {"ok": True, **BEFORE[route]}))
            self.assertEqual(await self.redis.smembers(undo), {D32})
            # v1 answers as it did; nothing left to delete: 200.
            answer = await self.client.delete(f"/api/v1/config/{route}/{D32}")
            self.assertEqual((answer.code, answer.body), (200, {"ok": True}))
            self.assert_error(await self.client.delete(f"/api/v3/config/{route}/nope"), 404)
        self.assertEqual(await self.overrides(), {SIZES: {}, TEMPLATES: {}, TARGETS: {}})

    async def test_bad_input_changes_nothing(self) -> None:
        for route, body, code in [
            ("poolsize", {D32: "3", "nope": "1"}, 400),
            ("poolsize", {D32: "-1"}, 400), ("poolsize", {D32: "x"}, 400),
            ("poolsize", {D32: 1.5}, 400), ("poolsize", {D32: True}, 400),
            ("poolsize", {D32: 10_001}, 400), ("poolsize", {D32: 2, C7: None}, 400),
            ("poolsize", {}, 400), ("poolsize", [D32], 400), ("poolsize", "3", 400),
            ("pooltemplate", {D32: ""}, 400), ("pooltemplate", {D32: "a\nb"}, 400),
            ("pooltemplate", {D32: "x" * 256}, 400), ("pooltemplate", {D32: 7}, 400),
            ("pooltemplate", {D32: "notemplate"}, 400), ("pooltemplate", {D32: "a/"}, 400),
            ("clonetarget", {D32: " "}, 400), ("clonetarget", {"nope": "c"}, 400),
        ]:
            answer = await self.client.post(f"/api/v3/config/{route}", body)
            self.assert_error(answer, code)
            if isinstance(body, dict) and body:  # vmpooler 3.x's list of the pools at fault
                self.assertIsInstance(answer.body[FAULTS[route]], list, answer.body)
        answer = await self.client.post("/api/v3/config/poolsize", {D32: "x", "nope": "1"})
        self.assertEqual(answer.body["not_configured"], ["nope"])
        answer = await self.client.post("/api/v3/config/poolsize", {D32: "x", C7: "2"})
        self.assertEqual(answer.body["not_configured"], [D32])
        answer = await self.client.post("/api/v3/config/poolsize", b"{not json")
        self.assert_error(answer, 400)
        self.assertEqual(answer.body["message"], "JSON payload could not be parsed")
        answer = await self.client.post("/api/v3/poolreset", {D32: "1", "x": "1"})
        self.assert_error(answer, 400)
        self.assertEqual(answer.body["bad_pools"], ["x"])
        # v1: as before, 404 for an unknown pool, and no 3.x keys.
        answer = await self.client.post("/api/v1/poolreset", {D32: "1", "x": "1"})
        self.assertEqual((answer.code, set(answer.body)), (404, {"ok", "error"}))
        answer = await self.client.post("/api/v1/config/poolsize", {D32: "x"})
        self.assertEqual((answer.code, set(answer.body)), (400, {"ok", "error"}))
        self.assertEqual(await self.overrides(), {SIZES: {}, TEMPLATES: {}, TARGETS: {}})
        self.assertEqual(await self.redis.smembers("vmpooler__poolreset"), set())

    async def test_pool_reset_is_asked_for(self) -> None:
        answer = await self.client.post("/api/v3/poolreset", {D32: "1", C7: "1"})
        self.assertEqual((answer.code, answer.body), (201, {"ok": True}))
        self.assertEqual(await self.redis.smembers("vmpooler__poolreset"), {D32, C7})

    async def test_status_and_poolstat_show_the_live_size(self) -> None:
        await self.client.post("/api/v3/config/poolsize", {D32: "2"})
        status = (await self.client.get("/api/v3/status")).body
        self.assertEqual(status["pools"][D32]["max"], 2)
        poolstat = (await self.client.get(f"/api/v3/poolstat?pool={D32}")).body
        self.assertEqual(poolstat["pools"][D32]["max"], 2)


    async def test_v3_config_shows_whether_a_template_is_ready(self) -> None:
        # What a vmpooler 3.x manager sharing the Redis prepared.
        await self.redis.hset("vmpooler__template__prepared", D32, "Templates/d32")
        await self.redis.hset("vmpooler__template__prepared", D64, "Templates/older")
        pools = {p["name"]: p for p in (await self.client.get("/api/v3/config")).body[
            "pool_configuration"]}
        self.assertEqual({name: p["template_ready"] for name, p in pools.items()},
                         {D32: True, D64: False, C7: True})
        v1 = (await self.client.get("/api/v1/config")).body["pool_configuration"]
        self.assertNotIn("template_ready", v1[0])


class GateTests(ApiCase):
    async def test_405_unless_experimental_features(self) -> None:
        for method, path in [("GET", "/config"), *ROUTES]:
            answer = await self.client.request(method, f"/api/v1{path}", {D32: "1"})
            self.assert_error(answer, 405)
            self.assertIn("experimental_features", answer.body["error"])
        for method, path in ROUTES:
            answer = await self.client.request(method, f"/api/v3{path}", {D32: "1"})
            self.assert_error(answer, 405)
        self.assertEqual(await self.redis.keys("vmpooler__config__*"), [])

    async def test_v3_get_config_is_open(self) -> None:
        answer = await self.client.get("/api/v3/config")
        self.assertEqual((answer.code, answer.body["status"]), (200, {"ok": True}))


class TokenTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        server, self.redis = await private_redis(self, 0.5)
        self.server = server
        config = make_config(auth={"host": "127.0.0.1", "base": ["dc=example,dc=com"]},
                             experimental_features=True)
        self.store = ApiStore(self.redis, reactor, timeout=0.5)
        self.addCleanup(self.store.stop)
        api = VmpoolerApi(config, self.store, reactor, StubDirectory(), random.Random(1))
        self.client = Client(api.resource())

    async def test_a_token_is_required(self) -> None:
        for method, path in ROUTES:
            answer = await self.client.request(method, f"/api/v3{path}", {D32: "1"})
            self.assertEqual(answer.code, 401, (method, path))
        self.assertEqual((await self.client.get("/api/v1/config")).code, 401)
        self.assertEqual((await self.client.get("/api/v3/config")).code, 200)
        self.assertEqual(await self.redis.keys("vmpooler__config__*"), [])
        token = (await self.client.post("/api/v3/token", auth=(USER, PASSWORD))).body["token"]
        answer = await self.client.post("/api/v3/config/poolsize", {D32: "1"},
                                        headers={"X-AUTH-TOKEN": token})
        self.assertEqual(answer.code, 201, answer.body)

    async def test_redis_down_is_503(self) -> None:
        token = (await self.client.post("/api/v3/token", auth=(USER, PASSWORD))).body["token"]
        self.server.stop()
        answer = await self.client.post("/api/v3/config/poolsize", {D32: "1"},
                                        headers={"X-AUTH-TOKEN": token})
        self.assertEqual(answer.code, 503)
        self.assertIs(answer.body["ok"], False)


def admin_config(administrators: list[str] | None = None, groups: list[str] | None = None,
                 **service: Any) -> Config:
    """The test directory (slapd) for auth, naming the administrators given."""
    raw = yaml.safe_load(config_text(
        auth={"host": "127.0.0.1", "port": ldap_server().port, "base": [PEOPLE, STAFF],
              "user_object": ["uid", "cn"], "encryption": "none"},
        experimental_features=True, **service))
    if administrators is not None:
        raw[":auth"]["administrators"] = administrators
    if groups is not None:
        raw[":auth"]["administrator_groups"] = groups
    return parse_config(yaml.safe_dump(raw), {})


JDOE = (LDAP_USERS["jdoe"].name, LDAP_USERS["jdoe"].password)
ANN = (LDAP_USERS["ann"].name, LDAP_USERS["ann"].password)
OBRIEN = (LDAP_USERS["obrien"].name, LDAP_USERS["obrien"].password)


class AdministratorTests(TestCase):
    """Note [Administrators] in vmpoolerd/api/admins.py, against slapd: Ann
    is in the test directory's administrators' group, jdoe is not."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.store = ApiStore(self.redis, reactor)
        await fill_ready(self.redis, D32, 3)

    def client(self, config: Config) -> Client:
        assert config.auth is not None
        auth = LdapAuthenticator(config.auth, reactor, timeout=5)
        return Client(VmpoolerApi(config, self.store, reactor, auth, random.Random(1))
                      .resource())

    async def token(self, client: Client, who: tuple[str, str]) -> dict[str, str]:
        answer = await client.post("/api/v3/token", auth=who)
        self.assertEqual(answer.code, 200, answer.body)
        return {"X-AUTH-TOKEN": answer.body["token"]}

    async def test_only_administrators_change_the_config(self) -> None:
        client = self.client(admin_config(groups=[ADMINS]))
        jdoe, ann = await self.token(client, JDOE), await self.token(client, ANN)
        for method, path in ROUTES:
            answer = await client.request(method, f"/api/v3{path}", {D32: "1"}, headers=jdoe)
            self.assertEqual(answer.code, 403, (method, path, answer.body))
        self.assertEqual(await self.redis.keys("vmpooler__config__*"), [])
        self.assertEqual(await self.redis.keys("vmpooler__poolreset*"), [])
        self.assertEqual((await client.get("/api/v1/config", headers=jdoe)).code, 200)
        answer = await client.post("/api/v3/config/poolsize", {D32: "1"}, headers=ann)
        self.assertEqual(answer.code, 201, answer.body)
        self.assertEqual((await client.post("/api/v3/poolreset", {D32: "1"},
                                            headers=ann)).code, 201)

    async def test_administrators_named_by_name_or_dn(self) -> None:
        client = self.client(admin_config(administrators=["JDOE", LDAP_USERS["obrien"].dn]))
        for who, code in ((JDOE, 201), (OBRIEN, 201), (ANN, 403)):
            answer = await client.post("/api/v3/config/poolsize", {D32: "2"},
                                       headers=await self.token(client, who))
            self.assertIn(answer.code, (code, 200) if code == 201 else (code,), who)

    async def test_without_administrators_any_token_may(self) -> None:
        client = self.client(admin_config())
        answer = await client.post("/api/v3/config/poolsize", {D32: "1"},
                                   headers=await self.token(client, JDOE))
        self.assertEqual(answer.code, 201, answer.body)

    async def test_an_administrator_acts_on_any_vm(self) -> None:
        client = self.client(admin_config(groups=[ADMINS]))
        jdoe = await self.token(client, JDOE)
        host = (await client.post(f"/api/v1/vm/{D32}", headers=jdoe)).body[D32]["hostname"]
        obrien, ann = await self.token(client, OBRIEN), await self.token(client, ANN)
        self.assertNotEqual((await client.put(f"/api/v1/vm/{host}", {"lifetime": 2},
                                              headers=obrien)).code, 200)
        self.assertEqual((await client.put(f"/api/v1/vm/{host}", {"lifetime": 2},
                                           headers=ann)).code, 200)
        self.assertEqual((await client.delete(f"/api/v1/vm/{host}", headers=ann)).code, 200)
        self.assertEqual(await self.redis.smembers(f"vmpooler__running__{D32}"), set())

    async def test_only_an_administrator_reads_a_failure_whole(self) -> None:
        client = self.client(admin_config(groups=[ADMINS]))
        await self.redis.hmset("vmpooler__vm__gone1", {
            "template": D32, "failure_kind": "clone", "failed": "2026-01-01 00:00:00 +0000",
            "failure": "clone failed: vCenter vc1.internal: Templates/d32 not found"})
        for who, reason in ((None, public("clone")), (JDOE, public("clone")),
                            (ANN, "clone failed: vCenter vc1.internal: Templates/d32 "
                                  "not found")):
            headers = await self.token(client, who) if who else {}
            answer = await client.get("/api/v3/vm/gone1", headers=headers)
            self.assertEqual(answer.body["gone1"]["failure"]["reason"], reason, who)

    async def test_a_missing_group_names_nobody(self) -> None:
        client = self.client(admin_config(groups=["cn=nobody," + GROUPS]))
        answer = await client.post("/api/v3/config/poolsize", {D32: "1"},
                                   headers=await self.token(client, ANN))
        self.assertEqual(answer.code, 403)


class TemplateFolderTests(ApiCase):
    """Note [Template overrides] in vmpoolerd/api/config_routes.py."""

    service = {"experimental_features": True, "template_folders": ["Templates/"]}

    async def test_a_template_outside_the_folders_is_refused(self) -> None:
        for template in ("Production/db1", "Templates/../Production/db1", "TemplatesX/a"):
            answer = await self.client.post("/api/v3/config/pooltemplate", {D32: template})
            self.assertEqual(answer.code, 400, template)
            self.assertEqual(answer.body["bad_templates"], [D32])
        self.assertEqual(await self.redis.keys("vmpooler__config__*"), [])
        answer = await self.client.post("/api/v3/config/pooltemplate",
                                        {D32: "Templates/linux/new"})
        self.assertEqual(answer.code, 201, answer.body)

    def test_a_pools_own_folders_come_first(self) -> None:
        raw = yaml.safe_load(config_text(template_folders=["Templates"]))
        raw[":pools"][0]["template_folders"] = ["Golden"]
        config = parse_config(yaml.safe_dump(raw), {})
        self.assertEqual(config.template_folders(D32), ("Golden",))
        self.assertEqual(config.template_folders(D64), ("Templates",))
        self.assertTrue(template_allowed("Golden/a", ("Golden",)))
        self.assertFalse(template_allowed("Golden/./a", ("Golden",)))
        self.assertTrue(template_allowed("Anywhere/a", ()))
