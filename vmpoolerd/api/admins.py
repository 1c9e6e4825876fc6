"""
Who administers the pools.

Note [Administrators]: ``:auth:`` may name administrators:
``administrators`` lists users, each by DN (``uid=jdoe,ou=people,...``,
compared as the directory spells DNs, case aside) or by name (compared as
the directory compares names; a name held by entries under two bases
names both, so name them by DN there), and ``administrator_groups`` lists
group entries by DN, whose ``member`` or ``uniqueMember`` (the user's DN)
or ``memberUid`` (the user's name) make their members administrators.  A
group's answer is kept for ``CACHE`` seconds per user, so that a burst of
requests costs the directory one search; the directory not answering is a
503, never a yes.

When administrators are named, only they may change the live config
(``POST``/``DELETE /config/...``) and reset pools (``/poolreset``), and
they may act on any VM, whoever checked it out (callers.py,
:meth:`Callers.owner`; the scripts are given ANY_OWNER); failure reasons
are shown whole to them alone (Note [Public failures] in
manager/failures.py).  When none are named, every valid token may use the
config API, as in vmpooler 3.x, owner checks hold for everyone, and
nobody sees failure reasons whole in an answer.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from twisted.internet.interfaces import IReactorTime

from ..config import LdapConfig
from ..store.api_store import Owner
from .auth import Identity, folded

CACHE = 60.0  # seconds a group's answer for a user is kept


@runtime_checkable
class GroupDirectory(Protocol):
    async def in_group(self, identity: Identity, group: str) -> bool: ...


def same_dn(a: str, b: str) -> bool:
    """Two DNs compared as a directory would, commonly: case and the spaces
    after separators aside."""
    def norm(dn: str) -> str:
        return ",".join(part.strip() for part in folded(dn).split(","))
    return norm(a) == norm(b)


class Administrators:
    """Note [Administrators]."""

    def __init__(self, users: tuple[str, ...] = (), groups: tuple[str, ...] = (),
                 directory: GroupDirectory | None = None,
                 clock: IReactorTime | None = None) -> None:
        self._users = users
        self._groups = groups if directory is not None else ()
        self._directory = directory
        self._clock = clock
        self._answers: dict[tuple[str, str], tuple[float, bool]] = {}

    @classmethod
    def of(cls, config: LdapConfig | None, directory: GroupDirectory | None,
           clock: IReactorTime) -> Administrators:
        if config is None:
            return cls()
        return cls(config.administrators, config.administrator_groups, directory, clock)

    @property
    def named(self) -> bool:
        """Whether the configuration names any administrator."""
        return bool(self._users or self._groups)

    async def includes(self, owner: Owner) -> bool:
        """Whether the owner of a token is an administrator.

        :raises AuthUnavailable: if a group must be asked and the directory
            could not say."""
        for user in self._users:
            if "=" in user:
                if owner.dn and same_dn(user, owner.dn):
                    return True
            elif folded(user) == folded(owner.user):
                return True
        identity = Identity(owner.dn, owner.user)
        for group in self._groups:
            if await self._in_group(identity, group):
                return True
        return False

    async def _in_group(self, identity: Identity, group: str) -> bool:
        assert self._directory is not None
        now = self._clock.seconds() if self._clock is not None else 0.0
        key = (identity.dn or identity.name, group)
        kept = self._answers.get(key)
        if kept is not None and now - kept[0] < CACHE:
            return kept[1]
        if len(self._answers) > 10_000:  # a bound, not a policy
            self._answers.clear()
        answer = await self._directory.in_group(identity, group)
        self._answers[key] = (now, answer)
        return answer
