"""
Compare the checkout CPU of daemons built from different source trees,
side by side on one Redis, against the bare handler:

    python -m bench.ab TREE [TREE ...]

Each TREE is a copy of the project (``git worktree add``, or an edited
copy); its daemon runs with ``PYTHONPATH=TREE``.  Rounds alternate over
the servers (bare first); printed per server: the median and best rate,
and the median and lowest server CPU time per request.  The lowest CPU is
the figure to compare: noise from the rest of the machine only adds to it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from statistics import median

from .__main__ import Processes, check_tools, start_bare, start_daemon, start_redis, stop, wrk

READY = 1_500_000
ROUNDS = int(os.environ.get("ROUNDS", "6"))


def main(trees: list[str]) -> None:
    check_tools()
    tmp = tempfile.mkdtemp(prefix="vmpoolerd-ab-")
    processes: Processes = []
    try:
        redis_port, _ = start_redis(tmp, processes, READY)
        servers = {"bare": start_bare(processes)}
        for n, tree in enumerate(trees):
            servers[tree] = start_daemon(tmp, redis_port, processes, f"daemon{n}", tree)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        for _ in range(ROUNDS):
            for name, (port, process) in servers.items():
                rate, _, _, cpu = wrk(port, process.pid)
                results[name].append((rate, cpu))
        for name, runs in results.items():
            rates, cpus = [r for r, _ in runs], [c for _, c in runs]
            print(f"{name:32s} rate median {median(rates):6.0f}/s best {max(rates):6.0f}/s   "
                  f"CPU per request median {median(cpus):5.1f} us lowest {min(cpus):5.1f} us")
    finally:
        stop(processes)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main([os.path.abspath(tree) for tree in sys.argv[1:]])
