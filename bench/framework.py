"""
What Klein's resource costs (``python -m bench.framework``): the bare
Klein handler (bench/bare.py) against the same checkout answer from a
plain twisted.web Resource (``bench.bare --resource``), alternated under
the checkout benchmark's wrk load, BENCH_FRAMEWORK_ROUNDS rounds (5).
It prints each round's CPU time per request and the median ratio: the
share of a bare Klein request that the API's Routes (Note [Serving the
routes]) does not pay.  About a minute.
"""

from __future__ import annotations

import os
from statistics import median

from .__main__ import POOL, Processes, check_tools, start_bare, stop
from .checkout import wrk

ROUNDS = int(os.environ.get("BENCH_FRAMEWORK_ROUNDS", "5"))


def main() -> None:
    check_tools()
    processes: Processes = []
    try:
        servers = {"klein": start_bare(processes), "resource": start_bare(processes, "--resource")}
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        for n in range(1, ROUNDS + 1):
            for name, (port, process) in servers.items():
                run = wrk(port, process.pid, "POST", f"/api/v1/vm/{POOL}")
                if run.bad:
                    raise SystemExit(f"{name} answered {run.bad} requests with an error")
                cpu[name].append(run.cpu)
            print(f"  round {n}: Klein {cpu['klein'][-1]:.0f} us CPU per request, "
                  f"Resource {cpu['resource'][-1]:.0f} us", flush=True)
        ratio = median(r / k for r, k in zip(cpu["resource"], cpu["klein"]))
        print(f"framework: a plain Resource's CPU per request / the bare Klein handler's: "
              f"{ratio:.2f} (median of {ROUNDS} rounds)")
    finally:
        stop(processes)


if __name__ == "__main__":
    main()
