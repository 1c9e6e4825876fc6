"""
The environment variables vmpooler 3.x reads (``lib/vmpooler.rb``), each
with its section, key and type; set, each overrides the file's key.

They are applied to the configuration as read (after ``extra_config`` is
merged), before it is checked: a value the variable gives is then checked
as the file's would be, and its error names both the key and the variable
(``:config:.task_limit (from $TASK_LIMIT): must be a positive integer``).

Differences from 3.x, on purpose (``docs/compatibility.rst``,
"Environment"): an empty variable counts as unset; a value of the wrong
type stops the daemon, naming the variable (3.x ignores some, crashes on
others); a switch is ``true`` or ``false`` in any case, and ``false`` means
false (3.x takes any text in ``EXPERIMENTAL_FEATURES`` or
``PURGE_UNCONFIGURED_RESOURCES`` for true).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .layouts import spelling
from .records import ConfigError

# ``integer`` for counts and ports, ``number`` for times (3.x: integers;
# vmpoolerd's file takes fractions there, and so does its environment).
Convert = Callable[[str, str], Any]


def _integer(variable: str, text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text.strip()):
        raise ConfigError(f"${variable}: must be a whole number")
    return int(text)


def _number(variable: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"${variable}: must be a number") from None


def _switch(variable: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ConfigError(f"${variable}: must be true or false")
    return lowered == "true"


def _text(variable: str, text: str) -> str:
    return text


def _json(variable: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError(f"${variable}: must be JSON (a number or a list)") from None


@dataclass(frozen=True)
class Variable:
    name: str
    section: tuple[str, ...]  # ("config",), ("auth", "ldap") ...
    key: str
    convert: Convert
    # Whether setting it creates its section (else it applies only to a section the file has).
    creates: bool = False


CONFIG, REDIS = ("config",), ("redis",)
STATSD, GRAPHITE, TRACING = ("statsd",), ("graphite",), ("tracing",)
AUTH, LDAP = ("auth",), ("auth", "ldap")

VARIABLES: tuple[Variable, ...] = (
    Variable("TASK_LIMIT", CONFIG, "task_limit", _integer),
    Variable("ONDEMAND_CLONE_LIMIT", CONFIG, "ondemand_clone_limit", _integer),
    Variable("MAX_ONDEMAND_INSTANCES_PER_REQUEST", CONFIG,
             "max_ondemand_instances_per_request", _integer),
    Variable("MIGRATION_LIMIT", CONFIG, "migration_limit", _integer),
    Variable("VM_CHECKTIME", CONFIG, "vm_checktime", _number),
    Variable("VM_LIFETIME", CONFIG, "vm_lifetime", _number),
    Variable("MAX_LIFETIME_UPPER_LIMIT", CONFIG, "max_lifetime_upper_limit", _integer),
    Variable("READY_TTL", CONFIG, "ready_ttl", _number),
    Variable("ONDEMAND_REQUEST_TTL", CONFIG, "ondemand_request_ttl", _number),
    Variable("PREFIX", CONFIG, "prefix", _text),
    Variable("LOGFILE", CONFIG, "logfile", _text),
    Variable("SITE_NAME", CONFIG, "site_name", _text),
    Variable("CLONE_TARGET", CONFIG, "clone_target", _text),
    Variable("TIMEOUT", CONFIG, "timeout", _number),
    Variable("TIMEOUT_NOTIFICATION", CONFIG, "timeout_notification", _integer),
    Variable("VM_LIFETIME_AUTH", CONFIG, "vm_lifetime_auth", _number),
    Variable("MAX_TRIES", CONFIG, "max_tries", _integer),
    Variable("RETRY_FACTOR", CONFIG, "retry_factor", _integer),
    Variable("CREATE_FOLDERS", CONFIG, "create_folders", _switch),
    Variable("EXPERIMENTAL_FEATURES", CONFIG, "experimental_features", _switch),
    Variable("USAGE_STATS", CONFIG, "usage_stats", _text),
    Variable("REQUEST_LOGGER", CONFIG, "request_logger", _text),
    Variable("CREATE_TEMPLATE_DELTA_DISKS", CONFIG, "create_template_delta_disks", _text),
    Variable("PURGE_UNCONFIGURED_RESOURCES", CONFIG, "purge_unconfigured_resources", _switch),
    # The older name; as in 3.x, it wins over the newer one when both are set.
    Variable("PURGE_UNCONFIGURED_FOLDERS", CONFIG, "purge_unconfigured_resources", _switch),
    Variable("CREATE_LINKED_CLONES", CONFIG, "create_linked_clones", _switch),
    Variable("REDIS_SERVER", REDIS, "server", _text, creates=True),
    Variable("REDIS_PORT", REDIS, "port", _integer, creates=True),
    Variable("REDIS_PASSWORD", REDIS, "password", _text, creates=True),
    Variable("REDIS_DATA_TTL", REDIS, "data_ttl", _number, creates=True),
    Variable("REDIS_CONNECTION_POOL_SIZE", REDIS, "connection_pool_size", _integer,
             creates=True),
    Variable("REDIS_CONNECTION_POOL_TIMEOUT", REDIS, "connection_pool_timeout", _integer,
             creates=True),
    Variable("REDIS_RECONNECT_ATTEMPTS", REDIS, "reconnect_attempts", _json, creates=True),
    Variable("STATSD_SERVER", STATSD, "server", _text, creates=True),
    Variable("STATSD_PREFIX", STATSD, "prefix", _text),
    Variable("STATSD_PORT", STATSD, "port", _integer),
    Variable("GRAPHITE_SERVER", GRAPHITE, "server", _text, creates=True),
    Variable("GRAPHITE_PREFIX", GRAPHITE, "prefix", _text),
    Variable("GRAPHITE_PORT", GRAPHITE, "port", _integer),
    Variable("VMPOOLER_TRACING_ENABLED", TRACING, "enabled", _text, creates=True),
    Variable("VMPOOLER_TRACING_JAEGER_HOST", TRACING, "jaeger_host", _text, creates=True),
    Variable("AUTH_PROVIDER", AUTH, "provider", _text, creates=True),
    Variable("LDAP_HOST", LDAP, "host", _text),
    Variable("LDAP_PORT", LDAP, "port", _integer),
    Variable("LDAP_BASE", LDAP, "base", _text),
    Variable("LDAP_USER_OBJECT", LDAP, "user_object", _text),
)
# Read by vmpoolerd alone: the 2016 :vsphere:'s password (see providers.legacy_vsphere).
VSPHERE_PASSWORD = "VSPHERE_PASSWORD"


@dataclass(frozen=True)
class Applied:
    """The configuration with the environment's values in it."""

    data: dict[Any, Any]
    # (section path, key) -> "$NAME", for errors (see Section.where).
    origins: dict[tuple[str, str], str]
    warnings: tuple[str, ...]


def section_path(section: tuple[str, ...]) -> str:
    return ".".join(f":{name}:" for name in section)


def apply_environment(data: Mapping[Any, Any], environ: Mapping[str, str]) -> Applied:
    """
    ``data`` (a configuration as read) with every variable that
    ``environ`` sets written into its key, typed; each variable read once,
    in 3.x's order (so the later of two for one key wins, as in 3.x).
    """
    root = _copy(data)
    origins: dict[tuple[str, str], str] = {}
    warnings: list[str] = []
    for variable in VARIABLES:
        text = environ.get(variable.name)
        if not text:
            continue
        value = variable.convert(variable.name, text)
        # :config: always exists in 3.x (its defaults are written into it).
        section = _section(root, variable.section, variable.creates or variable.section == CONFIG)
        if section is None:
            warnings.append(f"${variable.name}: ignored: the file has no "
                            f"{section_path(variable.section)} section for it to change")
            continue
        section[variable.key] = value
        origins[(section_path(variable.section), variable.key)] = f"${variable.name}"
    if environ.get("PURGE_UNCONFIGURED_FOLDERS"):
        warnings.append("$PURGE_UNCONFIGURED_FOLDERS: an older name (3.x deprecates it): "
                        "use $PURGE_UNCONFIGURED_RESOURCES")
    return Applied(root, origins, tuple(warnings))


def _copy(data: Any) -> Any:
    """A copy of the mappings in ``data`` (lists and values shared), to write into."""
    return {k: _copy(v) for k, v in data.items()} if isinstance(data, Mapping) else data


def _section(root: dict[Any, Any], names: tuple[str, ...], creates: bool
             ) -> dict[Any, Any] | None:
    """The (copied) section at ``names``, created when ``creates``; None if absent."""
    here = root
    for name in names:
        key = spelling(here, name)
        if key is None or not isinstance(here[key], dict):
            if not creates or (key is not None and here[key] is not None):
                return None
            key = key or f":{name}"
            here[key] = {}
        here = here[key]
    return here
