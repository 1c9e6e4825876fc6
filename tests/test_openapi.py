"""
The OpenAPI document of the API (``vmpoolerd/api/openapi.json``), every
generation in one: valid, in step with the Klein routes, and true of the
running daemon (schemathesis, against ``/api/v1`` and ``/api/v3``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from importlib import resources
from typing import Any
from unittest.mock import Mock

import treq
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.config import RedisConfig
from vmpoolerd.store.api_store import ApiStore
from vmpoolerd.store.connection import connect
from vmpoolerd.timefmt import format_time, local_date
from vmpoolerd.api.site import ApiSite

from .fixtures import PASSWORD, USER, StubDirectory, make_config
from .net import listen, port_of
from .processes import free_port
from .redis_server import fresh_redis

SCHEMATHESIS = os.path.join(os.path.dirname(sys.executable), "schemathesis")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Routes of the app that are no part of API v1 (JSON): the browser's redirect,
# the dashboard's files and Prometheus' text exposition.
NOT_API = {"/", "/dashboard", "/dashboard/{}", "/metrics"}
# What schemathesis checks of every answer.
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance")
MAX_EXAMPLES = int(os.environ.get("VMPOOLERD_SCHEMATHESIS_EXAMPLES", "20"))
SEED = os.environ.get("VMPOOLERD_SCHEMATHESIS_SEED", "20161227")
HEADER_TOKEN = "0" * 32  # the X-AUTH-TOKEN of every request, USER's
# Any 5xx fails, so the pools must not run dry: a checkout takes at most
# MAX_REQUEST_VMS, and a run makes about 40 requests per example.
MAX_REQUEST_VMS = 10
READY = max(10_000, MAX_EXAMPLES * 40 * MAX_REQUEST_VMS)
FILL = """
for i = 1, tonumber(ARGV[3]) do
  local host = ARGV[2] .. string.format('%06d', i)
  redis.call('HSET', 'vmpooler__vm__' .. host, 'template', ARGV[1])
  redis.call('SADD', 'vmpooler__ready__' .. ARGV[1], host)
end
return redis.call('SCARD', 'vmpooler__ready__' .. ARGV[1])
"""


def missing(what: str) -> Exception:
    """A skip, except in CI, where a missing test dependency is a failure."""
    message = f"{what} is not installed (pip install -e '.[test]')"
    return AssertionError(message) if os.environ.get("CI") else SkipTest(message)


def document() -> dict[str, Any]:
    return json.loads(resources.files("vmpoolerd.api").joinpath("openapi.json").read_text())


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """``(path, METHOD)`` with each path parameter written ``{}``."""
    return {(re.sub(r"\{[^}/]+\}", "{}", path), method.upper())
            for path, item in doc["paths"].items() for method in item if method in METHODS}


def rules() -> list[Any]:
    """The API's Klein routes."""
    api = VmpoolerApi(make_config(), ApiStore(Mock(), reactor), reactor)
    return list(api.app.url_map.iter_rules())


def routed_operations() -> set[tuple[str, str]]:
    """The same for the Klein routes; HEAD is GET without a body, not a route of its own."""
    found = set()
    for rule in rules():
        path = re.sub(r"<[^>]+>", "{}", rule.rule)
        if path in NOT_API:
            continue
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                found.add((path, method))
    return found


class DocumentTests(SynchronousTestCase):
    def test_is_valid_openapi_3(self) -> None:
        try:
            from openapi_spec_validator import validate
        except ImportError:
            raise missing("openapi-spec-validator") from None
        doc = document()
        self.assertTrue(doc["openapi"].startswith("3.0."))
        validate(doc)
        self.assertEqual([s["url"] for s in doc["servers"]], ["/api/v1", "/api/v3", "/api/v2"])

    def test_every_route_is_documented_and_nothing_else(self) -> None:
        documented, routed = documented_operations(document()), routed_operations()
        self.assertEqual(sorted(routed - documented), [], "routes missing from the document")
        self.assertEqual(sorted(documented - routed), [], "documented routes the app lacks")

    def test_the_left_out_routes_exist(self) -> None:
        # If one goes, NOT_API should lose it rather than hide a new route.
        routed = {re.sub(r"<[^>]+>", "{}", r.rule) for r in rules()}
        self.assertLessEqual(NOT_API, routed)

    def test_every_answer_is_json_and_errors_are_the_error_schema(self) -> None:
        doc = document()
        for path, item in doc["paths"].items():
            for method, operation in item.items():
                if method not in METHODS:
                    continue
                for code, answer in operation["responses"].items():
                    if "$ref" in answer:
                        answer = doc["components"]["responses"][answer["$ref"].split("/")[-1]]
                    where = f"{method.upper()} {path} {code}"
                    self.assertEqual(list(answer["content"]), ["application/json"], where)
                    if not code.startswith("2"):
                        schema = answer["content"]["application/json"]["schema"]
                        error = {"$ref": "#/components/schemas/Error"}
                        if schema != error:
                            schema = doc["components"]["schemas"][schema["$ref"].split("/")[-1]]
                            self.assertEqual(schema["allOf"], [error], where)


class SchemathesisTests(TestCase):
    """
    schemathesis against a daemon listening on 127.0.0.1, pools full, with
    the document's examples in Redis (so that they find a VM, a snapshot, a
    token); it fails on any 5xx and any answer the document does not allow.
    """

    timeout = 240

    def setUp(self) -> None:
        if not os.path.exists(SCHEMATHESIS):
            raise missing("schemathesis")
        self.config = make_config(max_request_vms=MAX_REQUEST_VMS)

    def listen(self, store: ApiStore, auth: bool) -> str:
        """
        The API on the daemon's own site (its body limit, its idle sweep), on
        a free port of 127.0.0.1.
        """
        api = VmpoolerApi(self.config, store, reactor, StubDirectory() if auth else None,
                          health={"redis": store.ping})
        port = listen(ApiSite(api.resource(), reactor))
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port_of(port)}"

    async def serve(self, auth: bool) -> str:
        """The API on a Redis with full pools and the document's examples."""
        redis = await fresh_redis(self)
        base = self.listen(ApiStore(redis, reactor), auth)
        for i, pool in enumerate(self.config.pool_names):
            self.assertEqual(await redis.eval(FILL, [], [pool, f"ready{i}x", str(READY)]), READY)
        await self.seed_examples(redis, self.config.pool_names[0])
        return base

    async def seed_examples(self, redis: Any, pool: str) -> None:
        """
        Redis holds what the document's examples name: a running VM of the
        caller's with a snapshot, one of another user's, both users' tokens;
        and today's history.
        """
        doc = document()
        hosts = doc["components"]["parameters"]["hostname"]["examples"]
        self.assertEqual(doc["paths"]["/vm/{name}"]["get"]["parameters"][0]["examples"], hosts)
        tokens = doc["components"]["parameters"]["token"]["examples"]
        revert = doc["paths"]["/vm/{hostname}/snapshot/{snapshot}"]["post"]["parameters"]
        snapshot = revert[1]["example"]
        now = time.time()
        stamp, today = format_time(now - 3600), local_date(now).isoformat()
        for host, token, user in ((hosts["checked_out"]["value"], tokens["mine"]["value"], USER),
                                  (hosts["another_users"]["value"],
                                   tokens["another_users"]["value"], "ann")):
            await redis.hmset(f"vmpooler__vm__{host}", {
                "template": pool, "checkout": stamp, "lifetime": "12", "tag:user": user,
                f"snapshot:{snapshot}": stamp, "disk": "+8gb", "token:token": token,
                "token:user": user})
            await redis.sadd(f"vmpooler__running__{pool}", host)
            await redis.hset(f"vmpooler__active__{pool}", host, stamp)
            await redis.hmset(f"vmpooler__token__{token}", {"user": user, "created": stamp})
            await redis.hset(f"vmpooler__clone__{today}", f"{pool}:{host}", "12.5")
            await redis.hset(f"vmpooler__boot__{today}", f"{pool}:{host}", "31.25")
            await redis.hset(f"vmpooler__tag__{today}", f"{host}:user", user)
        await redis.hmset(f"vmpooler__token__{HEADER_TOKEN}", {"user": USER, "created": stamp})
        await redis.hset("vmpooler__lastboot", pool, stamp)

    async def schemathesis(self, base: str, *args: str, checks: tuple[str, ...] = CHECKS,
                           max_examples: int = MAX_EXAMPLES, prefix: str = "/api/v1") -> str:
        """Runs schemathesis on ``base``; its output, and fails the test if it failed."""
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        config = os.path.join(workdir, "schemathesis.toml")
        with open(config, "w") as f:
            f.write("# this run's settings are on the command line\n")
        # Only 127.0.0.1: no proxy, no report, no example database.
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(NO_PROXY="*", no_proxy="*", SCHEMATHESIS_TELEMETRY="false",
                   NO_COLOR="1", COLUMNS="120")
        schema = str(resources.files("vmpoolerd.api").joinpath("openapi.json"))
        argv = ["--config-file", config, "run", schema,
                "--url", f"{base}{prefix}", "--checks", ",".join(checks),
                "--max-examples", str(max_examples), "--seed", SEED,
                "--generation-database", "none", "--max-redirects", "0",
                "--request-timeout", "10", "--workers", "1", "--no-color", *args]
        started = time.monotonic()
        out, err, code = await getProcessOutputAndValue(
            SCHEMATHESIS, argv, env=env, path=workdir, reactor=reactor)
        output = (out + err).decode("utf-8", "replace")
        with open(os.path.join(workdir, "output.txt"), "w") as f:
            f.write(output)
        self.assertEqual(code, 0, f"schemathesis failed ({time.monotonic() - started:.1f} s):"
                                  f"\n{output}")
        # Every operation of the document was tried.
        operations = len(documented_operations(document()))
        self.assertIn(f"Tested: {operations}\n", output)
        return output

    async def test_document_is_served(self) -> None:
        base = await self.serve(auth=False)
        response = await treq.get(f"{base}/api/v1/openapi.json", persistent=False)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(json.loads(await response.content()), document())

    async def test_without_auth(self) -> None:
        # vmpooler's default: no :auth:, /token routes are 404.
        await self.schemathesis(await self.serve(auth=False))

    async def test_with_auth(self) -> None:
        # Every request has USER's credentials and token; the examples name
        # another user's VM and token too.
        await self.schemathesis(await self.serve(auth=True), "--auth", f"{USER}:{PASSWORD}",
                                "--header", f"X-AUTH-TOKEN: {HEADER_TOKEN}")

    async def test_v3_with_auth(self) -> None:
        # The same document holds of v3's answers.
        await self.schemathesis(await self.serve(auth=True), "--auth", f"{USER}:{PASSWORD}",
                                "--header", f"X-AUTH-TOKEN: {HEADER_TOKEN}", prefix="/api/v3")

    async def test_redis_down(self) -> None:
        # Nothing listens where this store looks for Redis: every route that
        # needs Redis answers 503, and the document says so (the one run
        # where a 5xx is right).
        redis = connect(RedisConfig(server="127.0.0.1", port=free_port()), 0.1)
        self.addCleanup(redis.disconnect)
        store = ApiStore(redis, reactor, timeout=0.1)
        self.addCleanup(store.stop)
        base = self.listen(store, auth=True)
        await self.schemathesis(base, "--auth", f"{USER}:{PASSWORD}",
                                "--header", f"X-AUTH-TOKEN: {HEADER_TOKEN}",
                                "--phases", "examples,fuzzing", checks=CHECKS[1:], max_examples=3)
