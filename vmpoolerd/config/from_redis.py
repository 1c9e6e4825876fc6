"""
vmpooler 3.x's pools kept in Redis, read for a configuration without
``:pools:`` (3.x's own fallback): the set ``vmpooler__pools`` names them,
and each one's hash ``vmpooler__pool__<name>`` holds its entry.

Read once at start-up, before the reactor runs: a plain socket bounded by
a timeout, so that a Redis that does not answer is a start-up error, not a
hang.  What a pool's fields mean is :func:`pool_from_redis`'s.
"""

from __future__ import annotations

import socket
from typing import Any

import hiredis

from ..store import keys
from .records import ConfigError, RedisConfig
from .sources import pool_from_redis


def _command(sock: socket.socket, reader: Any, *args: str) -> Any:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    sock.sendall(b"".join(parts))
    while True:
        reply = reader.gets()
        if reply is not False:
            if isinstance(reply, hiredis.ReplyError):
                raise ConfigError(f"Redis refused {args[0]}: {reply}")
            return reply
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("the connection was closed")
        reader.feed(chunk)


def _master(redis: RedisConfig, timeout: float) -> tuple[str, int]:
    """The master's address: ``server:port``, or as the first Sentinel that answers says."""
    if not redis.sentinels:
        return redis.server, redis.port
    for host, port in redis.sentinels:
        try:
            with socket.create_connection((host, port), timeout) as sock:
                reply = _command(sock, hiredis.Reader(encoding="utf-8"), "SENTINEL",
                                 "get-master-addr-by-name", redis.master_name)
            if reply:
                return reply[0], int(reply[1])
        except OSError:
            continue
    raise OSError("no Sentinel named the master")


def fetch_pools(redis: RedisConfig, timeout: float) -> list[dict[str, Any]]:
    """3.x's pools in Redis, as a file would write them; ConfigError if Redis cannot be read."""
    try:
        address = _master(redis, timeout)
        with socket.create_connection(address, timeout) as sock:
            sock.settimeout(timeout)
            reader = hiredis.Reader(encoding="utf-8")
            if redis.password is not None:
                _command(sock, reader, "AUTH", redis.password)
            if redis.db:
                _command(sock, reader, "SELECT", str(redis.db))
            names = sorted(_command(sock, reader, "SMEMBERS", keys.POOLS))
            pools = []
            for name in names:
                flat = _command(sock, reader, "HGETALL", keys.pool_config(name))
                fields = dict(zip(flat[::2], flat[1::2]))
                pools.append(pool_from_redis({"name": name, **fields}))
            return pools
    except OSError as e:
        raise ConfigError(
            f":pools:: the configuration has none, so they are read from Redis "
            f"({redis.where}), which cannot be reached: {e.strerror or e}") from None
