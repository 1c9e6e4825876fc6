"""
Reading vmpooler's YAML into a frozen :class:`Config`.

The file is written vmpooler's way (``:pools:``, ``:config:`` ...; PyYAML
reads those as strings with colons) or plainly (``pools:``).  Everything is
checked here, once, at start-up: a bad value raises :class:`ConfigError`
naming the key path (``:pools:[1].size: must be a positive integer``), so
that the daemon exits before it listens.

Nothing here does I/O except :func:`read_config`; :func:`parse_config` is a
pure function of the text and the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

import yaml

DEFAULT_CONFIG_PATH = "etc/vmpooler.yaml"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a whole name: fullmatch
# Checkout answers put pools beside these keys (docs/compatibility.rst, "API v1").
RESERVED_NAMES = ("ok", "domain")
ENCRYPTIONS = ("start_tls", "simple_tls", "none")


Check = Callable[[str, Any], Any]


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


@dataclass(frozen=True)
class VsphereConfig:
    server: str
    username: str
    password: str = field(repr=False)
    port: int = 443
    insecure: bool = False
    datacenter: str | None = None


@dataclass(frozen=True)
class RedisConfig:
    server: str = "localhost"
    port: int = 6379
    password: str | None = field(default=None, repr=False)
    db: int = 0
    data_ttl_hours: float = 168.0


@dataclass(frozen=True)
class ServiceAccount:
    """The directory account that looks users up before their own bind."""

    user_dn: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class LdapConfig:
    host: str
    base: tuple[str, ...]
    port: int = 389
    user_object: tuple[str, ...] = ("uid",)
    encryption: str = "start_tls"
    ca_file: str | None = None
    service_account: ServiceAccount | None = None
    # Binds in flight at once; more attempts wait their turn (within their timeout).
    max_binds: int = 4


@dataclass(frozen=True)
class GraphiteConfig:
    server: str
    port: int = 2003
    prefix: str = "vmpooler"


@dataclass(frozen=True)
class PoolConfig:
    name: str
    template: str
    folder: str
    datastore: str
    size: int
    alias: tuple[str, ...] = ()
    resource_pool: str | None = None
    clone_target: str | None = None
    timeout_minutes: float | None = None
    ready_ttl_minutes: float | None = None
    provider: str = "vsphere"  # the name of its vCenter in Config.providers
    domain: str | None = None  # its dns_plugin's domain; None: :config: domain
    create_linked_clone: bool | None = None  # None: :config: create_linked_clones
    datacenter: str | None = None  # None: its provider's


@dataclass(frozen=True)
class ServiceConfig:
    """The ``:config:`` section."""

    site_name: str = "vmpooler"
    logfile: str | None = None
    port: int = 4567
    host: str = "0.0.0.0"
    task_limit: int = 10
    timeout_minutes: float = 15.0
    vm_checktime_minutes: float = 15.0
    vm_lifetime_hours: float = 24.0
    vm_lifetime_auth_hours: float = vm_lifetime_hours  # unless set: vm_lifetime's
    allowed_tags: tuple[str, ...] | None = None
    domain: str | None = None
    prefix: str = ""
    clone_target: str | None = None
    ready_ttl_minutes: float | None = None
    check_loop_delay_min: float = 5.0
    check_loop_delay_max: float = 60.0
    check_loop_delay_decay: float = 2.0
    ready_check_port: int = 22
    ready_check_address: str = "hostname"
    # The longest lifetime a PUT may give a VM, in hours: two weeks.
    max_lifetime_upper_limit_hours: int = 336
    experimental_features: bool = False
    max_ondemand_instances_per_request: int = 10
    ondemand_clone_limit: int = 10
    ondemand_request_ttl_minutes: float = 5.0
    create_linked_clones: bool = False
    purge_unconfigured_resources: bool = False
    resources_allowlist: tuple[str, ...] = ()
    max_request_vms: int = 100


@dataclass(frozen=True)
class Config:
    # Each vCenter by name; a 2016 file's :vsphere: is the one named "vsphere".
    providers: tuple[tuple[str, VsphereConfig], ...]
    redis: RedisConfig
    service: ServiceConfig
    pools: tuple[PoolConfig, ...]
    auth: LdapConfig | None = None
    graphite: GraphiteConfig | None = None
    tagfilter: tuple[tuple[str, re.Pattern[str]], ...] = ()

    @cached_property
    def pool_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.pools)

    @cached_property
    def _targets(self) -> dict[str, tuple[str, ...]]:
        targets: dict[str, tuple[str, ...]] = {}
        for p in self.pools:
            for alias in p.alias:
                targets[alias] = targets.get(alias, ()) + (p.name,)
        targets.update((p.name, (p.name,)) for p in self.pools)
        return targets

    def pools_for(self, name: str) -> tuple[str, ...]:
        """
        The pools a requested name may be served from: the pool itself, or
        every pool that has it as an alias.  Empty when the name is unknown.
        """
        return self._targets.get(name, ())

    def pool(self, name: str) -> PoolConfig:
        for p in self.pools:
            if p.name == name:
                return p
        raise KeyError(name)

    def provider(self, name: str) -> VsphereConfig:
        """The vCenter named ``name`` (KeyError if none is)."""
        return dict(self.providers)[name]

    def domain_for(self, pool: str) -> str | None:
        """The domain of the pool's VMs: its dns_plugin's, else :config: domain."""
        return self.pool(pool).domain or self.service.domain

    def linked_clones(self, pool: str) -> bool:
        """Whether the pool's clones are linked clones."""
        own = self.pool(pool).create_linked_clone
        return self.service.create_linked_clones if own is None else own


# --- reading values --------------------------------------------------------


class _Section:
    """A mapping with its key path, so every error can name the key."""

    def __init__(self, path: str, data: Any) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: must be a mapping")
        self.path = path
        self.data = data

    def where(self, key: str) -> str:
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def require(self, *keys: str) -> None:
        for key in keys:
            if not self.has(key):
                raise ConfigError(f"{self.where(key)}: is required")

    def read(self, check: Check, key: str) -> Any:
        """The value of ``key`` (set), checked."""
        return check(self.where(key), self.data[key])

    def fields(self, readers: Mapping[str, tuple[str, Check]]) -> dict[str, Any]:
        """
        The fields of a config class whose keys are set here, read and
        checked (``readers``: field name -> YAML key and check).  Absent
        keys are left out, so that the class's own defaults apply: each
        default is written once, on its class.
        """
        return {name: self.read(check, key) for name, (key, check) in readers.items()
                if self.has(key)}


def _string(where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: must be a string")
    text = str(value)
    if not text:
        raise ConfigError(f"{where}: must not be empty")
    return text


def _name(where: str, value: Any) -> str:
    text = _string(where, value)
    if not NAME_PATTERN.fullmatch(text) or len(text) > 200:
        raise ConfigError(
            f"{where}: must be letters, digits, '.', '_' or '-' "
            f"(at most 200), not {text!r}")
    return text


def _pool_name(where: str, value: Any) -> str:
    text = _name(where, value)
    if text in RESERVED_NAMES:
        raise ConfigError(f"{where}: {text!r} is reserved in API answers")
    return text


def _integer(minimum: int) -> Callable[[str, Any], int]:
    def check(where: str, value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ConfigError(f"{where}: must be {kind}")
        return value
    return check


_positive_int = _integer(1)
_port_or_zero = _integer(0)


def _port(where: str, value: Any) -> int:
    port = _positive_int(where, value)
    if port > 65535:
        raise ConfigError(f"{where}: must be a port number (1-65535)")
    return port


def _positive_number(where: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value != value or value == float("inf"):
        raise ConfigError(f"{where}: must be a positive number")
    return float(value)


def _boolean(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false")
    return value


def _one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(where: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(choices)}")
        return str(value)
    return check


def _string_list(item: Callable[[str, Any], str]) -> Callable[[str, Any], tuple[str, ...]]:
    def check(where: str, value: Any) -> tuple[str, ...]:
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConfigError(f"{where}: must not be empty")
        return tuple(item(f"{where}[{i}]", v) for i, v in enumerate(values))
    return check


# --- sections --------------------------------------------------------------


def _section(raw: Mapping[Any, Any], name: str) -> Any:
    """
    ``:name:`` as vmpooler writes it (PyYAML reads that as ``":name"``, the
    last colon being YAML's own), or plain ``name``.
    """
    for key in (f":{name}", f":{name}:", name):
        if key in raw:
            return raw[key]
    return None


def _vsphere(s: _Section, environ: Mapping[str, str]) -> VsphereConfig:
    s.require("server", "username")
    if not environ.get("VSPHERE_PASSWORD"):
        s.require("password")
    fields = s.fields({"server": ("server", _string), "username": ("username", _string),
                       "password": ("password", _string), "port": ("port", _port),
                       "insecure": ("insecure", _boolean),
                       "datacenter": ("datacenter", _string)})
    if environ.get("VSPHERE_PASSWORD"):
        fields["password"] = environ["VSPHERE_PASSWORD"]
    return VsphereConfig(**fields)


def _redis(s: _Section, environ: Mapping[str, str]) -> RedisConfig:
    fields = s.fields({"server": ("server", _string), "port": ("port", _port),
                       "password": ("password", _string), "db": ("db", _port_or_zero),
                       "data_ttl_hours": ("data_ttl", _positive_number)})
    if environ.get("REDIS_SERVER"):
        fields["server"] = environ["REDIS_SERVER"]
    if environ.get("REDIS_PORT"):
        fields["port"] = _port("$REDIS_PORT", environ["REDIS_PORT"])
    if environ.get("REDIS_PASSWORD"):
        fields["password"] = environ["REDIS_PASSWORD"]
    return RedisConfig(**fields)


def _auth(s: _Section) -> LdapConfig:
    s.require("provider")
    s.read(_one_of("ldap"), "provider")
    ldap = _Section(s.where(":ldap:"), _section(s.data, "ldap"))
    ldap.require("host", "base")
    return LdapConfig(**ldap.fields({
        "host": ("host", _string), "port": ("port", _port),
        "base": ("base", _string_list(_string)),
        "user_object": ("user_object", _string_list(_string)),
        "encryption": ("encryption", _one_of(*ENCRYPTIONS)),
        "ca_file": ("ca_file", _string),
        "service_account": ("service_account_hash", _service_account),
        "max_binds": ("max_binds", _positive_int)}))


def _service_account(where: str, value: Any) -> ServiceAccount:
    """``service_account_hash`` with ``user_dn`` and ``password`` (either spelling)."""
    account = _Section(where, {str(k).strip(":"): v for k, v in (value or {}).items()}
                       if isinstance(value, Mapping) else value)
    account.require("user_dn", "password")
    return ServiceAccount(**account.fields({"user_dn": ("user_dn", _string),
                                            "password": ("password", _string)}))


def _graphite(s: _Section) -> GraphiteConfig:
    s.require("server")
    return GraphiteConfig(**s.fields({"server": ("server", _string), "port": ("port", _port),
                                      "prefix": ("prefix", _string)}))


def _tagfilter(path: str, data: Any) -> tuple[tuple[str, re.Pattern[str]], ...]:
    s = _Section(path, data)
    filters = []
    for tag, pattern in s.data.items():
        where = s.where(str(tag))
        try:
            filters.append((str(tag), re.compile(_string(where, pattern))))
        except re.error as e:
            raise ConfigError(f"{where}: not a regular expression: {e}") from None
    return tuple(filters)


def _prefix(where: str, value: Any) -> str:
    return "" if value == "" else _name(where, value)


SERVICE_KEYS: Mapping[str, tuple[str, Check]] = {
    "site_name": ("site_name", _string), "logfile": ("logfile", _string),
    "port": ("port", _port), "host": ("host", _string),
    "task_limit": ("task_limit", _positive_int),
    "timeout_minutes": ("timeout", _positive_number),
    "vm_checktime_minutes": ("vm_checktime", _positive_number),
    "vm_lifetime_hours": ("vm_lifetime", _positive_number),
    "vm_lifetime_auth_hours": ("vm_lifetime_auth", _positive_number),
    "allowed_tags": ("allowed_tags", _string_list(_string)),
    "domain": ("domain", _string), "prefix": ("prefix", _prefix),
    "clone_target": ("clone_target", _string),
    "ready_ttl_minutes": ("ready_ttl", _positive_number),
    "check_loop_delay_min": ("check_loop_delay_min", _positive_number),
    "check_loop_delay_max": ("check_loop_delay_max", _positive_number),
    "check_loop_delay_decay": ("check_loop_delay_decay", _positive_number),
    "ready_check_port": ("ready_check_port", _port_or_zero),
    "ready_check_address": ("ready_check_address", _one_of("hostname", "ip")),
    "max_request_vms": ("max_request_vms", _positive_int),
    "max_lifetime_upper_limit_hours": ("max_lifetime_upper_limit", _positive_int),
}


def _service(s: _Section) -> ServiceConfig:
    fields = s.fields(SERVICE_KEYS)
    if "vm_lifetime_hours" in fields:
        fields.setdefault("vm_lifetime_auth_hours", fields["vm_lifetime_hours"])
    service = ServiceConfig(**fields)
    if service.check_loop_delay_max < service.check_loop_delay_min:
        raise ConfigError(
            f"{s.where('check_loop_delay_max')}: must not be less than check_loop_delay_min")
    if service.check_loop_delay_decay < 1:
        raise ConfigError(f"{s.where('check_loop_delay_decay')}: must be at least 1")
    return service


POOL_KEYS: Mapping[str, tuple[str, Check]] = {
    "name": ("name", _pool_name), "template": ("template", _string),
    "folder": ("folder", _string), "datastore": ("datastore", _string),
    "size": ("size", _positive_int), "alias": ("alias", _string_list(_pool_name)),
    "resource_pool": ("pool", _string), "clone_target": ("clone_target", _string),
    "timeout_minutes": ("timeout", _positive_number),
    "ready_ttl_minutes": ("ready_ttl", _positive_number),
}


def _pool(s: _Section) -> PoolConfig:
    s.require("name", "template", "folder", "datastore", "size")
    return PoolConfig(**s.fields(POOL_KEYS))


def _pools(path: str, data: Any) -> tuple[PoolConfig, ...]:
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: must be a list of at least one pool")
    pools = tuple(_pool(_Section(f"{path}[{i}]", p)) for i, p in enumerate(data))
    names: set[str] = set()
    for i, p in enumerate(pools):
        if p.name in names:
            raise ConfigError(f"{path}[{i}].name: {p.name!r} is used twice")
        names.add(p.name)
    for i, p in enumerate(pools):
        for a in p.alias:
            if a in names:
                raise ConfigError(f"{path}[{i}].alias: {a!r} is already a pool's name")
    # Each maintainer takes a VM of its folder that its pool does not know
    # for a stranger, and destroys it: a shared folder would lose VMs.
    # vSphere paths are read without their outer slashes (vsphere.split_path).
    folders: dict[str, str] = {}
    for i, p in enumerate(pools):
        folder = p.folder.strip("/")
        if folder in folders:
            raise ConfigError(f"{path}[{i}].folder: {p.folder!r} is already the folder "
                              f"of pool {folders[folder]!r}")
        folders[folder] = p.name
    return pools


def parse_config(text: str, environ: Mapping[str, str] | None = None) -> Config:
    """Parse and check a configuration; raise :class:`ConfigError`."""
    environ = environ or {}
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError("the configuration must be a YAML mapping of sections")

    def section(name: str) -> _Section:
        return _Section(f":{name}:", _section(raw, name))

    if _section(raw, "vsphere") is None:
        raise ConfigError(":vsphere:: is required")
    auth = _section(raw, "auth")
    graphite = _section(raw, "graphite")
    return Config(
        providers=(("vsphere", _vsphere(section("vsphere"), environ)),),
        redis=_redis(section("redis"), environ),
        service=_service(section("config")),
        pools=_pools(":pools:", _section(raw, "pools")),
        auth=_auth(section("auth")) if auth is not None else None,
        graphite=_graphite(section("graphite")) if graphite is not None else None,
        tagfilter=_tagfilter(":tagfilter:", _section(raw, "tagfilter")),
    )


def config_path(option: str | None, environ: Mapping[str, str]) -> str:
    """``--config``, else ``$VMPOOLER_CONFIG``, else ``etc/vmpooler.yaml``."""
    return option or environ.get("VMPOOLER_CONFIG") or DEFAULT_CONFIG_PATH


def read_config(path: str, environ: Mapping[str, str]) -> Config:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read: {e.strerror}") from None
    return parse_config(text, environ)


__all__: Sequence[str] = (
    "Config", "ConfigError", "GraphiteConfig", "LdapConfig", "PoolConfig", "ServiceAccount",
    "RedisConfig", "ServiceConfig", "VsphereConfig", "config_path",
    "parse_config", "read_config",
)
