"""Tokens and the auth rules of the API, against a real slapd and Redis."""

from __future__ import annotations

import random
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.web.client import Agent
from twisted.internet.task import Clock

from vmpoolerd.api.app import VmpoolerApi
from vmpoolerd.api.auth import LdapAuthenticator
from vmpoolerd.api.site import ApiSite
from vmpoolerd.api.throttle import PER_PAIR, PER_USER, WINDOW, PasswordThrottle
from vmpoolerd.store.ratelimit import PasswordLimits, RateLimitStore

from vmpoolerd.timefmt import format_time

from .api_case import D32, T0, ApiCase
from .fixtures import make_config
from .http import Client
from .ldap_server import PEOPLE, STAFF, USERS, ldap_server
from .net import listen, port_of, stop_listening
from .processes import free_port

JDOE = (USERS["jdoe"].name, USERS["jdoe"].password)
ANN = (USERS["ann"].name, USERS["ann"].password)


def auth_section(port: int) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "base": [PEOPLE, STAFF],
            "user_object": ["uid", "cn"], "encryption": "none"}


class NoAuthTests(ApiCase):
    async def test_token_routes_are_404_without_auth(self) -> None:
        for method, path in (("GET", "/api/v1/token"), ("POST", "/api/v1/token"),
                             ("GET", "/token/abc"), ("DELETE", "/api/v1/token/abc")):
            self.assert_error(await self.client.request(method, path, auth=JDOE), 404)

    async def test_tokens_are_ignored_without_auth(self) -> None:
        answer = await self.client.post(f"/vm/{D32}", headers={"X-AUTH-TOKEN": "nonsense"})
        self.assertEqual(answer.code, 200)


class AuthCase(ApiCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        await super().setUp()
        self.config = make_config(auth=auth_section(ldap_server().port),
                                  vm_lifetime=12, vm_lifetime_auth=48)
        assert self.config.auth is not None
        auth = LdapAuthenticator(self.config.auth, reactor, timeout=5)
        self.api = VmpoolerApi(self.config, self.store, self.clock, auth, random.Random(3))
        self.client = Client(self.api.resource())

    async def token(self, who: tuple[str, str] = JDOE) -> str:
        answer = await self.client.post("/api/v1/token", auth=who)
        self.assertEqual(answer.code, 200, answer.body)
        token: str = answer.body["token"]
        return token

    async def checkout(self, token: str | None) -> str:
        headers = {"X-AUTH-TOKEN": token} if token else {}
        answer = await self.client.post(f"/api/v1/vm/{D32}", headers=headers)
        self.assertEqual(answer.code, 200, answer.body)
        host: str = answer.body[D32]["hostname"]
        return host


class TokenTests(AuthCase):
    async def test_create(self) -> None:
        answer = await self.client.post("/api/v1/token", auth=JDOE)
        self.assertEqual(set(answer.body), {"ok", "token"})
        token = answer.body["token"]
        self.assertRegex(token, r"^[a-z0-9]{32}$")
        self.assertEqual(await self.redis.hgetall(f"vmpooler__token__{token}"),
                         {"user": "jdoe", "user_dn": USERS["jdoe"].dn,
                          "created": format_time(T0)})
        self.assertNotEqual(await self.token(), token)

    async def test_bad_credentials(self) -> None:
        for auth in (("jdoe", "wrong"), ("jdoe", ""), ("", ""), ("nobody", "x"), None):
            answer = await self.client.post("/api/v1/token", auth=auth)
            self.assert_error(answer, 401)
            self.assertEqual(answer.headers.getRawHeaders("www-authenticate"),
                             ['Basic realm="vmpooler"'])
        self.assertEqual(await self.redis.keys("vmpooler__token__*"), [])

    async def test_list_only_ones_own(self) -> None:
        mine = {await self.token(), await self.token()}
        theirs = await self.token(ANN)
        answer = await self.client.get("/api/v1/token", auth=JDOE)
        self.assertEqual(answer.code, 200)
        self.assertEqual(set(answer.body) - {"ok"}, mine)
        for token in mine:
            self.assertEqual(answer.body[token], {"created": format_time(T0)})
        answer = await self.client.get("/token/", auth=ANN)
        self.assertEqual(set(answer.body) - {"ok"}, {theirs})

    async def test_many_tokens_are_listed(self) -> None:
        for i in range(2500):
            await self.redis.hset(f"vmpooler__token__t{i:05d}", "user", "jdoe" if i % 5 else "x")
        answer = await self.client.get("/api/v1/token", auth=JDOE)
        self.assertEqual(len(answer.body) - 1, 2000)

    async def test_describe(self) -> None:
        token = await self.token()
        self.clock.advance(60)
        host = await self.checkout(token)
        await self.checkout(None)
        answer = await self.client.get(f"/api/v1/token/{token}")
        self.assertEqual(answer.body, {"ok": True, token: {
            "user": "jdoe", "created": format_time(T0), "last": format_time(T0 + 60),
            "vms": {"running": [host]}}})
        self.assert_error(await self.client.get("/api/v1/token/" + "a" * 32), 404)
        self.assert_error(await self.client.get("/api/v1/token/bad%00token"), 400)

    async def test_delete_only_ones_own(self) -> None:
        token = await self.token()
        self.assert_error(await self.client.delete(f"/api/v1/token/{token}", auth=ANN), 401)
        self.assert_error(await self.client.delete(f"/api/v1/token/{token}"), 401)
        self.assertEqual(await self.redis.exists(f"vmpooler__token__{token}"), 1)
        answer = await self.client.delete(f"/api/v1/token/{token}", auth=JDOE)
        self.assertEqual((answer.code, answer.body), (200, {"ok": True}))
        self.assertEqual(await self.redis.exists(f"vmpooler__token__{token}"), 0)
        self.assert_error(await self.client.delete(f"/api/v1/token/{token}", auth=JDOE), 404)


    async def test_refusals_in_words(self) -> None:
        token = await self.token()
        host = await self.checkout(token)
        unknown = "a" * 32
        ann = {"X-AUTH-TOKEN": await self.token(ANN)}
        for answer, code, error in (
                (await self.client.get(f"/api/v1/token/{unknown}"), 404, "no such token"),
                (await self.client.delete(f"/api/v1/token/{unknown}", auth=JDOE), 404,
                 "no such token"),
                (await self.client.delete(f"/api/v1/token/{token}", auth=ANN), 401,
                 "the token belongs to another user"),
                (await self.client.post(f"/api/v1/vm/{D32}", headers={"X-AUTH-TOKEN": unknown}),
                 401, "invalid token"),
                (await self.client.delete(f"/api/v1/vm/{host}", headers=ann), 401,
                 "the VM was checked out with another user's token")):
            self.assertEqual((answer.code, answer.body), (code, {"ok": False, "error": error}))


class TokenVmTests(AuthCase):
    async def test_checkout_with_a_token(self) -> None:
        token = await self.token()
        host = await self.checkout(token)
        fields = await self.redis.hgetall(f"vmpooler__vm__{host}")
        self.assertEqual((fields["token:token"], fields["token:user"], fields["lifetime"]),
                         (token, "jdoe", "48"))
        info = (await self.client.get(f"/vm/{host}")).body[host]
        self.assertEqual(info["lifetime"], 48)
        anonymous = await self.checkout(None)
        self.assertNotIn("lifetime", await self.redis.hgetall(f"vmpooler__vm__{anonymous}"))
        self.assertEqual((await self.client.get(f"/vm/{anonymous}")).body[anonymous]["lifetime"],
                         12)

    async def test_invalid_token_takes_nothing(self) -> None:
        for token in ("a" * 32, "bad token", "x" * 500):
            answer = await self.client.post(f"/api/v1/vm/{D32}", headers={"X-AUTH-TOKEN": token})
            self.assert_error(answer, 401)
        await self.assert_untouched()

    async def test_changes_need_a_token(self) -> None:
        host = await self.checkout(None)
        self.assert_error(await self.client.put(f"/vm/{host}", {"lifetime": 2}), 401)
        self.assert_error(await self.client.post(f"/vm/{host}/disk/8"), 401)
        self.assert_error(await self.client.post(f"/vm/{host}/snapshot"), 401)
        self.assertEqual(await self.redis.keys("vmpooler__tasks__*"), [])
        self.assertNotIn("lifetime", await self.redis.hgetall(f"vmpooler__vm__{host}"))
        # Tags of an anonymous VM need none.
        self.assertEqual((await self.client.put(f"/vm/{host}", {"tags": {"a": "b"}})).code, 200)
        token = {"X-AUTH-TOKEN": await self.token()}
        self.assertEqual((await self.client.put(f"/vm/{host}", {"lifetime": 2},
                                                headers=token)).code, 200)
        self.assertEqual((await self.client.post(f"/vm/{host}/disk/8", headers=token)).code, 202)
        self.assertEqual((await self.client.post(f"/vm/{host}/snapshot", headers=token)).code,
                         202)

    async def test_only_the_owner_changes_or_deletes(self) -> None:
        jdoe = {"X-AUTH-TOKEN": await self.token()}
        jdoe_again = {"X-AUTH-TOKEN": await self.token()}
        ann = {"X-AUTH-TOKEN": await self.token(ANN)}
        host = await self.checkout(jdoe["X-AUTH-TOKEN"])
        before = await self.redis.hgetall(f"vmpooler__vm__{host}")
        for headers in ({}, ann):
            self.assert_error(await self.client.put(f"/vm/{host}", {"tags": {"a": "b"}},
                                                    headers=headers), 401)
            self.assert_error(await self.client.put(f"/vm/{host}", {"lifetime": 1},
                                                    headers=headers), 401)
            self.assert_error(await self.client.delete(f"/vm/{host}", headers=headers), 401)
            self.assert_error(await self.client.post(f"/vm/{host}/disk/4", headers=headers), 401)
        after = await self.redis.hgetall(f"vmpooler__vm__{host}")
        self.assertEqual({k: v for k, v in after.items() if k != "lifetime"},
                         {k: v for k, v in before.items() if k != "lifetime"})
        self.assertTrue(await self.redis.sismember(f"vmpooler__running__{D32}", host))
        # Another token of the same user will do.
        self.assertEqual((await self.client.put(f"/vm/{host}", {"tags": {"a": "b"}},
                                                headers=jdoe_again)).code, 200)
        self.assertEqual((await self.client.delete(f"/vm/{host}", headers=jdoe)).code, 200)


    async def test_a_vm_checked_out_between_check_and_change_is_not_changed(self) -> None:
        # Note [Owner checks]: the API checks a ready VM (no owner), then Ann
        # checks it out, then the change's script runs.
        host = sorted(self.ready[D32])[0]
        vm_key = f"vmpooler__vm__{host}"
        look = self.store.vm

        async def look_then_ann_checks_out(hostname: str) -> Any:
            record = await look(hostname)
            await self.redis.smove(f"vmpooler__ready__{D32}", f"vmpooler__running__{D32}", host)
            await self.redis.hset(vm_key, "token:user", ANN[0])
            return record
        jdoe = {"X-AUTH-TOKEN": await self.token()}
        self.store.vm = look_then_ann_checks_out  # type: ignore[method-assign]
        for request in (self.client.delete(f"/vm/{host}"),
                        self.client.put(f"/vm/{host}", {"tags": {"a": "b"}}),
                        self.client.put(f"/vm/{host}", {"lifetime": 1}, headers=jdoe),
                        self.client.post(f"/vm/{host}/disk/4", headers=jdoe),
                        self.client.post(f"/vm/{host}/snapshot", headers=jdoe)):
            await self.redis.hdel(vm_key, "token:user")
            await self.redis.smove(f"vmpooler__running__{D32}", f"vmpooler__ready__{D32}", host)
            self.assert_error(await request, 401)
        self.assertTrue(await self.redis.sismember(f"vmpooler__running__{D32}", host))
        fields = await self.redis.hgetall(vm_key)
        self.assertFalse({"tag:a", "lifetime"} & set(fields))
        self.assertEqual(await self.redis.scard("vmpooler__tasks__disk"), 0)
        self.assertEqual(await self.redis.scard("vmpooler__tasks__snapshot"), 0)


class IdentityTests(AuthCase):
    """Owners are directory entries (Note [Identities] in vmpoolerd/api/auth.py)."""

    async def test_names_the_directory_matches_alike_are_one_owner(self) -> None:
        tokens = {await self.token((typed, JDOE[1])) for typed in ("jdoe", "JDOE", " jdoe")}
        for typed in ("JDOE", "\uff4adoe"):
            answer = await self.client.get("/api/v1/token", auth=(typed, JDOE[1]))
            self.assertEqual(set(answer.body) - {"ok"}, tokens)
        for token in tokens:
            self.assertEqual((await self.client.get(f"/token/{token}")).body[token]["user"],
                             "jdoe")
        host = await self.checkout(sorted(tokens)[0])
        other = {"X-AUTH-TOKEN": sorted(tokens)[1]}
        self.assertEqual((await self.client.put(f"/vm/{host}", {"tags": {"a": "b"}},
                                                headers=other)).code, 200)

    async def test_one_short_name_in_two_branches_is_two_owners(self) -> None:
        staff = ("jdoe", USERS["staff-jdoe"].password)
        people_token, staff_token = await self.token(JDOE), await self.token(staff)
        self.assertEqual(set((await self.client.get("/token", auth=staff)).body) - {"ok"},
                         {staff_token})
        self.assert_error(await self.client.delete(f"/token/{people_token}", auth=staff), 401)
        host = await self.checkout(people_token)
        theirs = {"X-AUTH-TOKEN": staff_token}
        self.assert_error(await self.client.put(f"/vm/{host}", {"tags": {"a": "b"}},
                                                headers=theirs), 401)
        self.assert_error(await self.client.delete(f"/vm/{host}", headers=theirs), 401)
        self.assertTrue(await self.redis.sismember(f"vmpooler__running__{D32}", host))
        self.assertEqual((await self.client.get(f"/token/{staff_token}")).body[staff_token]
                         ["user"], "jdoe")  # shown alike, told apart by DN

    async def test_tokens_and_vms_from_before_entries_go_by_name(self) -> None:
        await self.redis.hset("vmpooler__token__legacy0000000000000000000000000000", "user",
                              "jdoe")
        legacy = {"X-AUTH-TOKEN": "legacy0000000000000000000000000000"}
        host = await self.checkout(legacy["X-AUTH-TOKEN"])
        self.assertFalse(await self.redis.hexists(f"vmpooler__vm__{host}", "token:user_dn"))
        mine = {"X-AUTH-TOKEN": await self.token()}
        self.assertEqual((await self.client.put(f"/vm/{host}", {"lifetime": 2},
                                                headers=mine)).code, 200)
        listed = await self.client.get("/token", auth=JDOE)
        self.assertIn("legacy0000000000000000000000000000", listed.body)


class PasswordThrottleTests(AuthCase):
    """Note [Password guessing] in vmpoolerd/api/throttle.py, in memory: every
    request comes from 127.0.0.1 (StubTreq's peer)."""

    limits = PasswordLimits(per_pair=3, per_address=5, per_user=8, window=60,
                            known_for=3600)
    service: dict[str, Any] = {}

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        await super().setUp()
        config = make_config(auth=auth_section(ldap_server().port), **self.service)
        throttle = PasswordThrottle(RateLimitStore(self.redis, self.clock), self.clock,
                                    self.limits)
        assert config.auth is not None
        self.api = VmpoolerApi(config, self.store, self.clock,
                               LdapAuthenticator(config.auth, reactor, timeout=5),
                               random.Random(3), throttle=throttle)
        self.client = Client(self.api.resource())

    async def test_wrong_guesses_beyond_the_limit_are_429_until_the_window_ends(self) -> None:
        for guess in ("a", "b", "c"):
            self.assert_error(await self.client.post("/token", auth=("JDOE", guess)), 401)
        answer = await self.client.post("/token", auth=(" jdoe", JDOE[1]))  # the same name
        self.assert_error(answer, 429)
        wait = 60 - int(T0) % 60  # the rest of the window (fixed windows)
        self.assertEqual(answer.headers.getRawHeaders("retry-after"), [str(wait)])
        self.assertEqual(await self.redis.keys("vmpooler__token__*"), [])
        self.assertEqual((await self.client.post("/token", auth=ANN)).code, 200)  # another
        self.clock.advance(wait)
        self.assertEqual((await self.client.post("/token", auth=JDOE)).code, 200)

    async def test_right_passwords_are_not_counted(self) -> None:
        for _ in range(self.limits.per_address + 2):
            self.assertEqual((await self.client.post("/token", auth=JDOE)).code, 200)
        for guess in ("a", "b"):  # the pair's bucket holds the failures alone
            self.assert_error(await self.client.post("/token", auth=("jdoe", guess)), 401)

    async def test_one_address_is_limited_across_names(self) -> None:
        for name in ("a", "b", "c", "d", "e"):
            self.assert_error(await self.client.post("/token", auth=(name, "x")), 401)
        self.assert_error(await self.client.post("/token", auth=ANN), 429)

    async def test_guesses_at_other_names_do_not_refuse_a_known_address(self) -> None:
        self.assertEqual((await self.client.post("/token", auth=JDOE)).code, 200)
        for name in ("a", "b", "c", "d", "e", "f"):
            await self.client.post("/token", auth=(name, "x"))
        self.assertEqual((await self.client.post("/token", auth=JDOE)).code, 200)
        self.assert_error(await self.client.post("/token", auth=ANN), 429)  # not known here

    async def test_an_unanswered_attempt_is_not_counted(self) -> None:
        down = make_config(auth=auth_section(free_port()))
        assert down.auth is not None
        throttle = PasswordThrottle(RateLimitStore(self.redis, self.clock), self.clock,
                                    self.limits)
        client = Client(VmpoolerApi(down, self.store, self.clock,
                                    LdapAuthenticator(down.auth, reactor, timeout=2),
                                    throttle=throttle).resource())
        for _ in range(self.limits.per_pair + 1):
            self.assert_error(await client.post("/token", auth=JDOE), 503)
        self.assertEqual((await self.client.post("/token", auth=JDOE)).code, 200)


class BehindProxyTests(PasswordThrottleTests):
    """Note [Client addresses] in vmpoolerd/api/clients.py: StubTreq's peer,
    127.0.0.1, is a trusted proxy."""

    service = {"trusted_proxies": ["127.0.0.0/30"]}

    async def post_via(self, client: str, auth: tuple[str, str],
                       forwarded: str | None = None) -> int:
        header = client if forwarded is None else forwarded
        answer = await self.client.post("/token", auth=auth,
                                        headers={"X-Forwarded-For": header})
        return answer.code

    async def test_each_forwarded_address_is_a_client_of_its_own(self) -> None:
        for name in ("a", "b", "c", "d", "e"):
            self.assertEqual(await self.post_via("198.51.100.7", (name, "x")), 401)
        self.assertEqual(await self.post_via("198.51.100.7", ANN), 429)
        self.assertEqual(await self.post_via("198.51.100.8", ANN), 200)

    async def test_the_rightmost_untrusted_address_is_the_client(self) -> None:
        for name in ("a", "b", "c", "d", "e"):  # the guesser invents a first hop each time
            self.assertEqual(await self.post_via(
                "", (name, "x"), f"10.9.9.{ord(name)}, 198.51.100.7, 127.0.0.2"), 401)
        self.assertEqual(await self.post_via("", ANN, "198.51.100.7"), 429)
        self.assertEqual(await self.post_via("", ANN, "garbage, 198.51.100.9"), 200)


class FromAddress:
    """Connections to the API made from a chosen loopback address."""

    def __init__(self, source: str) -> None:
        self._source = source

    def endpointForURI(self, uri: Any) -> TCP4ClientEndpoint:
        return TCP4ClientEndpoint(reactor, uri.host.decode(), uri.port,
                                  bindAddress=(self._source, 0))


class GuessingFromAnotherAddressTests(AuthCase):
    """The API on a real port, with its default throttle; a guesser at
    127.0.0.2 and beyond, the user at 127.0.0.1 (both loopback on Linux).
    The throttle's clock stands still in the middle of a window: a test
    that crossed a window's end on the wall clock would see its counts
    start again."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        await super().setUp()
        assert self.config.auth is not None
        window = Clock()
        window.advance(T0 - T0 % WINDOW + WINDOW / 2)
        api = VmpoolerApi(self.config, self.store, reactor,
                          LdapAuthenticator(self.config.auth, reactor, timeout=5),
                          random.Random(3),
                          throttle=PasswordThrottle(RateLimitStore(self.redis, reactor),
                                                    window))
        port = listen(ApiSite(api.resource(), reactor))
        self.addCleanup(stop_listening, port)
        self.url = f"http://127.0.0.1:{port_of(port)}/api/v1/token"

    async def post_from(self, source: str, auth: tuple[str, str]) -> int:
        agent = Agent.usingEndpointFactory(reactor, FromAddress(source))
        response = await treq.post(self.url, auth=auth, agent=agent)
        await response.content()
        return int(response.code)

    async def test_40_guesses_elsewhere_do_not_lock_the_user_out(self) -> None:
        codes = [await self.post_from("127.0.0.2", ("jdoe", f"guess{i}")) for i in range(40)]
        self.assertEqual(codes, [401] * PER_PAIR + [429] * (40 - PER_PAIR))
        self.assertEqual(await self.post_from("127.0.0.1", JDOE), 200)

    async def test_the_users_address_outlasts_the_users_ceiling(self) -> None:
        self.assertEqual(await self.post_from("127.0.0.1", JDOE), 200)  # now known
        guessers = [f"127.0.0.{n}" for n in range(2, 2 + PER_USER // PER_PAIR + 1)]
        for source in guessers:
            for i in range(PER_PAIR):
                await self.post_from(source, ("jdoe", f"guess{i}"))
        self.assertEqual(await self.post_from("127.0.1.1", JDOE), 429)  # never used: held
        self.assertEqual(await self.post_from("127.0.0.1", JDOE), 200)


class DirectoryDownTests(AuthCase):
    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        await super().setUp()
        self.port = free_port()
        config = make_config(auth=auth_section(self.port))
        assert config.auth is not None
        auth = LdapAuthenticator(config.auth, reactor, timeout=2)
        self.client = Client(VmpoolerApi(config, self.store, Clock(), auth).resource())

    async def test_503_not_401(self) -> None:
        answer = await self.client.post("/api/v1/token", auth=JDOE)
        self.assert_error(answer, 503)
        # The log names the server; the client is not told where it is.
        self.assertEqual(answer.body["error"], "the directory did not answer")
        self.assertNotIn(str(self.port), answer.body["error"])


