"""
`make bench` (``python -m bench``; ``python -m bench checkout scale`` runs
only those parts, see PARTS): the working tree's checkouts against a git
ref's (bench/checkout.py), then, from this module's main(), checkout
throughput and latency against a bare Klein handler, then the pool
manager's figures (bench/manager.py), on-demand requests'
overhead (bench/ondemand.py), demand-driven sizing (bench/sizing.py) and
several daemons on one Redis (bench/several.py) and cost as pools grow
(bench/scale.py).

The servers run on this machine in the same run, under the same load:
wrk, 1 thread, 8 connections, POST /api/v1/vm/<pool>.  The daemon checks
out of a large ready pool in a real Redis; its vCenter does not answer, so
its pool manager idles, backed off (a failing pool is not woken by
checkouts).

The machine is shared and noisy, and its speed drifts over a minute: so
each round measures the bare handler, the same handler served by the
daemon's own site (a second reference: Note [Idle connections] in
vmpoolerd/api/site.py) and then the daemon, back to back, and the figures are
the median over the rounds of each round's ratios (rate, p99, and the
server process's CPU time per request), not ratios of figures taken
minutes apart.  The CPU ratio is the steadiest of the three: the rate
also moves with what else the machine runs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from statistics import median

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
POOL = "debian-7-i386"
READY = 400_000
DURATION = int(os.environ.get("BENCH_SECONDS", "6"))
ROUNDS = 5
CONNECTIONS = 8

FILL = """
for i = 1, tonumber(ARGV[2]) do
  local host = string.format('b%014d', i)
  redis.call('SADD', 'vmpooler__ready__' .. ARGV[1], host)
  redis.call('HSET', 'vmpooler__vm__' .. host, 'template', ARGV[1])
end
return redis.call('SCARD', 'vmpooler__ready__' .. ARGV[1])
"""

CONFIG = """
:vsphere:
  server: 127.0.0.1
  username: bench
  password: bench
:redis:
  server: 127.0.0.1
  port: {redis}
:config:
  host: 127.0.0.1
  port: {port}
  domain: example.com
:pools:
  - name: {pool}
    template: Templates/t
    folder: Pooled/p
    datastore: ds
    size: 5
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.args!r}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def script_calls(redis_port: int) -> int:
    """The Lua script calls (EVALSHA and EVAL) Redis has run since its
    statistics were last reset."""
    return sum(int(n) for n in re.findall(
        r"cmdstat_eval(?:sha)?:calls=(\d+)", redis_cli(redis_port, "INFO", "commandstats")))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, pid: int, api: str = "v1") -> tuple[float, float, int, float]:
    """Requests/s, p99 in ms, non-2xx answers, and the server's CPU us per
    request, checking out under ``/api/<api>``."""
    cpu = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency",
         "-s", os.path.join(HERE, "post.lua"), f"http://127.0.0.1:{port}/api/{api}/vm/{POOL}"],
        check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(pid) - cpu
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rate, p99, int(bad.group(1)) if bad else 0, 1e6 * cpu / max(requests, 1)


Processes = list[subprocess.Popen[bytes]]


def check_tools() -> None:
    for tool in ("wrk", "redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `make install`")


def start_redis(tmp: str, processes: Processes, ready: int) -> tuple[int, int]:
    """A Redis server in ``tmp`` with ``ready`` VMs in POOL: its port, and the count."""
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL)
    processes.append(redis)
    wait_port(port, redis)
    return port, int(redis_cli(port, "EVAL", FILL, "0", POOL, str(ready)))


def start_daemon(tmp: str, redis_port: int, processes: Processes, name: str = "daemon",
                 tree: str | None = None) -> tuple[int, subprocess.Popen[bytes]]:
    """The daemon on that Redis (from source ``tree`` if given), listening: its port."""
    port = free_port()
    config = os.path.join(tmp, f"{name}.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(redis=redis_port, port=port, pool=POOL))
    daemon = subprocess.Popen(
        [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "--logfile",
         os.path.join(tmp, f"{name}.log"), "vmpoolerd", "--config", config],
        env=None if tree is None else dict(os.environ, PYTHONPATH=tree), cwd=tree)
    processes.append(daemon)
    wait_port(port, daemon)
    return port, daemon


def start_bare(processes: Processes, *options: str) -> tuple[int, subprocess.Popen[bytes]]:
    """The bare handler (bench/bare.py), listening: its port."""
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "bench.bare", str(port), *options])
    processes.append(bare)
    wait_port(port, bare)
    return port, bare


def stop(processes: Processes) -> None:
    for p in reversed(processes):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    check_tools()
    tmp = tempfile.mkdtemp(prefix="vmpoolerd-bench-")
    processes: Processes = []
    try:
        redis_port, filled = start_redis(tmp, processes, READY)
        daemon_port, daemon = start_daemon(tmp, redis_port, processes)
        bare_port, bare = start_bare(processes)
        site_port, site = start_bare(processes, "--api-site")

        print(f"checkout benchmark: wrk -t1 -c{CONNECTIONS} -d{DURATION}s, "
              f"POST /api/v1/vm/{POOL}, {filled} ready VMs in Redis, {os.cpu_count()} cores")
        rate_ratios, p99_ratios, cpu_ratios, site_ratios, v3_ratios = [], [], [], [], []
        for n in range(1, ROUNDS + 1):
            bare_rate, bare_p99, bare_bad, bare_cpu = wrk(bare_port, bare.pid)
            site_rate, _, site_bad, _ = wrk(site_port, site.pid)
            rate, p99, bad, cpu = wrk(daemon_port, daemon.pid)
            v3_rate, _, v3_bad, _ = wrk(daemon_port, daemon.pid, "v3")
            rate_ratios.append(rate / bare_rate)
            p99_ratios.append(p99 / bare_p99)
            cpu_ratios.append(cpu / bare_cpu)
            site_ratios.append(rate / site_rate)
            v3_ratios.append(v3_rate / rate)
            print(f"  round {n}: bare {bare_rate:5.0f}/s p99 {bare_p99:4.2f} ms "
                  f"{bare_cpu:3.0f} us CPU | checkout {rate:5.0f}/s p99 {p99:4.2f} ms "
                  f"{cpu:3.0f} us CPU | ratios {rate_ratios[-1]:.2f} {p99_ratios[-1]:.2f} "
                  f"{cpu_ratios[-1]:.2f} | bare on the daemon's site {site_rate:5.0f}/s "
                  f"| v3 checkout {v3_rate:5.0f}/s | non-2xx {bare_bad} {site_bad} {bad} "
                  f"{v3_bad}")
        for what, ratios, goal in (("rate", rate_ratios, "goal >= 0.60"),
                                   ("p99", p99_ratios, "goal <= 2.00"),
                                   ("CPU per request", cpu_ratios, "server process, user+sys")):
            print(f"checkout/bare {what} ratio: {median(ratios):.2f} ({goal}; "
                  f"rounds {min(ratios):.2f}-{max(ratios):.2f})")
        print(f"checkout rate / the bare handler's on the daemon's own site (no per-request "
              f"idle timer): {median(site_ratios):.2f} "
              f"(rounds {min(site_ratios):.2f}-{max(site_ratios):.2f})")
        print(f"v3 checkout rate / v1's (FQDN hostnames): {median(v3_ratios):.2f} "
              f"(goal >= 0.95; rounds {min(v3_ratios):.2f}-{max(v3_ratios):.2f})")
        handed = READY - int(redis_cli(redis_port, "SCARD", f"vmpooler__ready__{POOL}"))
        running = int(redis_cli(redis_port, "SCARD", f"vmpooler__running__{POOL}"))
        print(f"VMs handed out: {handed}, now running: {running} "
              f"({'consistent' if handed == running else 'INCONSISTENT'})")
        print("for scale: vmpooler 2016 (Ruby, WEBrick) did 134 checkouts/s on this machine")
    finally:
        stop(processes)
        shutil.rmtree(tmp, ignore_errors=True)


#: ``python -m bench [PART ...]``: the parts, in `make bench`'s order.
PARTS = {
    "checkout": "bench.checkout",  # the working tree against a git ref (BENCH_BASE)
    "site": "bench",  # this module's main(): the daemon's own site, v3 against v1
    "framework": "bench.framework",  # what Klein's resource costs a bare handler
    "manager": "bench.manager",
    "ondemand": "bench.ondemand",
    "sizing": "bench.sizing",
    "several": "bench.several",  # takeover, crash recovery, Sentinel failover, WAIT
    "scale": "bench.scale",  # 200 pools against 1,000
}


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(PARTS)
    unknown = [part for part in wanted if part not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part {unknown}: python -m bench [{' | '.join(PARTS)} ...]")
    for part in wanted:
        if part == "site":
            main()
        else:  # each in a process of its own (the manager's own reactor, say)
            subprocess.run([sys.executable, "-m", PARTS[part]], check=True)
