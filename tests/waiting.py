"""
Waiting for something a real process or server does: one polling helper,
with a deadline, for every test.

Time that the code under test takes from an injected clock is driven with
``twisted.internet.task.Clock`` instead; these helpers are for what runs
outside the test's control (Redis, the simulator, slapd, a daemon, a
socket), so they wait on the real reactor, or block in a thread's test.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, Awaitable, Callable

from twisted.internet import reactor
from twisted.internet.task import deferLater


async def until(what: str, check: Callable[[], Any | Awaitable[Any]],
                seconds: float = 30, interval: float = 0.05) -> Any:
    """Poll ``check`` (plain or async) until it returns something true,
    and return that; fail the test, naming ``what``, after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        await deferLater(reactor, interval)  # type: ignore[arg-type]


def wait_for(what: str, check: Callable[[], Any], seconds: float = 5.0,
             interval: float = 0.02) -> Any:
    """``until`` for code that blocks (no reactor running in this thread)."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(interval)
