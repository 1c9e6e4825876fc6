"""
Cost as the pools grow (``python -m bench scale``, part of `make bench`):
the working tree's daemon (twistd, as deployed) against the vSphere
simulator, with 200 pools of 3 VMs and then 1,000 pools of 3
(``check_loop_delay_min`` 5, ``max`` 60, ``task_limit`` 20, no readiness
probe; the simulator clones and boots at once), each with a Redis and a
simulator of its own.  Printed for each:

- fill time: from the daemon's start to every pool holding 3 ready VMs
  (polled once a second); capped by BENCH_SCALE_FILL_TIMEOUT (default
  240 s), and the output says when the fill did not finish in it;
- steady idle CPU: the daemon process's user+sys time over
  BENCH_SCALE_IDLE seconds (default 30) after the fill, as a fraction of
  one core, with nothing asking it anything;
- ``GET /api/v3/status`` p50 and p95 over 40 requests, one at a time,
  0.25 s apart.

and the Redis commands per second at idle, by name.  With
BENCH_SCALE_PYSPY=<py-spy's binary>, py-spy profiles the idle daemon and
its /status answers into /tmp/scale-idle-<pools>.txt and
/tmp/scale-status-<pools>.txt (``-f raw``: collapsed stacks).

Then the ratios 1000/200: the goal (issue 20) is fill time and CPU within
5x (the pools are 5x) and /status p95 at most 100 ms.  The counts of
pools are BENCH_SCALE_POOLS (default "200,1000").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from statistics import median, quantiles

import yaml

from tests.vcsim_server import inventory, start_vcsim

from .__main__ import (BIN, Processes, check_tools, cpu_seconds, free_port, redis_cli, stop,
                       wait_port)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 3
FILL_TIMEOUT = float(os.environ.get("BENCH_SCALE_FILL_TIMEOUT", "240"))
IDLE = float(os.environ.get("BENCH_SCALE_IDLE", "30"))
STATUS_REQUESTS = 40
PYSPY = os.environ.get("BENCH_SCALE_PYSPY")  # a profile in /tmp/scale-*.txt (py-spy -f raw)
COUNTS = [int(n) for n in os.environ.get("BENCH_SCALE_POOLS", "200,1000").split(",")]

#: How many pools hold ARGV[2] ready VMs, of pools p0..p<ARGV[1]-1>.
FULL = """
local full = 0
for i = 0, tonumber(ARGV[1]) - 1 do
  if redis.call('SCARD', 'vmpooler__ready__p' .. i) >= tonumber(ARGV[2]) then full = full + 1 end
end
return full
"""


@dataclass(frozen=True)
class Figures:
    pools: int
    fill: float  # seconds (FILL_TIMEOUT if unfinished)
    filled: bool
    full_pools: int
    fill_cpu: float  # the daemon's CPU while it filled, fraction of one core
    fill_vcsim_cpu: float  # the simulator's, likewise
    cpu: float  # fraction of one core
    status_p50: float  # ms
    status_p95: float  # ms
    commands: dict[str, float]  # Redis commands per second at idle, by name


def config(pools: int, redis_port: int, port: int, vcsim_port: int) -> str:
    return yaml.safe_dump({
        ":vsphere": {"server": "127.0.0.1", "port": vcsim_port, "insecure": True,
                     "username": "u", "password": "p"},
        ":redis": {"server": "127.0.0.1", "port": redis_port},
        ":config": {"host": "127.0.0.1", "port": port, "domain": "example.com",
                    "check_loop_delay_min": 5, "check_loop_delay_max": 60,
                    "task_limit": 20, "ready_check_port": 0},
        ":pools": [{"name": f"p{i}", "template": "Templates/centos-7-plain",
                    "folder": f"Pools/p{i}", "datastore": "LocalDS_0", "size": SIZE}
                   for i in range(pools)],
    })


def command_rates(redis_port: int, seconds: float) -> dict[str, float]:
    """Redis commands per second since the last CONFIG RESETSTAT, by name
    (those scripts run under their own names too)."""
    rates = {}
    for line in redis_cli(redis_port, "INFO", "commandstats").splitlines():
        match = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if match and match.group(1) not in ("config|resetstat", "info"):
            rates[match.group(1).upper()] = int(match.group(2)) / seconds
    return dict(sorted(rates.items(), key=lambda item: -item[1]))


def py_spy(pid: int, out: str, seconds: float) -> subprocess.Popen[bytes] | None:
    """With BENCH_SCALE_PYSPY (py-spy's binary), a profile of ``pid`` into ``out``."""
    if not PYSPY:
        return None
    return subprocess.Popen([PYSPY, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100",
                             "-f", "raw", "-o", out, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def status_latencies(port: int) -> list[float]:
    """Milliseconds each of STATUS_REQUESTS sequential GET /api/v3/status took."""
    latencies = []
    for _ in range(STATUS_REQUESTS):
        start = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v3/status", timeout=30) as r:
            r.read()
        latencies.append(1000 * (time.monotonic() - start))
        time.sleep(0.25)
    return latencies


def measure(pools: int) -> Figures:
    tmp = tempfile.mkdtemp(prefix="vmpoolerd-bench-scale-")
    processes: Processes = []
    vcsim = start_vcsim(inventory(folders=[f"Pools/p{i}" for i in range(pools)]),
                        clone_delay_ms=0, boot_delay_ms=0)
    try:
        redis_port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind",
                                  "127.0.0.1", "--save", "", "--appendonly", "no",
                                  "--dir", tmp], stdout=subprocess.DEVNULL)
        processes.append(redis)
        wait_port(redis_port, redis)
        port = free_port()
        path = os.path.join(tmp, "scale.yaml")
        with open(path, "w") as f:
            f.write(config(pools, redis_port, port, vcsim.port))
        start = time.monotonic()
        daemon = subprocess.Popen(
            [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "--logfile",
             os.path.join(tmp, "daemon.log"), "vmpoolerd", "--config", path],
            env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT)
        processes.append(daemon)
        wait_port(port, daemon)
        daemon_before, vcsim_before = cpu_seconds(daemon.pid), cpu_seconds(vcsim.process.pid)
        full = 0
        while time.monotonic() - start < FILL_TIMEOUT:
            full = int(redis_cli(redis_port, "EVAL", FULL, "0", str(pools), str(SIZE)))
            if full == pools:
                break
            time.sleep(1)
        fill = time.monotonic() - start
        fill_cpu = (cpu_seconds(daemon.pid) - daemon_before) / fill
        fill_vcsim_cpu = (cpu_seconds(vcsim.process.pid) - vcsim_before) / fill
        time.sleep(2)  # the last clones' bookkeeping
        redis_cli(redis_port, "CONFIG", "RESETSTAT")
        spy = py_spy(daemon.pid, f"/tmp/scale-idle-{pools}.txt", IDLE)
        before = cpu_seconds(daemon.pid)
        time.sleep(IDLE)
        cpu = (cpu_seconds(daemon.pid) - before) / IDLE
        commands = command_rates(redis_port, IDLE)
        if spy:
            spy.wait()
        spy = py_spy(daemon.pid, f"/tmp/scale-status-{pools}.txt", STATUS_REQUESTS * 0.3)
        latencies = status_latencies(port)
        if spy:
            spy.wait()
        return Figures(pools, fill, full == pools, full, fill_cpu, fill_vcsim_cpu, cpu,
                       median(latencies),
                       quantiles(latencies, n=20)[-1], commands)
    finally:
        stop(processes)
        vcsim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    check_tools()
    print(f"scale: pools of {SIZE} against the simulator (clones and boots at once), "
          f"check_loop_delay_min 5, max 60, task_limit 20; fill capped at {FILL_TIMEOUT:.0f} s, "
          f"idle CPU over {IDLE:.0f} s, /status p95 of {STATUS_REQUESTS}", flush=True)
    results = []
    for pools in COUNTS:
        r = measure(pools)
        results.append(r)
        fill = (f"filled in {r.fill:5.1f} s" if r.filled else
                f"NOT filled in {r.fill:.0f} s ({r.full_pools}/{pools} pools full; "
                f"the CPU below is not idle)")
        print(f"  {pools:5d} pools: {fill}, idle CPU {100 * r.cpu:5.1f}% of a core, "
              f"/status p50 {r.status_p50:6.1f} ms p95 {r.status_p95:6.1f} ms", flush=True)
        print(f"         while filling: the daemon {100 * r.fill_cpu:.0f}% of a core, the "
              f"simulator {100 * r.fill_vcsim_cpu:.0f}%")
        print(f"         Redis commands/s at idle: {sum(r.commands.values()):.0f} (" +
              ", ".join(f"{name} {rate:.1f}" for name, rate in list(r.commands.items())[:8]) + ")")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        times = large.pools / small.pools
        print(f"scale ratios {large.pools}/{small.pools} ({times:.0f}x the pools): "
              f"fill time {large.fill / small.fill:.1f}"
              f"{'' if large.filled else ' (at least: the fill did not finish)'}, "
              f"idle CPU {large.cpu / max(small.cpu, 1e-9):.1f}, "
              f"/status p95 {large.status_p95 / small.status_p95:.1f} "
              f"(goals: fill and CPU <= 5, /status p95 <= 100 ms: "
              f"{large.status_p95:.0f} ms)")


if __name__ == "__main__":
    if sys.argv[1:]:
        raise SystemExit(__doc__)
    main()
