"""The daemon's log events, captured for the length of a test."""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import TestCase


def captured_events(test: TestCase) -> list[dict[str, Any]]:
    """Every event logged from now until *test* ends, in order."""
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    test.addCleanup(globalLogPublisher.removeObserver, observer)
    return events
