"""Configurations and pool contents for tests."""

from __future__ import annotations

from typing import Any

import yaml

from vmpoolerd.api.auth import Identity
from vmpoolerd.config import Config, RedisConfig, parse_config

# The one user of StubDirectory.
USER, PASSWORD = "jdoe", "s3cret"


class StubDirectory:
    """An LDAP stand-in for API tests: one user, one password (LDAP itself
    is tested against slapd in test_auth and test_tokens)."""

    async def authenticate(self, user: str, password: str) -> Identity | None:
        return Identity(f"uid={USER},ou=people,dc=example,dc=com", USER) \
            if (user, password) == (USER, PASSWORD) else None


def config_text(redis: RedisConfig | None = None, auth: dict[str, Any] | None = None,
                tagfilter: dict[str, str] | None = None, **service: Any) -> str:
    raw: dict[str, Any] = {
        ":vsphere": {"server": "127.0.0.1", "username": "vmpooler", "password": "secret"},
        ":redis": {"server": redis.server, "port": redis.port} if redis else {},
        ":config": {"site_name": "test", "domain": "example.com", **service},
        ":pools": [
            {"name": "debian-7-i386", "alias": ["debian-7-32"], "template": "Templates/d32",
             "folder": "Pooled/d32", "datastore": "LocalDS_0", "size": 5},
            {"name": "debian-7-x86_64", "alias": ["debian-7-64", "debian"],
             "template": "Templates/d64", "folder": "Pooled/d64", "datastore": "LocalDS_0",
             "size": 5},
            {"name": "centos-7-x86_64", "alias": ["debian"], "template": "Templates/c7",
             "folder": "Pooled/c7", "datastore": "LocalDS_0", "size": 3},
        ],
    }
    if tagfilter is not None:
        raw[":tagfilter"] = tagfilter
    if auth is not None:
        raw[":auth"] = {"provider": "ldap", ":ldap": auth}
    return yaml.safe_dump(raw)


def make_config(redis: RedisConfig | None = None, auth: dict[str, Any] | None = None,
                tagfilter: dict[str, str] | None = None, **service: Any) -> Config:
    return parse_config(config_text(redis, auth, tagfilter, **service), {})


async def fill_ready(redis: Any, pool: str, count: int, prefix: str | None = None) -> list[str]:
    """Put ``count`` VMs in ``pool``'s ready set, as the pool manager would."""
    prefix = prefix or "".join(c for c in pool if c.isalnum())[:10]
    hosts = [f"{prefix}{i:05d}" for i in range(count)]
    for host in hosts:
        await redis.hset(f"vmpooler__vm__{host}", "template", pool)
    if hosts:
        await redis.sadd(f"vmpooler__ready__{pool}", hosts)
    return hosts


async def sets_of(redis: Any, config: Config) -> dict[str, set[str]]:
    """Every pool set's members, by key."""
    found = {}
    for pool in config.pool_names:
        for state in ("pending", "ready", "running", "completed", "discovered"):
            key = f"vmpooler__{state}__{pool}"
            found[key] = set(await redis.smembers(key))
    return found
