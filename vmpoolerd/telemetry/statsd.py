"""
vmpooler 3.x's statsd metrics (``:statsd:``): its counters, gauges and
timers, by its names (``<prefix>.clone.<pool>``, ...), over UDP.

Note [statsd costs nothing]: a datagram is sent and forgotten.  The server's
name is resolved when the service starts, and again every
:data:`RESOLVE_EVERY` seconds while it cannot be; until it is, and whenever
a send fails, the metric is dropped and counted, and only the first failure
of a kind is logged.  Nothing ever waits on statsd, as nothing waits on
Graphite (Note [Drop, never queue] in graphite.py).

The wire format is the statsd gem's that 3.x uses: ``name:1|c``,
``name:<value>|g``, and ``name:<value>|ms`` where 3.x's value, a number of
*seconds* with two decimals, is sent as it is (3.x's dashboards read it so).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ..config import StatsdConfig

log = Logger()

RESOLVE_EVERY = 60.0


def _clean(name: str) -> str:
    """A stat name as the statsd gem writes it (its separators replaced)."""
    return name.replace(":", "_").replace("|", "_").replace("@", "_")


class StatsdSender(Service):
    def __init__(self, config: StatsdConfig, reactor: Any) -> None:
        self._config = config
        self._reactor = reactor
        self._port: IListeningPort | None = None
        self._protocol = DatagramProtocol()
        self._address: tuple[str, int] | None = None
        self._retry: IDelayedCall | None = None
        self._logged: set[str] = set()
        self.sent = 0
        self.dropped = 0

    # --- 3.x's interface (as Promstats has it) ------------------------------------

    def increment(self, label: str) -> None:
        self._send(label, "1", "c")

    def gauge(self, label: str, value: float) -> None:
        self._send(label, f"{value:g}", "g")

    def timing(self, label: str, seconds: float) -> None:
        self._send(label, f"{seconds:.2f}", "ms")

    # ---------------------------------------------------------------------------

    def _send(self, label: str, value: str, kind: str) -> None:
        transport = self._protocol.transport
        if self._address is None or transport is None:
            self.dropped += 1
            return
        line = f"{_clean(f'{self._config.prefix}.{label}')}:{value}|{kind}"
        try:
            transport.write(line.encode(), self._address)  # type: ignore[call-arg]
        except Exception as e:
            self.dropped += 1
            self._once("send", "[!] statsd {where}: not sent ({error}); dropping what "
                       "cannot be sent", error=str(e) or type(e).__name__)
            return
        self.sent += 1

    def _once(self, kind: str, message: str, **fields: Any) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            log.warn(message, where=f"{self._config.server}:{self._config.port}", **fields)

    def _resolve(self) -> None:
        self._retry = None
        server = self._config.server
        if isIPAddress(server) or isIPv6Address(server):
            self._address = (server, self._config.port)
            return
        d = self._reactor.resolve(server)

        def resolved(ip: str) -> None:
            self._address = (ip, self._config.port)

        def failed(failure: Any) -> None:
            self._once("resolve", "[!] statsd {where}: its name is not resolved ({error}); "
                       "metrics dropped until it is", error=failure.getErrorMessage())
            if self.running:
                self._retry = self._reactor.callLater(RESOLVE_EVERY, self._resolve)
        d.addCallbacks(resolved, failed)

    def startService(self) -> None:
        super().startService()
        interface = "::" if isIPv6Address(self._config.server) else ""
        self._port = self._reactor.listenUDP(0, self._protocol, interface=interface)
        self._resolve()

    def stopService(self) -> Any:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        port, self._port = self._port, None
        return port.stopListening() if port is not None else None
