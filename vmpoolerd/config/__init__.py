"""
vmpooler's configuration, read into a frozen :class:`Config`.

Where each part lives:

- ``sources``: where the configuration comes from (``--config``,
  ``$VMPOOLER_CONFIG`` text, ``$VMPOOLER_CONFIG_FILE``, the default path)
  and the ``extra_config`` files;
- ``merge``: how extra files merge in (3.x's deep_merge);
- ``environment``: every variable 3.x reads, with its key and type;
- ``layouts``: section spellings, and which generation a file is;
- ``defaults``: each generation's defaults;
- ``providers``, ``pools``, ``validation``: each section's keys, checked;
- ``records``: the frozen records the rest of the daemon is given;
- ``values``: the checks of single values.

Everything is checked once, at start-up: a bad value raises
:class:`ConfigError` naming the key path (``:pools:[1].size: must be an
integer >= 0``), so that the daemon exits before it listens.  A key nobody
reads lands in :attr:`Config.warnings` with its path.

Nothing here does I/O but the reading of files (``sources``); pools kept
in Redis are fetched by the wiring (``vmpoolerd/tap.py``) and handed to
:func:`load_config`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .records import (
    Config, ConfigError, DummyConfig, GraphiteConfig, LdapConfig, PoolConfig,
    PrometheusConfig, PurgeConfig, RateLimit, RedisConfig, ServiceAccount, ServiceConfig,
    StatsdConfig, VsphereConfig)
from .sources import (
    DEFAULT_CONFIG_PATH, Source, config_path, find_source, load_yaml, merge_extra_files,
    pool_from_redis, read_source, read_text)
from .validation import FetchPools, check


def parse_config(text: str, environ: Mapping[str, str] | None = None,
                 path: str | None = None,
                 redis_pools: Sequence[Mapping[str, Any]] | None = None) -> Config:
    """
    Parse and check a configuration's text; raise :class:`ConfigError`.
    ``path`` is the file ``text`` came from (its ``extra_config`` files are
    read; None: they are not, as for ``$VMPOOLER_CONFIG``); ``redis_pools``
    stands for the pools in Redis (:func:`pool_from_redis`).
    """
    environ = environ or {}
    raw = load_yaml(text)
    if path is not None:
        raw = merge_extra_files(raw, path, environ)
    return check(raw, environ, None if redis_pools is None else lambda _: redis_pools)


def read_config(path: str, environ: Mapping[str, str]) -> Config:
    """The configuration in the file at ``path`` (with its extra files)."""
    return parse_config(read_text(path), environ, path)


def load_config(source: Source, environ: Mapping[str, str],
                fetch_pools: FetchPools | None = None) -> Config:
    """
    The configuration from ``source`` (see :func:`find_source`);
    ``fetch_pools`` reads 3.x's pools from Redis when it has no ``:pools:``.
    """
    return check(read_source(source, environ), environ, fetch_pools, source.warnings)


__all__: Sequence[str] = (
    "Config", "ConfigError", "DEFAULT_CONFIG_PATH", "DummyConfig", "GraphiteConfig",
    "LdapConfig", "PoolConfig", "PrometheusConfig", "PurgeConfig", "RateLimit",
    "RedisConfig", "ServiceAccount", "ServiceConfig", "Source", "StatsdConfig",
    "VsphereConfig", "config_path", "find_source", "load_config", "parse_config",
    "pool_from_redis", "read_config",
)
