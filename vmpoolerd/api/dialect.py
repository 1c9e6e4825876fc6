"""
The API's generations.  vmpooler 1.x served ``/api/v1`` (and, for clients
of the old days, no prefix); vmpooler 3.x serves ``/api/v3``, and
``/api/v2`` has the same shapes.  One set of handlers serves them all:
:class:`site.InFlight` takes the prefix off the path and notes the
generation on the request (:func:`note`); a handler asks
:meth:`Dialects.of` for the request's :class:`Dialect`, which holds
every difference between the generations' answers:

- v1 names VMs by their short names and adds a ``domain`` key (the
  ``:config: domain``) where vmpooler 1.x did;
- v3 names the VMs it hands out by their FQDNs (the name and its pool's
  domain; a pool without one: the short name), has no ``domain`` key, and
  ``GET /vm/<host>`` adds ``remaining``, ``start_time``, ``end_time``,
  ``ip`` ("" when unknown), ``fqdn``, and ``host`` and ``migrated`` where
  known.  Like vmpooler 3.x it keys an answer about one VM by the short
  name, and lists a token's VMs by their short names (tokens.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from twisted.web.iweb import IRequest

from ..config import Config

V1, V3 = 1, 3
# The path's prefix after /api/, and the generation it asks for.
PREFIXES = {b"v1": V1, b"v2": V3, b"v3": V3}
_NOTE = "vmpooler_generation"  # the request's attribute InFlight sets


def note(request: Any, generation: int) -> None:
    """Note on the request which generation of the API it asked for."""
    setattr(request, _NOTE, generation)


def is_v3(request: Any) -> bool:
    """Whether the request asked for ``/api/v3`` (or ``/api/v2``)."""
    return getattr(request, _NOTE, V1) == V3


def rfc3339(seconds: float) -> str:
    """A time as vmpooler 3.x shows one: ``2015-04-28T19:17:47-07:00`` (local)."""
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


class Dialect:
    """How one generation of the API names VMs and what it says about them."""

    def __init__(self, config: Config, fqdns: bool, domains: dict[str, str | None]) -> None:
        self._domain = config.service.domain
        self._fqdns = fqdns
        self.v3 = fqdns  # vmpooler 3.x's answers (its extra keys, its leniencies)
        self._domains = domains

    def hostname(self, name: str, pool: str) -> str:
        """A VM's name in answers: v3 its FQDN, v1 its short name."""
        domain = self._domains.get(pool, self._domain) if self._fqdns else None
        return f"{name}.{domain}" if domain else name

    def domain(self) -> dict[str, str]:
        """The ``domain`` key v1 adds to a checkout and a VM's description."""
        return {"domain": self._domain} if self._domain and not self._fqdns else {}

    def vm_fields(self, name: str, pool: str, checkout: float | None,
                  lifetime: float, now: float, known: Mapping[str, str]) -> dict[str, Any]:
        """
        What a generation adds to ``GET /vm/<host>``; ``checkout`` is given
        for a running VM only; ``known`` is the VM's hash.  ``remaining`` is
        the hours left of its lifetime (never below 0).  ``ip`` is the
        address the manager recorded (vmpooler 3.x asks DNS, and answers ""
        when the name does not resolve).
        """
        if not self._fqdns:
            return self.domain()
        fields: dict[str, Any] = {}
        if checkout is not None:
            end = checkout + lifetime * 3600
            fields = {"remaining": round(max(end - now, 0) / 3600, 2),
                      "start_time": rfc3339(checkout), "end_time": rfc3339(end)}
        fields["ip"] = known.get("ip", "")
        fields["fqdn"] = self.hostname(name, pool)
        fields.update((key, known[key]) for key in ("host", "migrated") if known.get(key))
        return fields


class Dialects:
    """The generations' dialects for one configuration."""

    def __init__(self, config: Config) -> None:
        domains = {pool: config.domain_for(pool) for pool in config.pool_names}
        # The domains a VM may be named with (GET /vm/<fqdn>), besides :config: domain.
        self.domains = tuple(sorted({d for d in domains.values() if d}))
        self._by_generation = {V1: Dialect(config, False, domains),
                               V3: Dialect(config, True, domains)}
        # What answers that name VMs by their FQDNs whatever the prefix use
        # (on-demand requests, a vmpooler 3.x route).
        self.fqdn = self._by_generation[V3]

    def of(self, request: IRequest) -> Dialect:
        return self._by_generation[getattr(request, _NOTE, V1)]
