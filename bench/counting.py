"""
twistd, with the reactor's timers counted (for bench/profile.py):

    python bench/counting.py OUT twistd-arguments...

(a script, not a module: it runs beside any tree's ``PYTHONPATH``)

Every ``reactor.callLater`` is counted by the name of what it calls (a
LoopingCall's, a Deferred's timeout's, a coalescer's flush...).  SIGUSR1
writes the counts since the last SIGUSR1 to OUT as JSON, and starts again
from zero.
"""

from __future__ import annotations

import collections
import json
import signal
import sys
from typing import Any

from twisted.internet import reactor
from twisted.scripts.twistd import run

counts: collections.Counter[str] = collections.Counter()
original = reactor.callLater  # type: ignore[attr-defined]


def _name(f: Any) -> str:
    target = getattr(f, "__func__", f)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(f))}"


class CallLater:
    """The counting ``callLater``: an object, not a function, so that a class
    that copies ``reactor.callLater`` into an attribute (txredisapi's
    protocol does) does not get it bound as a method."""

    def __call__(self, delay: float, f: Any, *args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_code
        where = f"{caller.co_filename.rsplit('/', 1)[-1]}:{caller.co_name}"
        counts[f"{_name(f)} (from {where})"] += 1
        return original(delay, f, *args, **kwargs)


def dump(*_: Any) -> None:
    with open(OUT, "w") as f:
        json.dump(dict(counts), f)
    counts.clear()


if __name__ == "__main__":
    OUT = sys.argv[1]
    reactor.callLater = CallLater()  # type: ignore[attr-defined,assignment]
    signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["twistd", *sys.argv[2:]]
    run()
