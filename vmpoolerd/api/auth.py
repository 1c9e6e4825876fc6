"""
Checking a user's password with an LDAP simple bind (CONTRACT.md §6).

:class:`LdapAuthenticator` binds as ``<user_object>=<user>,<base>`` for
each configured base and, within it, each user object, and says whether
any bind succeeded.  Its answer is ``True`` (bound), ``False`` (the
directory said no, or the credentials were empty and never sent), or the
exception :class:`AuthUnavailable` (no answer: unreachable, timed out, TLS
failed, or an unexpected LDAP error), which the API turns into 503, not 401.

Note [one connection per attempt]: an attempt opens one connection, makes
its binds on it in turn, and closes it whatever happened: with an unbind
after an answer, by aborting after a failure, and waits (at most
``CLOSE_GRACE`` seconds, then aborts) until it is gone.  Connecting,
StartTLS and the binds are bounded together by ``timeout``; closing adds
at most the grace.

Passwords are never logged; user names are logged as named fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from ldaptor.protocols.ldap.ldapclient import LDAPClient
from ldaptor.protocols.ldap.ldaperrors import LDAPException, LDAPInvalidCredentials
from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from twisted.internet import defer, error
from twisted.internet.defer import Deferred
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
    from twisted.internet._sslverify import IOpenSSLTrustRoot

__all__ = ["AuthUnavailable", "LdapAuthenticator", "bind_dns", "escape_dn_value"]

log = Logger()

_DN_SPECIALS = frozenset(',+"\\<>;=')

#: What "the directory gave no answer" looks like.  Any LDAP result other
#: than invalidCredentials is here too: a server that is unwilling, busy or
#: configured with a bad base is a problem for operators, not a wrong password.
_UNAVAILABLE = (
    defer.TimeoutError,
    error.ConnectError,
    error.ConnectionClosed,
    error.DNSLookupError,
    SSL.Error,
    VerificationError,  # TLS: the certificate is not for this host
    CertificateError,
    LDAPException,
)


class AuthUnavailable(Exception):
    """The directory could not be asked; the credentials are neither right nor wrong."""


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
        if config.encryption != "none":
            self._tls = optionsForClientTLS(config.host, trustRoot=_trust_root(config.ca_file))

    async def authenticate(self, user: str, password: str) -> bool:
        """
        Whether *password* is right for *user*.

        :raises AuthUnavailable: if the directory could not say.
        """
        if not user or not password:
            log.info("LDAP: no bind for {user!r}: empty user name or password", user=user)
            return False
        client = _Client()
        dns = bind_dns(user, self._config)
        attempt = Deferred.fromCoroutine(self._bind_first(client, dns, password))
        attempt.addTimeout(self._timeout, self._reactor)
        answered = False
        try:
            dn = await attempt
            answered = True
        except _UNAVAILABLE as e:
            log.warn(
                "LDAP: cannot authenticate {user!r}: {host}:{port} unavailable: {error!r}",
                user=user, host=self._config.host, port=self._config.port, error=e,
            )
            where = f"{self._config.host}:{self._config.port}"
            raise AuthUnavailable(f"LDAP server {where}: {e!r}") from e
        finally:
            await self._close(client, graceful=answered)
        if dn is None:
            log.info("LDAP: bind refused for {user!r}", user=user)
            return False
        log.info("LDAP: {user!r} bound as {dn}", user=user, dn=dn)
        return True

    async def _bind_first(self, client: _Client, dns: list[str], password: str) -> str | None:
        """The first DN of *dns* that binds with *password*, or None."""
        await connectProtocol(self._endpoint(), client)
        if self._config.encryption == "start_tls":
            await client.startTLS(self._tls)
        for dn in dns:
            try:
                await client.bind(dn, password)
            except LDAPInvalidCredentials:
                continue
            return dn
        return None

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
