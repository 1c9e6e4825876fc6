"""
Tests for vmpoolerd.auth: DN escaping as plain unit tests, and binds
against a real, private slapd (tests/ldap_server.py).

Decision: a TLS server whose certificate does not verify (unknown CA, or a
host name not in it) gives AuthUnavailable, not False: the password was
never sent, so it is neither right nor wrong, and operators should see it.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from .ldap_server import PEOPLE, SERVICE, STAFF, SUFFIX, USERS, LdapServer, User, ldap_server
from .processes import free_port
from tests.logs import captured_events

from vmpoolerd.api.auth import (
    AuthUnavailable, Identity, LdapAuthenticator, bind_dns, escape_dn_value,
)
from vmpoolerd.config import LdapConfig, ServiceAccount

JDOE, ANN, OBRIEN, ODD = USERS["jdoe"], USERS["ann"], USERS["obrien"], USERS["odd"]
STAFF_JDOE = USERS["staff-jdoe"]


def identity(user: User) -> Identity:
    """*user* as the directory names them: the entry's DN, its RDN's value."""
    return Identity(user.dn, user.name)


class EscapeDnValueTests(SynchronousTestCase):
    def test_plain(self) -> None:
        self.assertEqual(escape_dn_value("jdoe"), "jdoe")
        self.assertEqual(escape_dn_value("Ann Smith"), "Ann Smith")
        self.assertEqual(escape_dn_value("o'brien"), "o'brien")
        self.assertEqual(escape_dn_value("jürgen"), "jürgen")

    def test_specials_anywhere(self) -> None:
        for char in ',+"\\<>;=':
            self.assertEqual(escape_dn_value(f"a{char}b"), f"a\\{char}b", char)

    def test_leading_hash_and_space(self) -> None:
        self.assertEqual(escape_dn_value("#x"), "\\#x")
        self.assertEqual(escape_dn_value(" x"), "\\ x")
        self.assertEqual(escape_dn_value("x#y z"), "x#y z")

    def test_trailing_space(self) -> None:
        self.assertEqual(escape_dn_value("x "), "x\\ ")
        self.assertEqual(escape_dn_value(" "), "\\ ")
        self.assertEqual(escape_dn_value("  "), "\\ \\ ")

    def test_nul(self) -> None:
        self.assertEqual(escape_dn_value("a\0b"), "a\\00b")

    def test_injection(self) -> None:
        self.assertEqual(escape_dn_value("jdoe,ou=staff"), "jdoe\\,ou\\=staff")

    def test_matches_the_test_directory(self) -> None:
        self.assertEqual(f"uid={escape_dn_value(OBRIEN.name)},{PEOPLE}", OBRIEN.dn)
        self.assertEqual(f"uid={escape_dn_value(ODD.name)},{PEOPLE}", ODD.dn)


class BindDnsTests(SynchronousTestCase):
    def test_each_base_then_each_user_object(self) -> None:
        config = LdapConfig(host="h", base=("ou=a", "ou=b"), user_object=("uid", "cn"))
        self.assertEqual(
            bind_dns("x,y", config),
            ["uid=x\\,y,ou=a", "cn=x\\,y,ou=a", "uid=x\\,y,ou=b", "cn=x\\,y,ou=b"],
        )


class EmptyCredentialsTests(SynchronousTestCase):
    """Empty credentials are refused before anything touches the network."""

    def check(self, user: str, password: str) -> None:
        fake = MemoryReactorClock()
        config = LdapConfig(host="127.0.0.1", base=(PEOPLE,), encryption="none")
        d = Deferred.fromCoroutine(LdapAuthenticator(config, fake).authenticate(user, password))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(fake.tcpClients, [])
        self.assertEqual(fake.getDelayedCalls(), [])

    def test_empty_password(self) -> None:
        self.check(JDOE.name, "")

    def test_empty_user(self) -> None:
        self.check("", "s3cret")

    def test_both_empty(self) -> None:
        self.check("", "")


class LdapBindTests(TestCase):
    server: LdapServer

    def setUp(self) -> None:
        self.server = ldap_server()
        self.events = captured_events(self)

    def authenticator(self, encryption: str = "none", **changes: Any) -> LdapAuthenticator:
        s = self.server
        config = LdapConfig(
            host=s.host,
            port=s.tls_port if encryption == "simple_tls" else s.port,
            base=(PEOPLE,),
            encryption=encryption,
            ca_file=None if encryption == "none" else s.ca_file,
        )
        timeout = changes.pop("timeout", 10.0)
        return LdapAuthenticator(dataclasses.replace(config, **changes), reactor, timeout=timeout)

    async def unavailable(
        self, auth: LdapAuthenticator, user: str, password: str
    ) -> AuthUnavailable:
        try:
            result = await auth.authenticate(user, password)
        except AuthUnavailable as e:
            return e
        self.fail(f"expected AuthUnavailable, got {result!r}")

    # Right and wrong passwords, over each transport

    async def test_plain_right_password(self) -> None:
        auth = self.authenticator("none")
        self.assertEqual(await auth.authenticate(JDOE.name, JDOE.password), identity(JDOE))

    async def test_start_tls_right_password(self) -> None:
        auth = self.authenticator("start_tls")
        self.assertEqual(await auth.authenticate(JDOE.name, JDOE.password), identity(JDOE))

    async def test_simple_tls_right_password(self) -> None:
        auth = self.authenticator("simple_tls")
        self.assertEqual(await auth.authenticate(JDOE.name, JDOE.password), identity(JDOE))

    async def test_tls_to_dns_name(self) -> None:
        """The certificate's DNS name is checked as well as its IP address."""
        for encryption in ("start_tls", "simple_tls"):
            auth = self.authenticator(encryption, host="localhost")
            self.assertIsNotNone(await auth.authenticate(JDOE.name, JDOE.password), encryption)

    async def test_ca_file_with_several_certificates(self) -> None:
        bundle = self.mktemp()
        with open(bundle, "w") as out:
            for path in (self.server.other_ca_file, self.server.ca_file):
                with open(path) as f:
                    out.write(f.read())
        auth = self.authenticator("simple_tls", ca_file=bundle)
        self.assertEqual(await auth.authenticate(JDOE.name, JDOE.password), identity(JDOE))

    async def test_wrong_password(self) -> None:
        for encryption in ("none", "start_tls", "simple_tls"):
            auth = self.authenticator(encryption)
            self.assertIsNone(await auth.authenticate(JDOE.name, "S3cret"), encryption)

    async def test_unknown_user(self) -> None:
        self.assertIsNone(await self.authenticator().authenticate("nobody", "s3cret"))

    async def test_empty_password_against_real_server(self) -> None:
        self.assertIsNone(await self.authenticator().authenticate(JDOE.name, ""))

    # Bases and user objects

    async def test_each_base_and_user_object_in_turn(self) -> None:
        auth = self.authenticator(base=(PEOPLE, STAFF), user_object=("uid", "cn"))
        # The first DN tried, then the last.
        self.assertEqual(await auth.authenticate(JDOE.name, JDOE.password), identity(JDOE))
        self.assertEqual(await auth.authenticate(ANN.name, ANN.password), identity(ANN))
        self.assertIsNone(await auth.authenticate(ANN.name, JDOE.password))
        self.assertIsNone(await auth.authenticate(JDOE.name, ANN.password))

    async def test_only_configured_bases_and_user_objects(self) -> None:
        self.assertIsNone(
            await self.authenticator(base=(STAFF,), user_object=("uid", "cn")).authenticate(
                JDOE.name, JDOE.password
            ),
        )
        self.assertIsNone(
            await self.authenticator(base=(PEOPLE, STAFF), user_object=("uid",)).authenticate(
                ANN.name, ANN.password
            ),
        )

    # Escaping

    async def test_user_names_needing_escapes(self) -> None:
        auth = self.authenticator()
        for user in (OBRIEN, ODD):
            self.assertIsNotNone(await auth.authenticate(user.name, user.password), user.name)
            self.assertIsNone(await auth.authenticate(user.name, JDOE.password), user.name)

    async def test_injected_dn_components_do_not_bind(self) -> None:
        # Unescaped, "cn=Ann Smith,ou=staff" + "," + SUFFIX would be Ann's DN.
        auth = self.authenticator(base=(SUFFIX,), user_object=("cn",))
        self.assertIsNone(await auth.authenticate("Ann Smith,ou=staff", ANN.password))
        self.assertIsNotNone(
            await self.authenticator(base=(STAFF,), user_object=("cn",)).authenticate(
                ANN.name, ANN.password
            ),
        )
        people = self.authenticator()
        self.assertIsNone(await people.authenticate("jdoe,ou=staff", JDOE.password))
        self.assertIsNone(await people.authenticate("jdoe+cn=jdoe", JDOE.password))

    # Identities (Note [Identities])

    async def test_a_name_the_directory_matches_is_the_entry_it_matched(self) -> None:
        auth = self.authenticator()
        for typed in ("JDOE", " jdoe", "jdoe ", "\uff4adoe", "JDoe"):
            self.assertEqual(await auth.authenticate(typed, JDOE.password), identity(JDOE),
                             typed)
        ann = self.authenticator(base=(STAFF,), user_object=("cn",))
        self.assertEqual(await ann.authenticate("ann SMITH", ANN.password), identity(ANN))

    async def test_one_short_name_in_two_branches_is_two_people(self) -> None:
        auth = self.authenticator(base=(PEOPLE, STAFF))
        people = await auth.authenticate("jdoe", JDOE.password)
        staff = await auth.authenticate("jdoe", STAFF_JDOE.password)
        self.assertEqual((people, staff), (identity(JDOE), identity(STAFF_JDOE)))
        assert people is not None and staff is not None
        self.assertEqual(people.name, staff.name)  # shown alike, compared by DN
        self.assertNotEqual(people.dn, staff.dn)

    # A service account that searches

    def searching(self, **changes: Any) -> LdapAuthenticator:
        account = ServiceAccount(SERVICE.dn, SERVICE.password)
        return self.authenticator(service_account=account, **changes)

    async def test_the_service_account_finds_the_entry_then_binds_as_it(self) -> None:
        auth = self.searching(base=(SUFFIX,), user_object=("uid", "cn"))
        self.assertEqual(await auth.authenticate("JDOE", JDOE.password), None)  # two jdoes
        auth = self.searching()  # people only
        self.assertEqual(await auth.authenticate("JDOE", JDOE.password), identity(JDOE))
        self.assertIsNone(await auth.authenticate("jdoe", STAFF_JDOE.password))
        self.assertIsNone(await auth.authenticate("nobody", JDOE.password))
        for user in (OBRIEN, ODD):  # filter specials are values, not syntax
            self.assertEqual(await auth.authenticate(user.name, user.password), identity(user))
        for injected in ("*", "j*", "jdoe)(uid=*", "*)(|(cn=*"):
            self.assertIsNone(await auth.authenticate(injected, JDOE.password), injected)
        staff = self.searching(base=(STAFF,), user_object=("cn",))
        self.assertEqual(await staff.authenticate("Ann Smith", ANN.password), identity(ANN))

    async def test_a_refused_service_account_is_unavailable_not_a_wrong_password(self) -> None:
        account = ServiceAccount(SERVICE.dn, "not-the-svc-pw")
        auth = self.authenticator(service_account=account)
        error = await self.unavailable(auth, JDOE.name, JDOE.password)
        self.assertIn("service account", str(error))
        text = "\n".join(repr(event) + formatEvent(event) for event in self.events)
        self.assertNotIn("not-the-svc-pw", text)

    # Binds in flight

    async def test_attempts_beyond_max_binds_wait_and_do_not_connect(self) -> None:
        with socket.socket() as listener:  # accepts, never answers: holds its attempt
            listener.bind(("127.0.0.1", 0))
            listener.listen(5)
            port = listener.getsockname()[1]
            auth = self.authenticator(port=port, timeout=2.0, max_binds=1)
            stuck = [Deferred.fromCoroutine(self.unavailable(auth, JDOE.name, JDOE.password))
                     for _ in range(3)]
            # While the first attempt holds its turn, the others wait without
            # connecting.  (When it times out, the second has its turn an
            # instant before its own timeout, and may connect then: counted
            # here, that was a flaky test.)
            await deferLater(reactor, 0.5, lambda: None)
            accepted = 0
            listener.setblocking(False)
            while True:
                try:
                    listener.accept()[0].close()
                except BlockingIOError:
                    break
                accepted += 1
            self.assertLessEqual(accepted, 1)
            await gatherResults(stuck)
        auth = self.authenticator(max_binds=1)
        answers = await gatherResults([
            Deferred.fromCoroutine(auth.authenticate(u.name, u.password))
            for u in (JDOE, OBRIEN, ODD, JDOE)])
        self.assertEqual(answers, [identity(u) for u in (JDOE, OBRIEN, ODD, JDOE)])

    # No answer from the directory

    async def test_server_down(self) -> None:
        for encryption in ("none", "start_tls", "simple_tls"):
            auth = self.authenticator(encryption, port=free_port())
            await self.unavailable(auth, JDOE.name, JDOE.password)

    async def test_server_silent(self) -> None:
        """A server that accepts but never answers: the timeout gives up."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(5)  # the kernel accepts; nobody reads
            port = listener.getsockname()[1]
            for encryption in ("none", "start_tls", "simple_tls"):
                auth = self.authenticator(encryption, port=port, timeout=0.3)
                started = time.monotonic()
                await self.unavailable(auth, JDOE.name, JDOE.password)
                # Aborted at once: no waiting out the close grace.
                self.assertLess(time.monotonic() - started, 0.3 + LdapAuthenticator.CLOSE_GRACE / 2)

    async def test_tls_with_another_ca(self) -> None:
        for encryption in ("start_tls", "simple_tls"):
            auth = self.authenticator(encryption, ca_file=self.server.other_ca_file)
            await self.unavailable(auth, JDOE.name, JDOE.password)

    async def test_tls_without_ca_file_uses_platform_trust(self) -> None:
        auth = self.authenticator("simple_tls", ca_file=None)
        await self.unavailable(auth, JDOE.name, JDOE.password)

    async def test_tls_host_name_not_in_certificate(self) -> None:
        for encryption in ("start_tls", "simple_tls"):
            auth = self.authenticator(encryption, host=self.server.mismatched_host)
            await self.unavailable(auth, JDOE.name, JDOE.password)

    # Logging

    async def test_passwords_never_logged(self) -> None:
        auth = self.authenticator()
        await auth.authenticate(JDOE.name, JDOE.password)
        await auth.authenticate(JDOE.name, "wrong-pw-123")
        await self.unavailable(self.authenticator(port=free_port()), JDOE.name, "down-pw-456")
        text = "\n".join(repr(event) + formatEvent(event) for event in self.events)
        for password in (JDOE.password, "wrong-pw-123", "down-pw-456"):
            self.assertNotIn(password, text)
        self.assertIn("jdoe", text)
