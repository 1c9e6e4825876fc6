"""
Instructions per Redis round trip of the store, counted, not timed
(``python -m bench.roundtrip``): the daemon's side of a checkout batch of
one and of four (``ApiStore.checkout``, as the coalescer sends them) and
of ``GET /vm/<host>``'s read (``ApiStore.vm``), against a real Redis, one
round trip at a time, with no HTTP around them.

    BENCH_BASE=<ref> python -m bench.roundtrip

Each figure is the count of a process that makes LONG round trips less
that of one making SHORT, over LONG - SHORT: the start, the imports and
the connection cancel out.  Both run under valgrind's callgrind
(``--trace-children`` off: Redis is not counted).  With BENCH_BASE, a git
ref checked out by ``git worktree add --detach`` (removed afterwards) is
counted the same way, beside the working tree, for a base whose store
has the same calls.  The counted processes run this file as a script
(``python -P``, so that neither this directory nor the package shadows
the tree's modules), which is why the bench package is imported only by
main().  A few minutes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT, LONG = 200, 700
READY = 10 * LONG * 4
#: what is counted: (name, checkouts per batch; 0: GET /vm/<host>'s read)
KINDS = (("checkout, a batch of 1", 1), ("checkout, a batch of 4", 4), ("GET vm's read", 0))


def child(redis_port: int, size: int, count: int, pool: str, host: str) -> None:
    """In the counted process: ``count`` round trips of one kind, checking
    out of ``pool`` or reading ``host``."""
    from twisted.internet import defer, reactor

    from vmpoolerd.config import RedisConfig
    from vmpoolerd.store.api_store import ApiStore, Request
    from vmpoolerd.store.connection import connect
    from vmpoolerd.store.txredis_adapter import connected

    async def run() -> None:
        redis = connect(RedisConfig(server="127.0.0.1", port=redis_port), 3.0)
        await connected(redis)
        store = ApiStore(redis, reactor, 3.0, sizes={pool: 5})
        request = Request(((pool, 1, (pool,)),), "2026-12-06T00:00:00+00:00", {})
        for _ in range(count):
            if size:
                await defer.gatherResults([store.checkout(request) for _ in range(size)])
            else:
                await store.vm(host)
        await redis.disconnect()

    def start() -> None:
        done = defer.ensureDeferred(run())
        done.addErrback(lambda failure: (failure.printTraceback(), os._exit(1)))
        done.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def counted(tree: str, redis_port: int, size: int, count: int) -> int:
    """The instructions of a child process making ``count`` round trips."""
    from .__main__ import POOL
    from .checkout import HOST

    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-P", os.path.abspath(__file__), "--child", str(redis_port), str(size), str(count),
         POOL, HOST],
        env=dict(os.environ, PYTHONPATH=tree), cwd=tree,
        capture_output=True, text=True)
    collected = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or collected is None:
        raise SystemExit(f"the counted process failed:\n{out.stdout}{out.stderr[-2000:]}")
    return int(collected.group(1))


def per_round_trip(tree: str, redis_port: int, size: int) -> float:
    return (counted(tree, redis_port, size, LONG)
            - counted(tree, redis_port, size, SHORT)) / (LONG - SHORT)


def main() -> None:
    from .__main__ import Processes, check_tools, start_redis, stop
    from .checkout import worktree

    check_tools()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: run `make install`")
    tmp = tempfile.mkdtemp(prefix="vmpoolerd-bench-roundtrip-")
    processes: Processes = []
    trees = {"tree": ROOT}
    base = os.environ.get("BENCH_BASE")
    with contextlib.ExitStack() as cleanup:  # in turn: the Redis servers, the base, tmp
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        if base:
            trees["base"] = cleanup.enter_context(worktree(base, os.path.join(tmp, "base")))
        cleanup.callback(stop, processes)
        print(f"instructions per round trip of the store (callgrind; {LONG} round trips "
              f"less {SHORT}), working tree" + (f" and {base}" if base else ""))
        for kind, size in KINDS:
            counts = {}
            for name, tree in trees.items():
                redis_port, _ = start_redis(tmp, processes, READY)
                counts[name] = per_round_trip(tree, redis_port, size)
            line = "  ".join(f"{name} {n / 1000:6.1f}k" for name, n in counts.items())
            ratio = f"  tree/base {counts['tree'] / counts['base']:.2f}" if base else ""
            print(f"  {kind:24s} {line}{ratio}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        port, size, count = (int(a) for a in sys.argv[2:5])
        child(port, size, count, *sys.argv[5:7])
    else:
        main()
