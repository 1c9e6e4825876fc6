"""
Checking a user's password against the directory, and learning who they are.

:class:`LdapAuthenticator` finds the user's entry and binds as it with the
password.  Without a service account it binds as
``<user_object>=<user>,<base>`` for each configured base and, within it,
each user object, in turn; with one (``service_account_hash``) it binds as
the service account, searches each base for an entry whose user object
equals the name (a filter built as a structure, never as text, so a name
cannot change the filter), and binds as the one entry found.  Its answer is
an :class:`Identity` (the entry that accepted the password), None (the
directory said no, the name is unknown or ambiguous, or the credentials
were empty and never sent), or the exception :class:`AuthUnavailable` (no
answer: unreachable, timed out, TLS failed, the service account refused,
or an unexpected LDAP error), which the API turns into 503, not 401.

Note [Identities]: the directory matches names by its own rules (``JDOE``,
`` jdoe`` and a full-width ``ｊdoe`` all find jdoe's entry), and two
branches may each hold a ``jdoe``.  So a user is who the directory says:
the :class:`Identity` carries the entry's DN as the directory spells it,
which owner checks compare, and its user object's value as stored, which
answers show.

Note [one connection per attempt]: an attempt opens one connection, makes
its binds and searches on it in turn, and closes it whatever happened:
with an unbind after an answer, by aborting after a failure, and waits (at
most ``CLOSE_GRACE`` seconds, then aborts) until it is gone.  At most
``max_binds`` attempts talk to the directory at once; the others wait
their turn.  Waiting, connecting, StartTLS, the binds and searches are
bounded together by ``timeout``; closing adds at most the grace.

Passwords are never logged; user names are logged as named fields.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap.ldapclient import LDAPClient
from ldaptor.protocols.ldap.ldaperrors import (
    LDAPException,
    LDAPInvalidCredentials,
    LDAPNoSuchObject,
)
from ldaptor.protocols.ldap.ldapsyntax import LDAPEntry
from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from twisted.internet import defer, error
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import (
    Certificate,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..config import LdapConfig

if TYPE_CHECKING:
    from .twisted_internals import IOpenSSLTrustRoot

__all__ = ["AuthUnavailable", "Identity", "LdapAuthenticator", "bind_dns", "escape_dn_value"]

log = Logger()
T = TypeVar("T")

_DN_SPECIALS = frozenset(',+"\\<>;=')

class ServiceAccountRefused(Exception):
    """The configured service account's own bind was refused: a configuration fault."""


#: What "the directory gave no answer" looks like.  Any LDAP result other
#: than invalidCredentials is here too: a server that is unwilling, busy or
#: configured with a bad base is a problem for operators, not a wrong password.
_UNAVAILABLE = (
    defer.TimeoutError,
    error.ConnectError,
    error.ConnectingCancelledError,  # the timeout came while connecting
    error.ConnectionClosed,
    error.DNSLookupError,
    SSL.Error,
    VerificationError,  # TLS: the certificate is not for this host
    CertificateError,
    LDAPException,
    ServiceAccountRefused,
)


class AuthUnavailable(Exception):
    """The directory could not be asked; the credentials are neither right nor wrong."""


@dataclass(frozen=True)
class Identity:
    """The directory entry that accepted a password (Note [Identities])."""

    dn: str  # as the directory spells it: what owner checks compare
    name: str  # its user object's value as stored: what answers show


def escape_dn_value(value: str) -> str:
    """Escape *value* for use as an attribute value in a DN (RFC 4514 §2.4)."""
    escaped = []
    for i, char in enumerate(value):
        if char == "\0":
            escaped.append("\\00")
        elif (
            char in _DN_SPECIALS
            or (i == 0 and char in "# ")
            or (i == len(value) - 1 and char == " ")
        ):
            escaped.append("\\" + char)
        else:
            escaped.append(char)
    return "".join(escaped)


def bind_dns(user: str, config: LdapConfig) -> list[str]:
    """The DNs to try for *user*, in order: each base, each user object within it."""
    value = escape_dn_value(user)
    return [f"{attribute}={value},{base}"
            for base in config.base for attribute in config.user_object]


def _trust_root(ca_file: str | None) -> IOpenSSLTrustRoot:
    """The CA certificates in *ca_file* (PEM, one or more), or the platform's."""
    if ca_file is None:
        return platformTrust()
    with open(ca_file, "rb") as f:
        found = x509.load_pem_x509_certificates(f.read())
    return trustRootFromCertificates(
        [Certificate.loadPEM(cert.public_bytes(Encoding.PEM)) for cert in found]
    )


class _Client(LDAPClient):
    """An LDAP client whose ``closed`` fires once its connection is gone."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        if not self.closed.called:
            self.closed.callback(None)


class LdapAuthenticator:
    """Checks passwords by binding to the directory described by an :class:`LdapConfig`."""

    CLOSE_GRACE = 2.0

    def __init__(self, config: LdapConfig, reactor: Any, timeout: float = 10.0) -> None:
        # reactor: IReactorTCP, IReactorTime and IReactorPluggableNameResolver.
        self._config = config
        self._reactor = reactor
        self._timeout = timeout
        self._tls: IOpenSSLClientConnectionCreator | None = None
        self._binds = DeferredSemaphore(config.max_binds)
        if config.encryption != "none":
            self._tls = optionsForClientTLS(config.host, trustRoot=_trust_root(config.ca_file))

    async def authenticate(self, user: str, password: str) -> Identity | None:
        """
        Who *user* is if *password* is theirs; None if it is not.

        :raises AuthUnavailable: if the directory could not say.
        """
        if not user or not password:
            log.info("LDAP: no bind for {user!r}: empty user name or password", user=user)
            return None
        found = await self._ask(lambda client: self._login(client, user, password),
                                f"authenticate {user!r}")
        if found is None:
            log.info("LDAP: bind refused for {user!r}", user=user)
            return None
        log.info("LDAP: {user!r} bound as {dn}", user=user, dn=found.dn)
        return found

    async def in_group(self, identity: Identity, group: str) -> bool:
        """
        Whether the group entry ``group`` lists ``identity``: its DN as a
        ``member`` or ``uniqueMember``, or its name as a ``memberUid`` (a
        search of that one entry, with a filter built as a structure), as
        the service account if there is one, else anonymously.  A group
        that does not exist lists nobody.

        :raises AuthUnavailable: if the directory could not say.
        """
        return await self._ask(lambda client: self._member(client, identity, group),
                               f"look {identity.dn!r} up in {group!r}")

    async def _ask(self, work: Callable[[_Client], Awaitable[T]], what: str) -> T:
        """``work`` done on one connection (Note [one connection per attempt])."""
        client = _Client()
        attempt = Deferred.fromCoroutine(self._one_at_a_time(client, work))
        attempt.addTimeout(self._timeout, self._reactor)
        answered = False
        try:
            found = await attempt
            answered = True
        except _UNAVAILABLE as e:
            log.warn("LDAP: cannot {what}: {host}:{port} unavailable: {error!r}",
                     what=what, host=self._config.host, port=self._config.port, error=e)
            where = f"{self._config.host}:{self._config.port}"
            raise AuthUnavailable(f"LDAP server {where}: {e!r}") from e
        finally:
            await self._close(client, graceful=answered)
        return found

    async def _one_at_a_time(self, client: _Client,
                             work: Callable[[_Client], Awaitable[T]]) -> T:
        await self._binds.acquire()  # cancelled by the timeout while waiting: not acquired
        try:
            await connectProtocol(self._endpoint(), client)
            if self._config.encryption == "start_tls":
                await client.startTLS(self._tls)
            return await work(client)
        finally:
            self._binds.release()

    async def _login(self, client: _Client, user: str, password: str) -> Identity | None:
        if self._config.service_account is None:
            return await self._bind_first(client, user, password)
        return await self._search_and_bind(client, user, password)

    async def _member(self, client: _Client, identity: Identity, group: str) -> bool:
        account = self._config.service_account
        if account is not None:
            try:
                await client.bind(account.user_dn, account.password)
            except LDAPInvalidCredentials as e:
                raise ServiceAccountRefused(
                    f"the service account {account.user_dn} was refused") from e

        def equal(attribute: bytes, value: str) -> pureldap.LDAPFilter_equalityMatch:
            return pureldap.LDAPFilter_equalityMatch(
                attributeDesc=pureldap.LDAPAttributeDescription(attribute),
                assertionValue=pureldap.LDAPAssertionValue(value))
        matches = pureldap.LDAPFilter_or([
            equal(b"member", identity.dn), equal(b"uniqueMember", identity.dn),
            equal(b"memberUid", identity.name)])
        try:
            found = await self._search(client, group, pureldap.LDAP_SCOPE_baseObject, matches)
        except LDAPNoSuchObject:
            log.warn("LDAP: the administrators' group {group!r} does not exist", group=group)
            return False
        return len(found) == 1

    async def _bind_first(self, client: _Client, user: str, password: str
                          ) -> Identity | None:
        """The entry of the first constructed DN that binds with *password*."""
        for dn in bind_dns(user, self._config):
            try:
                await client.bind(dn, password)
            except LDAPInvalidCredentials:
                continue
            entries = await self._search(client, dn, pureldap.LDAP_SCOPE_baseObject,
                                         pureldap.LDAPFilter_present(b"objectClass"))
            if len(entries) != 1:  # bound, but the entry is not readable as itself
                return Identity(dn, user)
            return _identity(entries[0], user, (dn.split("=", 1)[0],))
        return None

    async def _search_and_bind(self, client: _Client, user: str, password: str
                               ) -> Identity | None:
        """Look *user* up as the service account, then bind as the one entry found."""
        account = self._config.service_account
        assert account is not None
        try:
            await client.bind(account.user_dn, account.password)
        except LDAPInvalidCredentials as e:
            raise ServiceAccountRefused(f"the service account {account.user_dn} was refused"
                                        ) from e
        matches = pureldap.LDAPFilter_or([
            pureldap.LDAPFilter_equalityMatch(
                attributeDesc=pureldap.LDAPAttributeDescription(attribute),
                assertionValue=pureldap.LDAPAssertionValue(user))
            for attribute in self._config.user_object])
        entries = [entry for base in self._config.base
                   for entry in await self._search(client, base,
                                                    pureldap.LDAP_SCOPE_wholeSubtree, matches)]
        if len(entries) != 1:
            if entries:
                log.warn("LDAP: {user!r} names {count} entries; refused as ambiguous",
                         user=user, count=len(entries))
            return None
        identity = _identity(entries[0], user, self._config.user_object)
        try:
            await client.bind(identity.dn, password)
        except LDAPInvalidCredentials:
            return None
        return identity

    async def _search(self, client: _Client, base: str, scope: int,
                      matches: pureldap.LDAPFilter) -> list[LDAPEntry]:
        found: list[LDAPEntry] = await LDAPEntry(client, base).search(
            filterObject=matches, scope=scope,
            attributes=list(self._config.user_object))
        return found

    def _endpoint(self) -> IStreamClientEndpoint:
        tcp = HostnameEndpoint(self._reactor, self._config.host, self._config.port)
        if self._config.encryption == "simple_tls":
            assert self._tls is not None
            return wrapClientTLS(self._tls, tcp)
        return tcp

    async def _close(self, client: _Client, graceful: bool) -> None:
        """
        Close the connection and wait until it is gone.  After an answer,
        unbind first; after a failure (the server may be stuck, or a TLS
        handshake unfinished), abort.
        """
        if not client.connected:  # never made, or already lost
            return
        if graceful:
            client.unbind()  # sends an UnbindRequest, then loses the connection
        else:
            client.transport.abortConnection()
        try:
            await client.closed.addTimeout(self.CLOSE_GRACE, self._reactor)
        except defer.TimeoutError:
            client.transport.abortConnection()


def folded(text: str) -> str:
    """A name compared as directories commonly compare names."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


def _identity(entry: LDAPEntry, typed: str, attributes: tuple[str, ...]) -> Identity:
    """*entry* as an identity, named by the first of *attributes* it holds (the value
    that matches what was typed, if it holds several)."""
    for attribute in attributes:
        values = sorted(_text(v) for v in entry.get(attribute, ()))
        if values:
            same = [v for v in values if folded(v) == folded(typed)]
            return Identity(entry.dn.getText(), (same or values)[0])
    return Identity(entry.dn.getText(), typed)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
