"""
One vCenter session: logged in on first use, logged in again when lost,
every SOAP request sent (and counted, and sent again when the resend
policy says so) through :meth:`Session.send`.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
import xml.etree.ElementTree as ElementTree
from typing import Any, Callable, Iterator, TypeVar

from pyVmomi import vim

from .pyvmomi_adapter import HookedStub, newest_common_version
from .resend import Step, next_step, refusal_in
from .types import VsphereUnavailable

__all__ = ["Session"]

T = TypeVar("T")


class _LoginGuard(threading.local):
    """
    Note [Logins under the lock]: a login and a login again send their
    requests while ``Session._login_lock`` is held (so that threads that
    all find the session lost log in once, not once each).  That lock is
    not reentrant.  Were such a request refused with ``NotAuthenticated``,
    the resend policy would log in again, taking the lock this same thread
    holds: a deadlock.  So while a thread holds the lock for a login, its
    requests are sent *bare*: counted, never resent, their failure raised
    to the caller.  The logout of ``close`` is sent bare too (not under the
    lock): a session already lost needs no new login to be closed.  The
    guard is per thread: other threads' requests, waiting for the lock or
    not, keep the policy.  tests/test_vsphere.py (``LoginGuardTests``)
    refuses a login to see it.
    """

    bare = False

    @contextlib.contextmanager
    def bare_requests(self) -> Iterator[None]:
        self.bare = True
        try:
            yield
        finally:
            self.bare = False


class Session:
    """A vCenter session, opened on first use and reopened when it is lost."""

    def __init__(self, server: str, username: str, password: str, port: int,
                 insecure: bool, timeout: float, pool_size: int) -> None:
        self.server = server
        self.username = username
        self._password = password
        self.port = port
        self.insecure = insecure
        self.timeout = timeout
        self._pool_size = pool_size
        self._login_lock = threading.Lock()  # see Note [Logins under the lock]
        self._guard = _LoginGuard()
        self._count_lock = threading.Lock()
        self._round_trips = 0
        self._generation = 0  # bumped at every login
        self._stub: HookedStub | None = None
        self._content: Any = None

    @property
    def round_trips(self) -> int:
        """SOAP requests sent so far (logins and resends included)."""
        return self._round_trips

    @property
    def stub(self) -> HookedStub:
        assert self._stub is not None, "not connected"
        return self._stub

    @property
    def content(self) -> Any:
        """The ServiceInstance's content (sessionManager, propertyCollector...)."""
        assert self._content is not None, "not connected"
        return self._content

    @property
    def connected(self) -> bool:
        return self._content is not None

    def connect(self) -> None:
        """Log in, unless logged in already (one thread logs in; the others wait)."""
        if self._content is not None:
            return
        with self._login_lock:
            if self._content is not None:
                return
            context = self._ssl_context()
            stub = HookedStub(self.send, host=self.server, port=self.port,
                              version=self._api_version(context), sslContext=context,
                              httpConnectionTimeout=self.timeout, poolSize=self._pool_size)
            with self._guard.bare_requests():
                try:
                    content: Any = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
                    content.sessionManager.Login(self.username, self._password, None)
                except Exception:
                    stub.DropConnections()
                    raise
            self._stub, self._content = stub, content
            self._generation += 1

    def close(self) -> None:
        """Log out (best effort) and drop the connections."""
        with self._login_lock:
            content, stub = self._content, self._stub
            self._content = self._stub = None
        if content is not None:
            with self._guard.bare_requests():  # see Note [Logins under the lock]
                try:
                    content.sessionManager.Logout()
                except Exception:  # noqa: BLE001 (the session may be gone already)
                    pass
        if stub is not None:
            stub.DropConnections()

    def _login_again(self, generation: int) -> None:
        """Log in again, unless another thread did since ``generation``."""
        with self._login_lock:
            if self._generation != generation or self._content is None:
                return
            with self._guard.bare_requests():
                self._content.sessionManager.Login(self.username, self._password, None)
            self._generation += 1

    def send(self, method: str, request: Callable[[], T]) -> T:
        """Send one SOAP request, counted, and again as Note [Resend policy]
        (resend.py) says; bare under a login (Note [Logins under the lock])."""
        if self._guard.bare:
            self._count()
            return request()
        generation = self._generation
        logged_in_again = resent = False
        while True:
            self._count()
            try:
                result = request()
                refused = refusal_in(method, result)
                if refused is None:
                    return result
                raise refused
            except Exception as error:
                step = next_step(error, method, logged_in_again, resent)
                if step is Step.RAISE:
                    raise
                if step is Step.LOGIN_AND_RESEND:
                    logged_in_again = True
                    self._login_again(generation)
                else:
                    resent = True  # the stub dropped its broken connections

    def _count(self) -> None:
        with self._count_lock:
            self._round_trips += 1

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _api_version(self, context: ssl.SSLContext) -> str:
        """The newest API version both pyvmomi and the server speak (not a SOAP call)."""
        conn = http.client.HTTPSConnection(self.server, self.port, timeout=self.timeout,
                                           context=context)
        try:
            conn.request("GET", "/sdk/vimServiceVersions.xml")
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        where = f"{self.server}:{self.port}"
        if response.status != 200:
            raise VsphereUnavailable(f"{where} is not a vCenter (HTTP {response.status})")
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as e:
            raise VsphereUnavailable(f"{where} is not a vCenter") from e
        offered = {v.text or "" for v in root.iter("version")}
        version = newest_common_version(offered)
        if version is None:
            raise VsphereUnavailable(f"{self.server}: no API version in common ({sorted(offered)})")
        return version
