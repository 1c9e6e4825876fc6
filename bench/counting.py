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


def call_later(delay: float, f: Any, *args: Any, **kwargs: Any) -> Any:
    counts[_name(f)] += 1
    return original(delay, f, *args, **kwargs)


def dump(*_: Any) -> None:
    with open(OUT, "w") as f:
        json.dump(dict(counts), f)
    counts.clear()


if __name__ == "__main__":
    OUT = sys.argv[1]
    reactor.callLater = call_later  # type: ignore[attr-defined,assignment]
    signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["twistd", *sys.argv[2:]]
    run()
