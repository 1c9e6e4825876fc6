"""
Reading vmpooler's YAML into a frozen :class:`Config`.

The file is written vmpooler's way (``:pools:``, ``:config:`` ...; PyYAML
reads those as strings with colons) or plainly (``pools:``).  Everything is
checked here, once, at start-up: a bad value raises :class:`ConfigError`
naming the key path (``:pools:[1].size: must be a positive integer``), so
that the daemon exits before it listens.

A vmpooler 3.x file is read too: ``:providers:`` (several vCenters by
name), ``:dns_configs:`` (a domain per pool), the 3.x keys, and the files
its ``extra_config`` names, merged in.  A key nobody reads is not an error:
it lands in :attr:`Config.warnings` with its path, for the start-up log.

Nothing here does I/O except :func:`read_config` and the reading of the
files ``extra_config`` names; otherwise :func:`parse_config` is a pure
function of the text and the environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

import yaml
from twisted.internet.endpoints import serverFromString

DEFAULT_CONFIG_PATH = "etc/vmpooler.yaml"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a whole name: fullmatch
# Checkout answers put pools beside these keys (docs/compatibility.rst, "API v1").
RESERVED_NAMES = ("ok", "domain")
ENCRYPTIONS = ("start_tls", "simple_tls", "none")
# net-ldap's ``encryption: {method: ...}`` (YAML reads ``:simple_tls`` with its colon).
LDAP_METHODS = ("simple_tls", "start_tls")
PROVIDER_CLASSES = ("vsphere",)
DEFAULT_PROVIDER = "vsphere"
# The DNS class whose names the network registers: vmpoolerd has nothing to do.
DYNAMIC_DNS = "dynamic-dns"


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
    # Redis Sentinel (CONTRACT §8): the Sentinels' ``host:port`` (then
    # server and port are not used) and the name of the master they watch.
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str = "mymaster"

    @property
    def where(self) -> str:
        """Where the daemon finds Redis, for its log."""
        if self.sentinels:
            return (f"master {self.master_name!r} of Sentinels "
                    + ", ".join(f"{host}:{port}" for host, port in self.sentinels))
        return f"{self.server}:{self.port}"


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
    # Note [Sizing from demand] in manager/sizing_plan.py: "demand" sizes the
    # pool between min_size and size for the share of hits hit_rate.
    size_policy: str = "static"
    min_size: int = 1
    hit_rate: float = 0.99


@dataclass(frozen=True)
class ServiceConfig:
    """The ``:config:`` section."""

    site_name: str = "vmpooler"
    logfile: str | None = None
    port: int = 4567
    host: str = "0.0.0.0"
    # A Twisted server endpoint description ("tcp:4567:interface=127.0.0.1",
    # "ssl:4567:privateKey=key.pem:certKey=cert.pem", "unix:/run/vmpoolerd.sock");
    # None: port and host.
    listen: str | None = None
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
    # What start-up should log once: unknown keys (with their path), keys read but not served.
    warnings: tuple[str, ...] = ()

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


class _Notes:
    """What one parse has to say besides errors: its sections' unknown keys, its warnings."""

    def __init__(self) -> None:
        self.sections: list[_Section] = []
        self.warnings: list[str] = []

    def all(self) -> tuple[str, ...]:
        return tuple(self.warnings) + tuple(
            f"{s.where(_display(key))}: unknown key, ignored"
            for s in self.sections for key in s.data if key not in s.seen)


class _Section:
    """
    A mapping with its key path, so every error can name the key; the keys
    asked for are remembered, so that the others can be reported unknown.
    """

    def __init__(self, path: str, data: Any, notes: _Notes) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: must be a mapping")
        self.path = path
        self.data = data
        self.notes = notes
        self.seen: set[Any] = set()
        notes.sections.append(self)

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def known(self, *keys: str) -> None:
        """Count ``keys`` as read (they are, elsewhere)."""
        self.seen.update(keys)

    def has(self, key: str) -> bool:
        self.seen.add(key)
        return self.data.get(key) is not None

    def require(self, *keys: str) -> None:
        for key in keys:
            if not self.has(key):
                raise ConfigError(f"{self.where(key)}: is required")

    def read(self, check: Check, key: str) -> Any:
        """The value of ``key`` (set), checked."""
        self.seen.add(key)
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

    def present(self, name: str) -> bool:
        """Whether the ``:name:`` sub-section is set."""
        key = _spelling(self.data, name)
        return key is not None and self.data[key] is not None

    def sub(self, name: str) -> _Section:
        """The ``:name:`` sub-section (empty if absent), in any spelling."""
        key = _spelling(self.data, name)
        if key is not None:
            self.seen.add(key)
        return self.nested(self.where(f":{name}:"), self.data.get(key))

    def child(self, key: str) -> _Section:
        """The mapping under ``key``, whose own keys may be written ``:name:`` or ``name``."""
        value = self.data[key]
        self.seen.add(key)
        if isinstance(value, Mapping):
            value = {str(k).strip(":"): v for k, v in value.items()}
        return self.nested(self.where(key), value)

    def nested(self, path: str, data: Any) -> _Section:
        return _Section(path, data, self.notes)


def _spelling(data: Mapping[Any, Any], name: str) -> Any:
    """
    The key ``:name:`` is written with in ``data``: as vmpooler writes it
    (PyYAML reads that as ``":name"``, the last colon being YAML's own), or
    plain ``name``.  None if absent.
    """
    for key in _spellings(name):
        if key in data:
            return key
    return None


def _spellings(name: str) -> tuple[str, ...]:
    return (f":{name}", f":{name}:", name)


def _display(key: Any) -> str:
    """A key as the file writes it: ``":name"`` is ``:name:``."""
    text = str(key)
    return f"{text}:" if text.startswith(":") and not text.endswith(":") else text


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


def _fraction(where: str, value: Any) -> float:
    number = _positive_number(where, value)
    if number >= 1:
        raise ConfigError(f"{where}: must be a number between 0 and 1 (such as 0.99), "
                          f"not {value!r}")
    return number


def _listen(where: str, value: Any) -> str:
    """A server endpoint description that Twisted can build (its key and
    certificate files read, for ssl), checked without listening."""
    description = _string(where, value)
    try:
        serverFromString(_NoReactor(), description)
    except Exception as e:
        raise ConfigError(f"{where}: not a server endpoint description Twisted can use "
                          f"({description!r}): {e}") from None
    return description


class _NoReactor:
    """What an endpoint is built on to be checked: it never listens."""


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


def _vsphere(s: _Section, env_password: str | None = None) -> VsphereConfig:
    """A vCenter's keys; ``env_password`` ($VSPHERE_PASSWORD) wins over the file's."""
    s.require("server", "username")
    if not env_password:
        s.require("password")
    fields = s.fields({"server": ("server", _string), "username": ("username", _string),
                       "password": ("password", _string), "port": ("port", _port),
                       "insecure": ("insecure", _boolean),
                       "datacenter": ("datacenter", _string)})
    if env_password:
        fields["password"] = env_password
    return VsphereConfig(**fields)


def _provider(s: _Section, name: str) -> VsphereConfig:
    """One ``:providers:`` entry: its class (default: its name) must be one served."""
    kind = s.read(_string, "provider_class") if s.has("provider_class") else name
    if kind not in PROVIDER_CLASSES:
        raise ConfigError(f"{s.where('provider_class')}: provider {name!r} is of class "
                          f"{kind!r}; only {', '.join(PROVIDER_CLASSES)} is served")
    return _vsphere(s)


def _providers(root: _Section, environ: Mapping[str, str]
               ) -> tuple[tuple[str, VsphereConfig], ...]:
    """
    ``:providers:`` by name, and the 2016 ``:vsphere:`` as the provider
    ``vsphere`` unless ``:providers:`` names one so (then it is ignored).
    """
    providers: dict[str, VsphereConfig] = {}
    if root.present("providers"):
        section = root.sub("providers")
        for key in list(section.data):
            name = _name(section.where(_display(key)), str(key).strip(":"))
            providers.setdefault(name, _provider(section.sub(name), name))
    if root.present("vsphere"):
        if DEFAULT_PROVIDER in providers:
            root.known(_spelling(root.data, "vsphere"))
            root.notes.warnings.append(
                f":vsphere:: ignored: :providers: has a provider named {DEFAULT_PROVIDER!r}")
        else:
            legacy = _vsphere(root.sub("vsphere"), environ.get("VSPHERE_PASSWORD"))
            providers = {DEFAULT_PROVIDER: legacy, **providers}
    if not providers:
        raise ConfigError(":vsphere:: is required (or :providers:)")
    return tuple(providers.items())


def _dns_configs(s: _Section) -> dict[str, str | None]:
    """``:dns_configs:``: each name's domain (None: the pool takes :config: domain)."""
    domains: dict[str, str | None] = {}
    for key in list(s.data):
        name = str(key).strip(":")
        entry = s.sub(name)
        entry.require("dns_class")
        dns_class = entry.read(_string, "dns_class")
        if dns_class != DYNAMIC_DNS:
            s.notes.warnings.append(
                f"{entry.where('dns_class')}: {dns_class!r} is not served: vmpoolerd "
                f"registers no names (as with {DYNAMIC_DNS}); its domain still applies")
        domains[name] = entry.read(_string, "domain") if entry.has("domain") else None
    return domains


def _address(where: str, value: Any) -> tuple[str, int]:
    """``host:port`` (a Sentinel's)."""
    host, colon, port = _string(where, value).rpartition(":")
    if not colon or not host:
        raise ConfigError(f"{where}: must be host:port, not {value!r}")
    return host.strip("[]"), _port(where, port)


def _addresses(where: str, value: Any) -> tuple[tuple[str, int], ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{where}: must list at least one Sentinel (host:port)")
    return tuple(_address(f"{where}[{i}]", v) for i, v in enumerate(values))


def _redis(s: _Section, environ: Mapping[str, str]) -> RedisConfig:
    fields = s.fields({"server": ("server", _string), "port": ("port", _port),
                       "password": ("password", _string), "db": ("db", _port_or_zero),
                       "data_ttl_hours": ("data_ttl", _positive_number),
                       "sentinels": ("sentinels", _addresses),
                       "master_name": ("master_name", _name)})
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
    ldap = s.sub("ldap")
    ldap.require("host", "base")
    fields = ldap.fields({
        "host": ("host", _string), "port": ("port", _port),
        "base": ("base", _string_list(_string)),
        "user_object": ("user_object", _string_list(_string)),
        "ca_file": ("ca_file", _string),
        "max_binds": ("max_binds", _positive_int)})
    if ldap.has("encryption"):
        fields["encryption"] = _encryption(ldap)
    if ldap.has("service_account_hash"):
        fields["service_account"] = _service_account(ldap.child("service_account_hash"))
    return LdapConfig(**fields)


def _encryption(ldap: _Section) -> str:
    """``encryption``: a name, or net-ldap's hash ``{:method: :simple_tls}``."""
    if not isinstance(ldap.data["encryption"], Mapping):
        return str(ldap.read(_one_of(*ENCRYPTIONS), "encryption"))
    method = ldap.child("encryption")
    method.require("method")
    return str(method.read(_ldap_method, "method"))


def _ldap_method(where: str, value: Any) -> str:
    return _one_of(*LDAP_METHODS)(where, value.lstrip(":") if isinstance(value, str) else value)


def _service_account(account: _Section) -> ServiceAccount:
    """``service_account_hash`` with ``user_dn`` and ``password`` (either spelling)."""
    account.require("user_dn", "password")
    return ServiceAccount(**account.fields({"user_dn": ("user_dn", _string),
                                            "password": ("password", _string)}))


def _graphite(s: _Section) -> GraphiteConfig:
    s.require("server")
    return GraphiteConfig(**s.fields({"server": ("server", _string), "port": ("port", _port),
                                      "prefix": ("prefix", _string)}))


def _tagfilter(s: _Section) -> tuple[tuple[str, re.Pattern[str]], ...]:
    filters = []
    for tag in list(s.data):
        where = s.where(str(tag))
        try:
            filters.append((str(tag), re.compile(s.read(_string, tag))))
        except re.error as e:
            raise ConfigError(f"{where}: not a regular expression: {e}") from None
    return tuple(filters)


def _prefix(where: str, value: Any) -> str:
    return "" if value == "" else _name(where, value)


def _paths(where: str, value: Any) -> tuple[str, ...]:
    """A path, a list of paths, or paths separated by commas (vmpooler's way)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    return _string_list(_string)(where, value)


SERVICE_KEYS: Mapping[str, tuple[str, Check]] = {
    "site_name": ("site_name", _string), "logfile": ("logfile", _string),
    "port": ("port", _port), "host": ("host", _string),
    "listen": ("listen", _listen),
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
    "experimental_features": ("experimental_features", _boolean),
    "max_ondemand_instances_per_request": ("max_ondemand_instances_per_request",
                                           _positive_int),
    "ondemand_clone_limit": ("ondemand_clone_limit", _positive_int),
    "ondemand_request_ttl_minutes": ("ondemand_request_ttl", _positive_number),
    "create_linked_clones": ("create_linked_clones", _boolean),
    "purge_unconfigured_resources": ("purge_unconfigured_resources", _boolean),
    "resources_allowlist": ("resources_allowlist", _string_list(_string)),
}


def _service(s: _Section) -> ServiceConfig:
    fields = s.fields(SERVICE_KEYS)
    s.known("extra_config")  # read before, by _merge_extra_files
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
    "create_linked_clone": ("create_linked_clone", _boolean),
    "datacenter": ("datacenter", _string),
    "size_policy": ("size_policy", _one_of("static", "demand")),
    "min_size": ("min_size", _integer(0)),
    "hit_rate": ("hit_rate", _fraction),
}



def _pool(s: _Section, providers: Sequence[str], domains: Mapping[str, str | None]
          ) -> PoolConfig:
    s.require("name", "template", "folder", "datastore", "size")
    fields = s.fields(POOL_KEYS)
    name = fields["name"]
    provider = s.read(_string, "provider") if s.has("provider") else \
        providers[0] if len(providers) == 1 else DEFAULT_PROVIDER
    if provider not in providers:
        raise ConfigError(f"{s.where('provider')}: pool {name!r} names the provider "
                          f"{provider!r}; the providers are {', '.join(providers)}")
    if s.has("dns_plugin"):
        plugin = s.read(_string, "dns_plugin")
        if plugin not in domains:
            raise ConfigError(f"{s.where('dns_plugin')}: pool {name!r} names the DNS config "
                              f"{plugin!r}, which :dns_configs: does not have")
        fields["domain"] = domains[plugin]
    if fields.get("min_size", 1) > fields["size"]:
        raise ConfigError(f"{s.where('min_size')}: pool {name!r}'s min_size must not be "
                          f"more than its size ({fields['size']})")
    return PoolConfig(provider=provider, **fields)


def _pools(root: _Section, providers: Sequence[str], domains: Mapping[str, str | None]
           ) -> tuple[PoolConfig, ...]:
    path, key = ":pools:", _spelling(root.data, "pools")
    root.known(key)
    data = root.data.get(key)
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: must be a list of at least one pool")
    pools = tuple(_pool(root.nested(f"{path}[{i}]", p), providers, domains)
                  for i, p in enumerate(data))
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
    # vSphere paths are read without their outer slashes (vsphere.split_path);
    # pools on different vCenters may have folders of the same name.
    folders: dict[tuple[str, str], str] = {}
    for i, p in enumerate(pools):
        folder = (p.provider, p.folder.strip("/"))
        if folder in folders:
            raise ConfigError(f"{path}[{i}].folder: {p.folder!r} is already the folder "
                              f"of pool {folders[folder]!r}")
        folders[folder] = p.name
    return pools


def _load(text: str, label: str = "") -> Mapping[Any, Any]:
    """The YAML mapping of sections in ``text`` (``label``: the file, for errors)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{label}not valid YAML: {e}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{label}the configuration must be a YAML mapping of sections")
    return raw


def _read_text(path: str, label: str = "") -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{label}{path}: cannot be read: {e.strerror}") from None


def _merge_extra_files(raw: Mapping[Any, Any], path: str | None) -> Mapping[Any, Any]:
    """
    The sections of ``raw`` with those of the files its ``:config:
    extra_config`` names (relative to ``path``'s directory) merged in, in
    order: a section in a later file replaces the whole section of that
    name, as vmpooler merges.  Extra files' own ``extra_config`` is not followed.
    """
    config = raw.get(_spelling(raw, "config"))
    if not isinstance(config, Mapping) or config.get("extra_config") is None:
        return raw
    where = ":config:.extra_config"
    merged = dict(raw)
    for name in _paths(where, config["extra_config"]):
        label = f"{where}: {name}: "
        full = os.path.join(os.path.dirname(path or ""), name)
        for key, value in _load(_read_text(full, f"{where}: "), label).items():
            for spelling in _spellings(str(key).strip(":")):
                merged.pop(spelling, None)
            merged[key] = value
    return merged


def parse_config(text: str, environ: Mapping[str, str] | None = None,
                 path: str | None = None) -> Config:
    """
    Parse and check a configuration; raise :class:`ConfigError`.  ``path``
    is the file ``text`` came from: ``extra_config`` files are found
    relative to its directory (else to the working directory).
    """
    environ = environ or {}
    notes = _Notes()
    root = _Section("", _merge_extra_files(_load(text), path), notes)
    providers = _providers(root, environ)
    domains = _dns_configs(root.sub("dns_configs"))
    redis = _redis(root.sub("redis"), environ)
    service = _service(root.sub("config"))
    pools = _pools(root, [name for name, _ in providers], domains)
    auth = _auth(root.sub("auth")) if root.present("auth") else None
    graphite = _graphite(root.sub("graphite")) if root.present("graphite") else None
    tagfilter = _tagfilter(root.sub("tagfilter"))
    return Config(providers=providers, redis=redis, service=service, pools=pools, auth=auth,
                  graphite=graphite, tagfilter=tagfilter, warnings=notes.all())


def config_path(option: str | None, environ: Mapping[str, str]) -> str:
    """``--config``, else ``$VMPOOLER_CONFIG``, else ``etc/vmpooler.yaml``."""
    return option or environ.get("VMPOOLER_CONFIG") or DEFAULT_CONFIG_PATH


def read_config(path: str, environ: Mapping[str, str]) -> Config:
    return parse_config(_read_text(path), environ, path)


__all__: Sequence[str] = (
    "Config", "ConfigError", "GraphiteConfig", "LdapConfig", "PoolConfig", "ServiceAccount",
    "RedisConfig", "ServiceConfig", "VsphereConfig", "config_path",
    "parse_config", "read_config",
)
