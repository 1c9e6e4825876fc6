"""
The daemon as vmfloaty, the command-line client most vmpooler users have,
speaks to it: over HTTP, with ``X-AUTH-TOKEN``, at an ``/api/v1`` or an
``/api/v3`` URL.  :func:`floaty_hostnames` is vmfloaty's reading of a
checkout's answer: every key but ``ok`` and ``domain`` is a pool, and its
hostnames get ``.<domain>`` appended when the answer has a ``domain`` (v1),
or are taken as they come (v3: FQDNs).

:class:`Floaty` emulates each of vmfloaty's commands (its ``lib/vmfloaty.rb``,
``pooler.rb``, ``auth.rb`` and ``utils.rb``): the requests each makes, and
what each reads from the answers, failing where vmfloaty would fail.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import treq
from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.site import ApiSite
from vmpoolerd.api.vms import hours
from vmpoolerd.store.api_store import ApiStore

from .fixtures import PASSWORD, USER, StubDirectory, fill_ready, make_config, sets_of
from .net import listen, port_of
from .redis_server import fresh_redis

D32, D64 = "debian-7-i386", "debian-7-x86_64"


def floaty_hostnames(body: dict[str, Any]) -> dict[str, list[str]]:
    """vmfloaty's ``standardize_hostnames``."""
    domain = body.get("domain")
    return {pool: [f"{host}.{domain}" if domain else host
                   for host in (value["hostname"] if isinstance(value["hostname"], list)
                                else [value["hostname"]])]
            for pool, value in body.items() if pool not in ("ok", "domain")}


class Floaty:
    """vmfloaty's commands against one service URL (``.../api/v1`` or ``.../api/v3``)."""

    def __init__(self, base: str, url: str, token: str | None = None) -> None:
        self.base = base  # the scheme and host: where a path with a leading "/" goes
        self.url = url
        self.token = token

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None,
                   auth: tuple[str, str] | None = None) -> tuple[int, Any]:
        """A request as vmfloaty's Faraday makes it: a path relative to the
        URL, except one with a leading "/", which replaces the URL's path."""
        where = self.base + path if path.startswith("/") else f"{self.url}/{path}"
        headers = Headers({"X-AUTH-TOKEN": [token]} if token else {})
        response = await treq.request(method, where, headers=headers, persistent=False,
                                      auth=auth, data=None if body is None
                                      else (body if isinstance(body, bytes)
                                            else json.dumps(body).encode()))
        return response.code, json.loads(await response.content())

    # --- Pooler -------------------------------------------------------------------

    async def list_pools(self, pattern: str | None = None) -> list[str]:
        """``list [pattern]``."""
        _, pools = await self.call("GET", "vm")
        return [p for p in pools if pattern is None or re.search(pattern, p)]

    async def list_active(self) -> list[str]:
        """``list --active``: the token's running VMs (Auth.token_status)."""
        status = await self.token_status()
        entry = status.get(self.token) if status else None
        return list(entry["vms"]["running"]) if entry and entry.get("vms") else []

    async def retrieve(self, os_types: dict[str, int]) -> dict[str, list[str]]:
        """``get centos=2 debian``: vm/<a+a+b>; raises as vmfloaty does."""
        names = "+".join(os for os, n in os_types.items() for _ in range(n))
        code, body = await self.call("POST", f"vm/{names}", token=self.token)
        if not body.get("ok"):
            raise AssertionError(f"HTTP {code}: failed to obtain VMs: {body}")
        return floaty_hostnames(body)

    async def query(self, hostname: str) -> Any:
        return (await self.call("GET", f"vm/{hostname}"))[1]

    async def modify(self, hostname: str, **changes: Any) -> Any:
        """``modify --lifetime/--tags/--disk``: vmfloaty's hash has symbol
        keys, so its ``modify_hash['disk']`` is never found and the disk
        goes into the PUT's body with the rest."""
        code, body = await self.call("PUT", f"vm/{hostname}", changes, token=self.token)
        if not body.get("ok"):
            raise ModifyError(code, body)
        return body

    async def disk(self, hostname: str, gb: int) -> Any:
        """Pooler.disk (what ``modify --disk`` means to call)."""
        return (await self.call("POST", f"vm/{hostname}/disk/{gb}", token=self.token))[1]

    async def delete(self, hosts: list[str]) -> dict[str, Any]:
        return {host: (await self.call("DELETE", f"vm/{host}", token=self.token))[1]
                for host in hosts}

    async def status(self) -> Any:
        return (await self.call("GET", "/status"))[1]

    async def summary(self) -> Any:
        return (await self.call("GET", "/summary"))[1]

    async def snapshot(self, hostname: str) -> Any:
        return (await self.call("POST", f"vm/{hostname}/snapshot", token=self.token))[1]

    async def revert(self, hostname: str, sha: str) -> Any:
        return (await self.call("POST", f"vm/{hostname}/snapshot/{sha}", token=self.token))[1]

    # --- Auth ---------------------------------------------------------------------

    async def get_token(self) -> str | None:
        _, body = await self.call("POST", "token", auth=(USER, PASSWORD))
        return body["token"] if body.get("ok") else None

    async def list_tokens(self) -> Any:
        _, body = await self.call("GET", "token", auth=(USER, PASSWORD))
        return body

    async def token_status(self) -> Any:
        _, body = await self.call("GET", f"token/{self.token}")
        return body if body.get("ok") else None

    async def delete_token(self, token: str) -> Any:
        _, body = await self.call("DELETE", f"token/{token}", auth=(USER, PASSWORD))
        return body if body.get("ok") else None

    # --- Utils: what the commands print ---------------------------------------------

    async def pretty_print_hosts(self, hostnames: list[str]) -> list[str]:
        """``list --active``'s lines: each VM looked up by the name listed."""
        lines = []
        for hostname in hostnames:
            host_data = (await self.query(hostname))[hostname]  # vmfloaty: nil[] fails
            tags = [f"{k}: {v}" for k, v in (host_data.get("tags") or {}).items()]
            duration = f"{host_data['running']}/{host_data['lifetime']} hours"
            lines.append(f"- {hostname}.{host_data.get('domain') or ''} "
                         f"({', '.join([host_data['template'], duration, *tags])})")
        return lines

    async def pretty_print_status(self) -> list[str]:
        answer = await self.status()
        lines = []
        for name, pool in answer["pools"].items():
            missing = pool["max"] - pool["ready"] - pool["pending"]
            lines.append(f"{name} {'o' * pool['ready']}{'o' * pool['pending']}{'o' * missing}")
        lines.append(answer["status"]["message"] + ("" if answer["status"]["ok"] else " (!)"))
        return lines


class ModifyError(Exception):
    pass


class FloatyCase(TestCase):
    """The API listening on a port, with auth; D32 and D64 have 6 ready VMs."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)
        self.config = make_config(auth={"host": "127.0.0.1", "base": ["dc=example,dc=com"]})
        api = VmpoolerApi(self.config, ApiStore(self.redis, reactor), reactor, StubDirectory(),
                          random.Random(1))
        port = listen(ApiSite(api.resource(), reactor))
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port_of(port)}"
        for pool in (D32, D64):
            await fill_ready(self.redis, pool, 6)

    async def floaty(self, method: str, url: str, body: Any = None,
                     token: str | None = None) -> tuple[int, Any]:
        headers = Headers({"X-AUTH-TOKEN": [token]} if token else {})
        response = await treq.request(method, url, headers=headers, persistent=False,
                                      data=None if body is None else json.dumps(body).encode())
        return response.code, json.loads(await response.content())



class VmfloatyTests(FloatyCase):
    async def test_get_modify_query_delete_on_v1_and_v3_urls(self) -> None:
        response = await treq.post(f"{self.base}/api/v1/token", auth=(USER, PASSWORD),
                                   persistent=False)
        token = json.loads(await response.content())["token"]
        handed: list[str] = []
        for url in (f"{self.base}/api/v1", f"{self.base}/api/v3"):
            code, body = await self.floaty("POST", f"{url}/vm/{D32}+{D32}+{D64}", token=token)
            self.assertEqual(code, 200, body)
            hosts = floaty_hostnames(body)
            self.assertEqual({pool: len(names) for pool, names in hosts.items()},
                             {D32: 2, D64: 1})
            for name in (n for names in hosts.values() for n in names):
                self.assertTrue(name.endswith(".example.com"), name)  # alike in both
                handed.append(name)
                code, _ = await self.floaty("PUT", f"{url}/vm/{name}", {"lifetime": 2},
                                            token=token)
                self.assertEqual(code, 200)
                code, info = await self.floaty("GET", f"{url}/vm/{name}", token=token)
                short = name.split(".", 1)[0]
                self.assertEqual((code, info[short]["lifetime"], info[short]["state"]),
                                 (200, 2, "running"))
                fields = await self.redis.hgetall(f"vmpooler__vm__{short}")
                self.assertEqual((fields["token:token"], fields["token:user"]), (token, "jdoe"))
        self.assertEqual(len(handed), len(set(handed)))  # nothing handed out twice
        for name in handed[:3]:
            self.assertEqual((await self.floaty("DELETE", f"{self.base}/api/v3/vm/{name}",
                                                token=token))[0], 200)
        for name in handed[3:]:
            self.assertEqual((await self.floaty("DELETE", f"{self.base}/api/v1/vm/{name}",
                                                token=token))[0], 200)
        sets = await sets_of(self.redis, self.config)
        completed = sets[f"vmpooler__completed__{D32}"] | sets[f"vmpooler__completed__{D64}"]
        self.assertEqual(completed, {name.split(".", 1)[0] for name in handed})

    async def test_a_checkout_without_a_valid_token_is_refused_at_either_url(self) -> None:
        for url in (f"{self.base}/api/v1", f"{self.base}/api/v3"):
            code, body = await self.floaty("POST", f"{url}/vm/{D32}", token="nosuchtoken")
            self.assertEqual((code, body["ok"]), (401, False))


class CommandTests(FloatyCase):
    """Every vmfloaty command, at an /api/v3 URL and at an /api/v1 one."""

    async def test_every_command(self) -> None:
        for version in ("v3", "v1"):
            await self.commands(Floaty(self.base, f"{self.base}/api/{version}"), version)

    async def commands(self, floaty: Floaty, version: str) -> None:
        self.assertEqual(await floaty.list_pools(), list(self.config.pool_names))
        self.assertEqual(await floaty.list_pools("i386"), [D32])
        # token get, status, list
        floaty.token = await floaty.get_token()
        self.assertIsNotNone(floaty.token)
        assert floaty.token is not None
        self.assertIn(floaty.token, await floaty.list_tokens())
        self.assertEqual(await floaty.list_active(), [])
        # get
        got = await floaty.retrieve({D32: 2, D64: 1})
        fqdns = [name for names in got.values() for name in names]
        self.assertTrue(all(n.endswith(".example.com") for n in fqdns), fqdns)
        shorts = sorted(n.partition(".")[0] for n in fqdns)
        # list --active: each VM looked up by the name the token lists
        active = await floaty.list_active()
        self.assertEqual(sorted(active), shorts)
        lines = await floaty.pretty_print_hosts(active)
        self.assertEqual(len(lines), 3)
        lifetime = hours(self.config.service.vm_lifetime_auth_hours)
        self.assertTrue(all(f"/{lifetime} hours" in line for line in lines), lines)
        # query (by the FQDN get printed)
        info = await floaty.query(fqdns[0])
        self.assertEqual(info[fqdns[0].partition(".")[0]]["state"], "running")
        # modify: lifetime and tags, then disk
        host = shorts[0]
        self.assertTrue((await floaty.modify(host, lifetime=3, tags={"ci": "x"}))["ok"])
        self.assertEqual((await floaty.query(host))[host]["tags"], {"ci": "x"})
        self.assertEqual((await floaty.query(host))[host]["lifetime"], 3)
        with self.assertRaises(ModifyError) as refused:  # as against vmpooler 3.x
            await floaty.modify(host, disk=8)
        code, body = refused.exception.args
        self.assertEqual((code, body["ok"]), (400, False))
        if version == "v3":
            self.assertIsInstance(body["failure"], list)
        self.assertEqual(await floaty.disk(host, 8), {"ok": True, host: {"disk": "+8gb"}})
        # snapshot, then revert once the manager has taken it
        answer = await floaty.snapshot(host)
        sha = answer[host]["snapshot"]
        self.assertIs((await floaty.revert(host, sha))["ok"], False)  # not taken yet
        await self.redis.hset(f"vmpooler__vm__{host}", f"snapshot:{sha}", "now")
        self.assertTrue((await floaty.revert(host, sha))["ok"])
        # status and summary (vmfloaty asks the root: "/status", "/summary")
        lines = await floaty.pretty_print_status()
        self.assertEqual(len(lines), len(self.config.pool_names) + 1)
        summary = await floaty.summary()
        self.assertIn("daily", summary)
        # delete one by its FQDN, then delete --all
        self.assertTrue((await floaty.delete([fqdns[-1]]))[fqdns[-1]]["ok"])
        rest = await floaty.list_active()
        self.assertEqual(len(rest), 2)
        await floaty.pretty_print_hosts(rest)
        results = await floaty.delete(rest)
        self.assertTrue(all(r["ok"] for r in results.values()), results)
        self.assertEqual(await floaty.list_active(), [])
        # token delete
        self.assertIsNotNone(await floaty.delete_token(floaty.token))
        self.assertIsNone(await floaty.token_status())

