"""
A replicated Redis watched by Sentinels, from Debian's redis-server: a
master, a replica and three Sentinels on loopback ports, for the tests and
benchmarks of Note [Following the master] and Note [Replicated answers].
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from vmpoolerd.config import RedisConfig
from vmpoolerd.store.connection import connect

from .processes import free_port, stop_process
from .redis_server import RedisServer
from .waiting import until, wait_for

MASTER_NAME = "mymaster"


class SentinelServer:
    """One Sentinel watching the master on ``master_port``."""

    def __init__(self, master_port: int) -> None:
        self.dir = tempfile.mkdtemp(prefix="vmpoolerd-sentinel-")
        self.port = free_port()
        path = os.path.join(self.dir, "sentinel.conf")
        with open(path, "w") as f:  # Sentinel rewrites it: a file of its own
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                    f"sentinel failover-timeout {MASTER_NAME} 5000\n")
        self.process = subprocess.Popen(["redis-server", path, "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args],
                              capture_output=True, text=True, timeout=5).stdout

    def master_port(self) -> int | None:
        answer = self.cli("SENTINEL", "get-master-addr-by-name", MASTER_NAME).split()
        return int(answer[1]) if len(answer) == 2 else None

    def stop(self) -> None:
        stop_process(self.process)


class SentinelGroup:
    """A master, a replica and three Sentinels; ``stop`` ends them all."""

    def __init__(self) -> None:
        self.master = RedisServer()
        self.replica = RedisServer("--replicaof", "127.0.0.1", str(self.master.port))
        self.sentinels = [SentinelServer(self.master.port) for _ in range(3)]
        wait_for("the replica to follow the master", lambda: "master_link_status:up"
              in self.replica.cli("INFO", "replication")
              and "state=online" in self.master.cli("INFO", "replication"), seconds=20)
        wait_for("the Sentinels to know each other and the replica", self._watching,
                 seconds=20)

    def _watching(self) -> bool:
        for sentinel in self.sentinels:
            info = sentinel.cli("INFO", "sentinel")
            if "sentinels=3" not in info or "slaves=1" not in info:
                return False
        return True

    @property
    def config(self) -> RedisConfig:
        return RedisConfig(sentinels=tuple(("127.0.0.1", s.port) for s in self.sentinels),
                           master_name=MASTER_NAME)

    def yaml(self) -> str:
        """The ``:redis:`` section naming the Sentinels."""
        return (":redis:\n  sentinels:\n"
                + "".join(f"    - '127.0.0.1:{s.port}'\n" for s in self.sentinels)
                + f"  master_name: '{MASTER_NAME}'\n")

    def kill_master(self) -> None:
        """``kill -9`` the master: the Sentinels promote the replica."""
        assert self.master.process is not None
        self.master.process.kill()
        self.master.process.wait()

    def promoted(self) -> bool:
        """Whether the Sentinels now name the replica as the master."""
        return all(s.master_port() == self.replica.port for s in self.sentinels)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.master.stop()


def connected(group: SentinelGroup, test: TestCase) -> Any:
    """
    The daemon's connection to ``group`` (store.connection.connect), for
    ``test``: disconnected at its end, and the test kept until the
    Sentinel discoveries under way have ended.  txredisapi's discovery arms
    a timer on the global reactor that only a master found in time
    cancels (during a failover it may find none), and trial fails a test
    that leaves a timer behind.
    """
    redis = connect(group.config, 3.0)
    test.addCleanup(lambda: Deferred.fromCoroutine(until(
        "txredisapi's Sentinel discoveries to end", _no_discovery, seconds=30)))
    test.addCleanup(redis.disconnect)  # first: no discovery starts after it
    return redis


def _no_discovery() -> bool:
    timers = reactor.getDelayedCalls()  # type: ignore[attr-defined]
    return not any(getattr(getattr(call, "func", None), "__qualname__", "")
                   .startswith("Sentinel.discover_") for call in timers)
