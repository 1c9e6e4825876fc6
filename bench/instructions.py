"""
Instructions per checkout, counted, not timed (``python -m bench.instructions``):
the bare Klein handler, the working tree's daemon and a git ref's, each
run under valgrind's callgrind, counting only while wrk checks out.

    BENCH_BASE=<ref> python -m bench.instructions

The base is chosen as ``python -m bench checkout`` chooses it (BENCH_BASE,
else the most recent tag, else f1c830c).  A count of instructions does not
move with the rest of the machine, where CPU time moves by half from run
to run here: it is the figure to compare two trees by, a few percent
apart.  It leaves out what the kernel does (the syscalls, which ``strace
-c`` counts: about five per checkout, the bare handler's too) and how fast
the instructions run (the daemon's run slower: a larger process, and a
Redis beside it on the same cores), so it is a floor for CPU time, not
a prediction of it.

Each server runs at about a hundredth of its speed under callgrind; its
batches of checkouts are what eight connections make at that speed
(printed: checkouts per script call, which sets the Redis round trip's
share).  Each daemon runs as deployed (API and pool manager) with a
vCenter that takes connections and never answers, so that its manager
waits rather than retries: slowed a hundredfold, a manager whose vCenter
refuses at once would count as much as the checkouts.  What the
instructions counted while the daemon sat idle before the load, for as
long, is taken off.  A run takes a few minutes; the counts of one tree
move by about 3% between runs, with its batches.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, TypeVar

from .__main__ import (BIN, CONFIG, HERE, POOL, Processes, free_port, redis_cli,
                       script_calls, start_redis, stop, wait_port)
from .checkout import ROOT, base_ref, worktree

SECONDS = int(os.environ.get("BENCH_INSTRUCTIONS_SECONDS", "10"))
READY = 100_000
T = TypeVar("T")


def total(path: str) -> int | None:
    """The instructions a callgrind dump counted (None: not all written yet;
    its ``totals:`` line comes last)."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        counts = [int(line.split()[1]) for line in f
                  if line.startswith(("summary:", "totals:"))]
    return max(counts) if len(counts) == 2 else None


def callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def count(pid: int, out: str, dumps: int, run: Callable[[], T]) -> tuple[int, T]:
    """Instructions counted while ``run()`` runs (instrumentation on), and its result."""
    callgrind(pid, "-z")
    callgrind(pid, "-i", "on")
    result = run()
    callgrind(pid, "-i", "off")
    callgrind(pid, "-d")
    for _ in range(300):
        counted = total(f"{out}.{dumps}")
        if counted is not None:
            return counted, result
        time.sleep(0.1)
    raise SystemExit(f"callgrind wrote no dump {out}.{dumps}")


def silent_vcenter() -> tuple[int, socket.socket]:
    """A port that takes connections and never answers (kept open by the
    listening socket returned, and its backlog)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1024)
    return int(silent.getsockname()[1]), silent


def measure(name: str, tree: str | None, tmp: str, vcenter: int) -> str:
    processes: Processes = []
    try:
        redis_port, _ = start_redis(tmp, processes, READY)
        port = free_port()
        out = os.path.join(tmp, f"{name}.callgrind")
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={out}"]
        if tree is None:
            command = [*valgrind, sys.executable, "-m", "bench.bare", str(port)]
            env, cwd = dict(os.environ, PYTHONPATH=ROOT), ROOT
        else:
            config = os.path.join(tmp, f"{name}.yaml")
            with open(config, "w") as f:
                f.write(CONFIG.format(redis=redis_port, port=port, pool=POOL).replace(
                    "  server: 127.0.0.1\n", f"  server: 127.0.0.1\n  port: {vcenter}\n", 1))
            command = [*valgrind, os.path.join(BIN, "python"), os.path.join(BIN, "twistd"),
                       "-n", "--pidfile=", "--logfile", os.path.join(tmp, f"{name}.log"),
                       "vmpoolerd", "--config", config]
            env, cwd = dict(os.environ, PYTHONPATH=tree), tree
        server = subprocess.Popen(command, env=env, cwd=cwd, stderr=subprocess.DEVNULL)
        processes.append(server)
        for _ in range(10):  # start-up under callgrind takes a minute or more
            try:
                wait_port(port, server)
                break
            except SystemExit:
                if server.poll() is not None:
                    raise
        url = f"http://127.0.0.1:{port}/api/v1/vm/{POOL}"
        load = ["wrk", "-t1", "-c8", "-s", os.path.join(HERE, "post.lua"), url]
        subprocess.run([*load[:3], "-d3s", *load[3:]], check=True, capture_output=True)
        idle, _ = count(server.pid, out, 1, lambda: time.sleep(SECONDS))  # what it does unasked
        redis_cli(redis_port, "CONFIG", "RESETSTAT")
        busy, wrk_out = count(server.pid, out, 2, lambda: subprocess.run(
            [*load[:3], f"-d{SECONDS}s", *load[3:]], check=True, capture_output=True,
            text=True).stdout)
        requests = int(re.search(r"(\d+) requests in", wrk_out).group(1))  # type: ignore[union-attr]
        scripts = script_calls(redis_port)
        per_request = (busy - idle) / max(requests, 1) / 1000
        batches = f", {requests / scripts:.1f} checkouts per script call" if scripts else ""
        return (f"{name:5s} {per_request:7.1f} k instructions per checkout ({requests} "
                f"checkouts{batches}; idle {idle / SECONDS / 1e6:.1f} M/s subtracted)")
    finally:
        stop(processes)
        for path in glob.glob(os.path.join(tmp, "*.callgrind*")):
            os.remove(path)


def main() -> None:
    for tool in ("valgrind", "callgrind_control", "wrk", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install valgrind (and `make install`)")
    ref, why = base_ref()
    commit = subprocess.run(["git", "rev-parse", "--short", f"{ref}^{{commit}}"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="vmpoolerd-bench-instructions-")
    with contextlib.ExitStack() as cleanup:  # in turn: the vCenter, the base, tmp
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        base_tree = cleanup.enter_context(worktree(commit, os.path.join(tmp, "base")))
        vcenter, silent = silent_vcenter()
        cleanup.callback(silent.close)
        print(f"instructions per checkout (callgrind), wrk -t1 -c8 -d{SECONDS}s: bare handler, "
              f"working tree, {ref} ({commit}; {why})", flush=True)
        for name, tree in (("bare", None), ("tree", ROOT), ("base", base_tree)):
            print("  " + measure(name, tree, tmp, vcenter), flush=True)


if __name__ == "__main__":
    main()
