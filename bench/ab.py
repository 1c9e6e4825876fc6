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
import signal
import subprocess
import sys
import tempfile
from statistics import median

from .__main__ import BIN, CONFIG, FILL, POOL, free_port, redis_cli, wait_port, wrk

READY = 1_500_000
ROUNDS = int(os.environ.get("ROUNDS", "6"))


def main(trees: list[str]) -> None:
    tmp = tempfile.mkdtemp(prefix="vmpoolerd-ab-")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        redis_port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind",
                                  "127.0.0.1", "--save", "", "--appendonly", "no",
                                  "--dir", tmp], stdout=subprocess.DEVNULL)
        processes.append(redis)
        wait_port(redis_port, redis)
        redis_cli(redis_port, "EVAL", FILL, "0", POOL, str(READY))
        servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
        port = free_port()
        servers["bare"] = (port, subprocess.Popen([sys.executable, "-m", "bench.bare",
                                                   str(port)]))
        for n, tree in enumerate(trees):
            port = free_port()
            config = os.path.join(tmp, f"{n}.yaml")
            with open(config, "w") as f:
                f.write(CONFIG.format(redis=redis_port, port=port, pool=POOL))
            servers[tree] = (port, subprocess.Popen(
                [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "--logfile",
                 os.path.join(tmp, f"{n}.log"), "vmpoolerd", "--config", config],
                env=dict(os.environ, PYTHONPATH=tree), cwd=tree))
        processes += [p for _, p in servers.values()]
        for port, process in servers.values():
            wait_port(port, process)
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
        for p in reversed(processes):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(15)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main([os.path.abspath(tree) for tree in sys.argv[1:]])
