"""
The benchmark that remembers (``python -m bench checkout``, first in
`make bench`): the working tree's checkout figures against a named git
ref's, in the same run, beside the bare Klein handler (bench/bare.py).

    BENCH_BASE=<ref> python -m bench checkout

The base is BENCH_BASE, else the most recent tag, else f1c830c (the end
of the first round of work).  It is checked out with ``git worktree add
--detach`` into a temp dir (removed afterwards) and its daemon runs from
there with ``PYTHONPATH`` pointing at it; the working tree's daemon runs
from this checkout.  Each daemon has a Redis of its own with a large ready
pool and a vCenter that does not answer (its pool manager idles, backed
off), so neither sees the other's keys.

Three loads, each wrk -t1 -c8: ``POST /api/v1/vm/<pool>`` (the checkout),
``GET /api/v1/vm/<host>`` and ``GET /api/v3/status`` (what dashboards and
scripts poll; a base without API v3 is asked ``/api/v1/status``, and the
output says so).  Each round runs, per load, the bare handler and then the
two daemons, the order of the two swapped every round; the figures are
medians over the rounds of each round's ratios: rate, p99 and the server
process's CPU time per request (user+sys from /proc/<pid>/stat) against
the bare handler's, and working tree / base; and for each daemon's
checkouts, the median of how many went to Redis in one script call (a
batch's round trip costs the daemon about as much as a whole request to
the bare handler, so the batches weigh on its CPU per checkout; under
callgrind, ``python -m bench.instructions``, they are larger).  The
machine is shared and noisy, so compare ratios from one run, never
absolute figures from two.

About a minute and a half with the defaults (BENCH_CHECKOUT_ROUNDS=3,
BENCH_CHECKOUT_SECONDS=4).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from statistics import median
from typing import Iterator

from .__main__ import (HERE, POOL, Processes, check_tools, cpu_seconds, redis_cli,
                       script_calls, start_bare, start_daemon, start_redis, stop)

ROOT = os.path.dirname(HERE)
FALLBACK_BASE = "f1c830c"
READY = 150_000
ROUNDS = int(os.environ.get("BENCH_CHECKOUT_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_CHECKOUT_SECONDS", "4"))
CONNECTIONS = 8
HOST = "b00000000000001"  # the first VM bench.__main__.FILL writes

#: (name, method, path): the three loads.
LOADS = (("checkout", "POST", f"/api/v1/vm/{POOL}"),
         ("GET vm", "GET", f"/api/v1/vm/{HOST}"),
         ("GET status", "GET", "/api/v3/status"))


@dataclass(frozen=True)
class Run:
    rate: float  # requests/s
    p99: float  # ms
    cpu: float  # server CPU us per request
    bad: int  # non-2xx answers
    batch: float | None = None  # checkouts per script call, when a daemon's Redis is known


def wrk(port: int, pid: int, method: str, path: str, seconds: int = SECONDS,
        redis_port: int | None = None) -> Run:
    """One wrk run against 127.0.0.1:``port``, measuring process ``pid``'s
    CPU (and, given its Redis, the checkouts per script call)."""
    script = ["-s", os.path.join(HERE, "post.lua")] if method == "POST" else []
    if redis_port is not None:
        redis_cli(redis_port, "CONFIG", "RESETSTAT")
    cpu = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", *script,
         f"http://127.0.0.1:{port}{path}"],
        check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(pid) - cpu
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    scripts = script_calls(redis_port) if redis_port is not None else 0
    return Run(rate, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit],
               1e6 * cpu / max(requests, 1), int(bad.group(1)) if bad else 0,
               requests / scripts if scripts else None)


def base_ref() -> tuple[str, str]:
    """The ref to compare with, and why that one."""
    if os.environ.get("BENCH_BASE"):
        return os.environ["BENCH_BASE"], "BENCH_BASE"
    tag = subprocess.run(["git", "describe", "--tags", "--abbrev=0"], cwd=ROOT,
                         capture_output=True, text=True)
    if tag.returncode == 0 and tag.stdout.strip():
        return tag.stdout.strip(), "the most recent tag"
    return FALLBACK_BASE, "no tag in this clone, so the default"


@contextlib.contextmanager
def worktree(ref: str, path: str) -> Iterator[str]:
    """``ref`` checked out at ``path`` (``git worktree add --detach``) while
    the block runs, removed after it."""
    subprocess.run(["git", "worktree", "add", "--detach", "-q", path, ref], cwd=ROOT,
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", path], cwd=ROOT)


def answers(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError):
        return False


def ratios(ours: list[Run], theirs: list[Run]) -> tuple[float, float, float]:
    """Median over rounds of rate, p99 and CPU ratios, ours / theirs."""
    return (median(a.rate / b.rate for a, b in zip(ours, theirs)),
            median(a.p99 / b.p99 for a, b in zip(ours, theirs)),
            median(a.cpu / b.cpu for a, b in zip(ours, theirs)))


def main() -> None:
    check_tools()
    ref, why = base_ref()
    commit = subprocess.run(["git", "rev-parse", "--short", f"{ref}^{{commit}}"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="vmpoolerd-bench-checkout-")
    processes: Processes = []
    with contextlib.ExitStack() as cleanup:  # in turn: the servers, the base, tmp
        cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        base_tree = cleanup.enter_context(worktree(commit, os.path.join(tmp, "base")))
        cleanup.callback(stop, processes)
        servers = {"bare": start_bare(processes)}
        redises: dict[str, int] = {}
        for name, tree in (("tree", ROOT), ("base", base_tree)):
            redises[name], _ = start_redis(tmp, processes, READY)
            servers[name] = start_daemon(tmp, redises[name], processes, name, tree)
        paths = {name: {load: path for load, _, path in LOADS} for name in servers}
        for name in ("tree", "base"):
            if not answers(servers[name][0], "/api/v3/status"):
                paths[name]["GET status"] = "/api/v1/status"
        print(f"checkout vs base: working tree ({head}) against {ref} ({commit}; {why}); "
              f"wrk -t1 -c{CONNECTIONS} -d{SECONDS}s, {ROUNDS} rounds alternating, "
              f"{READY} ready VMs per daemon's Redis, {os.cpu_count()} cores")
        for name in ("tree", "base"):
            if paths[name]["GET status"] != "/api/v3/status":
                print(f"  ({name} has no /api/v3/status: its GET status load asks "
                      f"{paths[name]['GET status']})")
        for name, (port, process) in servers.items():  # warm up: connections, caches
            wrk(port, process.pid, "POST", paths[name]["checkout"], 1)
        runs: dict[tuple[str, str], list[Run]] = {}
        for n in range(ROUNDS):
            order = ["bare", "tree", "base"] if n % 2 == 0 else ["bare", "base", "tree"]
            for load, method, _ in LOADS:
                for name in order:
                    port, process = servers[name]
                    runs.setdefault((load, name), []).append(wrk(
                        port, process.pid, method, paths[name][load],
                        redis_port=redises.get(name) if load == "checkout" else None))
                print(f"  round {n + 1} {load:10s}: " + " | ".join(
                    f"{name} {runs[load, name][-1].rate:5.0f}/s p99 "
                    f"{runs[load, name][-1].p99:5.2f} ms {runs[load, name][-1].cpu:4.0f} us CPU"
                    for name in ("bare", "tree", "base")), flush=True)
        report(runs)


def report(runs: dict[tuple[str, str], list[Run]]) -> None:
    """The medians of each round's ratios, per load."""
    for load, _, _ in LOADS:
        bad = {name: sum(r.bad for r in runs[load, name]) for name in ("bare", "tree", "base")}
        print(f"{load}:")
        for name in ("tree", "base"):
            rate, p99, cpu = ratios(runs[load, name], runs[load, "bare"])
            rates = " / ".join(f"{r.rate:.0f}" for r in runs[load, name])
            batches = [r.batch for r in runs[load, name] if r.batch is not None]
            per_call = f"; {median(batches):.1f} checkouts per script call" if batches else ""
            print(f"  {name}/bare: rate {rate:.2f}, p99 {p99:.2f}, CPU per request {cpu:.2f} "
                  f"({rates} /s; non-2xx {bad[name]}{per_call})")
        rate, p99, cpu = ratios(runs[load, "tree"], runs[load, "base"])
        print(f"  tree/base: rate {rate:.2f}, p99 {p99:.2f}, CPU per request {cpu:.2f}"
              + ("  (goal for the checkout: /bare rate >= 0.65, p99 <= 2, CPU <= 1.3; "
                 "tree/base rate >= 1.0)" if load == "checkout" else ""))


if __name__ == "__main__":
    main()
