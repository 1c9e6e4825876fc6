"""
Where a request's time goes (docs/performance-findings.md), for one or
more source trees, one at a time, each against its own Redis:

    python -m bench.profile [--path PATH] [--method GET] [--py-spy BIN] TREE [TREE ...]

For each TREE (a checkout: ``git worktree add --detach /tmp/base f1c830c``)
the daemon runs under bench/counting.py and, under wrk -t1 -c8 (the
checkout benchmark's load, ``POST /api/v1/vm/<pool>`` by default):

1. Redis commands per request: ``INFO commandstats`` over a 3 s wrk run
   (``CONFIG RESETSTAT`` first), divided by the requests wrk made; the
   commands scripts run are counted too, under their own names;
2. timers per request: every ``reactor.callLater`` over the same run,
   counted by what it calls (bench/counting.py);
3. with ``--py-spy``, a sampling profile over a 10 s run: the functions
   with the most samples, on the stack (inclusive) and at its top (self),
   and the collapsed stacks kept in ``/tmp/profile-<n>.txt`` for a flame
   graph (``py-spy record -f raw``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable

from .__main__ import (CONFIG, POOL, READY, Processes, check_tools, free_port, redis_cli,
                       start_redis, stop, wait_port)
from .checkout import HOST, wrk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command_stats(redis_port: int, run: Callable[[], object]) -> collections.Counter[str]:
    """The commands Redis ran while ``run`` ran, by name (``INFO commandstats``;
    those a script runs are counted too, by their own names)."""
    redis_cli(redis_port, "CONFIG", "RESETSTAT")
    run()
    counts: collections.Counter[str] = collections.Counter()
    for line in redis_cli(redis_port, "INFO", "commandstats").splitlines():
        match = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if match and match.group(1) not in ("config", "info"):
            counts[match.group(1).upper()] = int(match.group(2))
    return counts


def profile(tree: str, n: int, path: str, method: str, py_spy: str | None) -> None:
    tmp = tempfile.mkdtemp(prefix="vmpoolerd-profile-")
    processes: Processes = []
    try:
        redis_port, _ = start_redis(tmp, processes, READY)
        port = free_port()
        config = os.path.join(tmp, "daemon.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(redis=redis_port, port=port, pool=POOL))
        timers = os.path.join(tmp, "timers.json")
        daemon = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "bench", "counting.py"), timers, "-n",
             "--pidfile=", "--logfile", os.path.join(tmp, "daemon.log"), "vmpoolerd",
             "--config", config],
            env=dict(os.environ, PYTHONPATH=tree), cwd=tree)
        processes.append(daemon)
        wait_port(port, daemon)
        wrk(port, daemon.pid, method, path, 2)  # warm up
        runs = []

        def load() -> None:
            daemon.send_signal(signal.SIGUSR1)
            runs.append(wrk(port, daemon.pid, method, path, 3))
            daemon.send_signal(signal.SIGUSR1)
        commands = command_stats(redis_port, load)
        time.sleep(0.5)
        with open(timers) as f:
            called = collections.Counter(json.load(f))
        # wrk's rate and the requests it made (rate x 3 s)
        requests = runs[0].rate * 3
        print(f"{tree}: {method} {path}: {runs[0].rate:.0f}/s, "
              f"{runs[0].cpu:.0f} us CPU per request")
        print(f"  Redis commands per request: {sum(commands.values()) / requests:.2f}: " +
              ", ".join(f"{k} {v / requests:.2f}" for k, v in commands.most_common(14)))
        print(f"  timers (callLater) per request: {sum(called.values()) / requests:.2f}: " +
              ", ".join(f"{k} {v / requests:.2f}" for k, v in called.most_common(8)))
        if py_spy:
            raw = f"/tmp/profile-{n}.txt"
            spy = subprocess.Popen([py_spy, "record", "-p", str(daemon.pid), "-d", "10",
                                    "-r", "250", "-f", "raw", "-o", raw, "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            wrk(port, daemon.pid, method, path, 10)
            spy.wait()
            summarize(raw)
    finally:
        stop(processes)
        shutil.rmtree(tmp, ignore_errors=True)


def summarize(raw: str, top: int = 25) -> None:
    """The functions most often on the stack, and at its top, in py-spy's raw output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    with open(raw) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            samples = int(count)
            total += samples
            frames = [frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].split(":")[0]
                      for frame in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] += samples
            own[frames[-1]] += samples
    print(f"  py-spy: {total} samples ({raw})")
    print("  on the stack (inclusive):")
    for frame, samples in inclusive.most_common(top):
        print(f"    {100 * samples / total:5.1f}%  {frame}")
    print("  at its top (self):")
    for frame, samples in own.most_common(top):
        print(f"    {100 * samples / total:5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default=f"/api/v1/vm/{POOL}",
                        help=f"the path asked (GET vm: /api/v1/vm/{HOST})")
    parser.add_argument("--method", default="POST")
    parser.add_argument("--py-spy", default=None, help="py-spy's binary, for a profile")
    parser.add_argument("trees", nargs="+")
    args = parser.parse_args()
    check_tools()
    for n, tree in enumerate(args.trees):
        profile(os.path.abspath(tree), n, args.path, args.method, args.py_spy)


if __name__ == "__main__":
    main()
