"""
The readiness probe of a new VM: can a TCP connection be
opened to its ``ready_check_port``?

:func:`probe_address` says where to connect (pure); :func:`tcp_probe`
connects and closes at once.  ``ready_check_port: 0`` (no probe) is the
caller's to honour.
"""

from __future__ import annotations

import errno
from typing import Any, Awaitable, Callable, Literal, Mapping

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, gatherResults
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet import error
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure as TwistedFailure

from ..config import ServiceConfig
from ..vsphere.types import VmState
from . import failures
from .failures import VmFailure

__all__ = ["Probe", "probe_address", "probe_all", "tcp_probe", "why_not"]

log = Logger()


def probe_address(name: str, domain: str | None, ip: str | None, mode: str) -> str | None:
    """Where the VM ``name`` is probed (``ready_check_address``).

    ``"hostname"``: its name plus ``domain`` (resolved through DNS when
    probed, vmpooler's way); ``"ip"``: the address VMware Tools report,
    None while they report none.
    """
    if mode == "hostname":
        return f"{name}.{domain}" if domain else name
    if mode == "ip":
        return ip or None
    raise ValueError(f"unknown ready_check_address {mode!r} (hostname or ip)")


class _Probe(Protocol):
    """Closes the connection as soon as it is made; ``closed`` fires when it is gone."""

    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()

    def connectionLost(self, reason: TwistedFailure = connectionDone) -> None:
        self.closed.callback(None)


# What a connect fails with when the fault is this host's, not the VM's.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                          errno.EADDRNOTAVAIL, errno.EAGAIN})


def _local(e: BaseException) -> bool:
    """Whether *e* says this host could not try (Note [Unknown probes] in pool_plan.py)."""
    code = getattr(e, "osError", None) if isinstance(e, ConnectError) else None
    if code is None and isinstance(e, OSError):
        code = e.errno
    return code in LOCAL_ERRNOS


def why_not(host: str, port: int, e: BaseException, timeout: float) -> VmFailure:
    """A failed probe's kind and reason (Note [Failures explained])."""
    if isinstance(e, (ConnectionRefusedError, error.ConnectionRefusedError)):
        return VmFailure(failures.PORT_REFUSED, f"port {port} refused the connection")
    if isinstance(e, (TimeoutError, error.TimeoutError, error.TCPTimedOutError)):
        return VmFailure(failures.PORT_TIMEOUT,
                         f"port {port} did not answer within {timeout:g} s")
    if isinstance(e, error.DNSLookupError):
        return VmFailure(failures.UNREACHABLE, f"the name {host!r} could not be resolved")
    return VmFailure(failures.UNREACHABLE, f"port {port} could not be reached: "
                                         f"{str(e) or type(e).__name__}")


async def tcp_probe(reactor: IReactorTime, host: str, port: int,
                    timeout: float = 5.0) -> Literal[True] | VmFailure | None:
    """True if a TCP connection to ``host:port`` opens within ``timeout``
    seconds (name resolution included); why not (:func:`why_not`) on
    refusal, DNS failure or timeout; None when this host could not try
    (out of descriptors, memory or ports).  Never raises for network
    errors.  ``reactor`` also connects (IReactorTCP) and resolves names, as
    every real reactor does."""

    def timed_out(result: Any, after: float) -> None:
        raise TimeoutError(f"no connection within {after} s")

    factory = Factory.forProtocol(_Probe)
    factory.noisy = False  # no "Starting factory" lines for every probe
    connecting = HostnameEndpoint(reactor, host, port, timeout=timeout).connect(factory)
    connecting.addTimeout(timeout, reactor, onTimeoutCancel=timed_out)
    try:
        probe = await connecting
    except CancelledError:
        raise  # the caller gave up (a timeout comes as TimeoutError)
    except Exception as e:  # refused, unreachable, no such name, timed out...
        if _local(e):
            log.warn("[!] probe of {host}:{port} could not be made here: {error}",
                     host=host, port=port, error=e)
            return None
        log.debug("probe of {host}:{port} failed: {error}", host=host, port=port, error=e)
        return why_not(host, port, e, timeout)
    assert isinstance(probe, _Probe)
    await probe.closed  # so that nothing is left behind in the reactor
    return True


# A readiness probe: True (ready), why not (False: no reason given), or
# None (could not say: Note [Unknown probes] in pool_plan.py).
Probe = Callable[[str, int], Awaitable[bool | VmFailure | None]]


async def probe_all(names: frozenset[str], inventory: Mapping[str, VmState],
                    service: ServiceConfig, probe: Probe) -> dict[str, bool | VmFailure | None]:
    """Each VM's readiness probe, all at once: True, why not, or None when
    it could not say."""

    async def one(name: str) -> bool | VmFailure | None:
        address = probe_address(name, service.domain, inventory[name].ip,
                                service.ready_check_address)
        if address is None:
            return VmFailure(failures.NO_IP, "VMware Tools reported no IP address")
        return await probe(address, service.ready_check_port)

    ordered = sorted(names)
    results = await gatherResults([ensureDeferred(one(n)) for n in ordered])
    return dict(zip(ordered, results))
