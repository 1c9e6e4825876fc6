"""
Who makes a request: the owner of its token or of its HTTP Basic
credentials, and whether they may change a VM (Note [Owner checks]).
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Protocol

from twisted.web.iweb import IRequest

from . import validate
from .errors import ApiError
from .auth import Identity
from .admins import Administrators
from .clients import Clients
from .throttle import PasswordThrottle, TooManyFailures
from ..store.api_store import ANY_OWNER, ApiStore, Owner
from ..store.errors import NoSuchToken, OtherOwner
from .timestamps import Timestamps


class Authenticator(Protocol):
    async def authenticate(self, user: str, password: str) -> Identity | None: ...


@dataclass(frozen=True)
class Caller:
    """The token a request came with, and whose it is."""

    token: str
    owner: Owner


class Callers:
    """
    Who makes a request: the owner of its ``X-AUTH-TOKEN`` or of its HTTP
    Basic credentials, when authentication is configured.
    """

    def __init__(self, store: ApiStore, clock: Timestamps,
                 authenticator: Authenticator | None,
                 throttle: PasswordThrottle | None = None,
                 clients: Clients | None = None,
                 admins: Administrators | None = None) -> None:
        self._store = store
        self._clock = clock
        self._auth = authenticator
        self._throttle = throttle
        self._clients = clients or Clients()
        self._admins = admins if admins is not None and authenticator is not None \
            else Administrators()

    def client(self, request: IRequest) -> str:
        """Who the request comes from, as an address group (Note [Client
        addresses] in clients.py)."""
        return self._clients.group(request)

    @property
    def configured(self) -> bool:
        return self._auth is not None

    async def caller(self, request: IRequest) -> Caller | None:
        """The caller of a valid ``X-AUTH-TOKEN``; 401 for a bad one."""
        if self._auth is None:
            return None
        header = request.getHeader(b"X-AUTH-TOKEN")
        if header is None:
            return None
        try:
            token = validate.token(header.decode("ascii").strip())
        except (UnicodeDecodeError, ApiError):
            raise ApiError(401, "invalid token") from None
        try:
            owner = await self._store.touch_token(token, self._clock.now())
        except NoSuchToken:
            raise ApiError(401, "invalid token") from None
        return Caller(token, owner)

    async def required(self, request: IRequest) -> Caller | None:
        """With auth configured, a valid token is required (401)."""
        caller = await self.caller(request)
        if self._auth is not None and caller is None:
            raise ApiError(401, "an X-AUTH-TOKEN is required")
        return caller

    async def administrator(self, request: IRequest) -> Caller | None:
        """The caller, who must be an administrator when administrators are
        named (401 without a token, 403 with another's); else as :meth:`required`."""
        caller = await self.required(request)
        if self._admins.named and (caller is None
                                   or not await self._admins.includes(caller.owner)):
            raise ApiError(403, "only an administrator may do this")
        return caller

    async def is_administrator(self, caller: Caller | None) -> bool:
        """Whether administrators are named and the caller is one."""
        return caller is not None and self._admins.named \
            and await self._admins.includes(caller.owner)

    async def sees_all(self, request: IRequest) -> bool:
        """Whether the request comes with an administrator's token (Note
        [Public failures] in manager/failures.py); a bad token is no one's."""
        if not self._admins.named or request.getHeader(b"X-AUTH-TOKEN") is None:
            return False
        try:
            return await self.is_administrator(await self.caller(request))
        except ApiError:
            return False

    async def owner(self, hostname: str, caller: Caller | None) -> str:
        """
        The VM's owner's key ("" for none; ANY_OWNER without auth, or for an
        administrator: Note [Administrators] in admins.py), if the
        caller may change the VM (else OtherOwner); NoSuchVm if there is none.

        Note [Owner checks]: the owner is checked here, and again by the
        script that makes the change (it gets the owner's key seen here), so
        that a VM checked out by someone else in between is not changed: the
        store raises OtherOwner then too, as if the check had seen that owner.
        A VM checked out before owners were directory entries records only a
        name, and is its caller's if the names match.
        """
        vm = await self._store.vm(hostname)
        if self._auth is None or await self.is_administrator(caller):
            return ANY_OWNER
        owner = Owner(vm.fields.get("token:user", ""), vm.fields.get("token:user_dn", ""))
        if not owner.key:
            return ""
        mine = caller is not None and (caller.owner.dn == owner.dn if owner.dn
                                       else caller.owner.user == owner.user)
        if not mine:
            raise OtherOwner()
        return owner.key

    def require_auth(self) -> None:
        """404 unless authentication is configured (the /token routes)."""
        if self._auth is None:
            raise ApiError(404, "authentication is not configured")

    async def basic_user(self, request: IRequest) -> Owner:
        """
        Whose valid HTTP Basic credentials these are (Note [Identities] in
        auth.py); 401 otherwise, 429 past the failures allowed (Note
        [Password guessing] in throttle.py).
        """
        assert self._auth is not None
        try:
            user = request.getUser().decode("utf-8")
            password = request.getPassword().decode("utf-8")
        except UnicodeDecodeError:
            user = password = ""
        identity = None
        auth, throttle = self._auth, self._throttle
        if user and password and throttle is None:
            identity = await auth.authenticate(user, password)
        elif user and password and throttle is not None:
            try:
                identity = await throttle.check(
                    user, self.client(request),
                    lambda: auth.authenticate(user, password))
            except TooManyFailures as e:
                raise ApiError(429, "too many failed attempts; try again later",
                               retry_after=e.wait) from None
        if identity is None:
            request.setHeader(b"WWW-Authenticate", b'Basic realm="vmpooler"')
            raise ApiError(401, "authentication failed")
        return Owner(identity.name, identity.dn)

