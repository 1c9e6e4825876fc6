"""
A real, private Redis server for the test run.

Started once per test process on a free port (``redis-server`` from
Debian's ``redis-server`` package), stopped at exit.  Tests empty it in
``setUp`` with :func:`fresh_redis`.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
from typing import Any

from twisted.trial.unittest import TestCase

from vmpoolerd.config import RedisConfig
from vmpoolerd.store import txredis_adapter
from vmpoolerd.store.connection import connect

from .processes import MissingPart, free_port, stop_process
from .waiting import wait_for


class RedisServer:
    def __init__(self, *options: str) -> None:
        if shutil.which("redis-server") is None:
            raise MissingPart("redis-server", "redis-server redis-tools")
        self.dir = tempfile.mkdtemp(prefix="vmpoolerd-redis-")
        self.port = free_port()
        self.options = options  # more redis-server arguments
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir, *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(f"redis-server to listen on port {self.port}", self._listening, seconds=10)

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def crash_and_restart(self) -> None:
        """``kill -9``, then start again from what is on disk (the last dump)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None
        self.start()

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], check=True,
                              capture_output=True, text=True).stdout

    @property
    def config(self) -> RedisConfig:
        return RedisConfig(server="127.0.0.1", port=self.port)


_server: RedisServer | None = None


def redis_server() -> RedisServer:
    """The test run's Redis server, started on first use."""
    global _server
    if _server is None:
        _server = RedisServer()
        atexit.register(_server.stop)
    if _server.process is None or _server.process.poll() is not None:
        _server.start()
    return _server


async def fresh_redis(test: TestCase, timeout: float = 3.0) -> Any:
    """An empty Redis and a connection to it, closed when ``test`` ends."""
    server = redis_server()
    server.cli("FLUSHALL")
    redis = connect(server.config, timeout)
    test.addCleanup(redis.disconnect)
    # Every connection of the pool up, so that none is still selecting its
    # database when the test ends (an unheard failure would land in a later test).
    await txredis_adapter.connected(redis)
    await redis.ping()
    return redis


async def private_redis(test: TestCase, timeout: float) -> tuple[RedisServer, Any]:
    """A Redis server of the test's own (to stop, or to configure), and a
    connection to it; both ended when ``test`` ends."""
    server = RedisServer()
    test.addCleanup(server.stop)
    redis = connect(server.config, timeout)
    test.addCleanup(redis.disconnect)
    await txredis_adapter.connected(redis)
    return server, redis
