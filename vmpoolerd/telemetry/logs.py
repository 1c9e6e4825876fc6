"""
The ``:config: logfile``: what the daemon does, in vmpooler's familiar
line form (``[2026-11-27 10:00:00] [+] [pool] 'host' cloned in 2.31
seconds``), or as JSON lines (``twistd vmpoolerd --log-format json``).

Only the daemon's own events (namespace ``vmpoolerd``) at level info and
above go there; twistd's own log is unchanged.  Passwords and tokens are
never in an event: no code logs them.
"""

from __future__ import annotations

from datetime import datetime
from typing import IO, Any

from twisted.application.service import Service
from twisted.logger import (FileLogObserver, FilteringLogObserver, ILogFilterPredicate,
                            ILogObserver, LogLevel, LogLevelFilterPredicate, PredicateResult,
                            formatEvent, globalLogPublisher, jsonFileLogObserver)
from zope.interface import implementer

FORMATS = ("vmpooler", "json")


def vmpooler_line(event: dict[str, Any]) -> str | None:
    text = formatEvent(event)
    if not text:
        return None
    when = datetime.fromtimestamp(event["log_time"]).strftime("%Y-%m-%d %H:%M:%S")
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback().rstrip()
    return f"[{when}] {text}\n"


@implementer(ILogFilterPredicate)
class _Ours:
    """Events of the daemon's own modules."""

    def __call__(self, event: dict[str, Any]) -> PredicateResult:
        namespace = event.get("log_namespace") or ""
        ours = namespace == "vmpoolerd" or namespace.startswith("vmpoolerd.")
        return PredicateResult.maybe if ours else PredicateResult.no


def log_observer(out: IO[str], log_format: str) -> ILogObserver:
    """The daemon's events at info and above, written to ``out``."""
    writer = (jsonFileLogObserver(out) if log_format == "json"
              else FileLogObserver(out, vmpooler_line))
    return FilteringLogObserver(writer, [_Ours(), LogLevelFilterPredicate(LogLevel.info)])


class LogFile(Service):
    def __init__(self, path: str, log_format: str, publisher: Any = globalLogPublisher) -> None:
        self._path = path
        self._format = log_format
        self._publisher = publisher
        self._file: IO[str] | None = None
        self._observer: ILogObserver | None = None

    def startService(self) -> None:
        self._file = open(self._path, "a", encoding="utf-8")
        self._observer = log_observer(self._file, self._format)
        self._publisher.addObserver(self._observer)
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if self._observer is not None:
            self._publisher.removeObserver(self._observer)
        if self._file is not None:
            self._file.close()
