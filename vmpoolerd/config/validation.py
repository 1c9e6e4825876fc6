"""
Checking a configuration as read (every source merged, the environment
applied) and building the frozen :class:`Config`: one function per
section.  Pure: no I/O.

A key nobody reads is a warning naming its path; a key 3.x reads that
vmpoolerd does not serve is a warning saying so; a bad value is a
:class:`ConfigError` naming the key.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

from .defaults import service_defaults
from .environment import apply_environment
from .layouts import layout, spelling
from .pools import pool_entries, pools as read_pools
from .providers import declared, read_providers
from .records import (
    RATE_LIMIT_DEFAULTS, Config, ConfigError, GraphiteConfig, LdapConfig, PrometheusConfig,
    RateLimit, RedisConfig, ServiceAccount, ServiceConfig, StatsdConfig)
from .section import Check, Notes, Section
from . import values

ENCRYPTIONS = ("start_tls", "simple_tls", "none")
# net-ldap's ``encryption: {method: ...}`` (YAML reads ``:simple_tls`` with its colon).
LDAP_METHODS = ("simple_tls", "start_tls")
# The DNS class whose names the network registers: vmpoolerd has nothing to do.
DYNAMIC_DNS = "dynamic-dns"
NOT_SERVED = "read by vmpooler 3.x, not served by vmpoolerd; ignored"


FetchPools = Callable[[RedisConfig], Sequence[Mapping[str, Any]]]


def check(raw: Mapping[Any, Any], environ: Mapping[str, str],
          fetch_pools: FetchPools | None = None, warnings: Sequence[str] = ()) -> Config:
    """
    The configuration ``raw`` (as read) with ``environ`` applied, checked.
    ``fetch_pools`` reads the pools 3.x keeps in Redis, asked only when
    ``raw`` has no ``:pools:`` (None: then ``:pools:`` is required).
    """
    applied = apply_environment(raw, environ)
    notes = Notes(applied.origins)
    notes.warnings.extend(warnings)
    notes.warnings.extend(applied.warnings)
    root = Section("", applied.data, notes)
    generation = layout(root.data)
    declared_providers = declared(root)
    names = list(declared_providers)
    domains = _dns_configs(root.sub("dns_configs"))
    redis = _redis(root.sub("redis"))
    service = _service(root.sub("config"), generation)
    entries = pool_entries(root)
    from_redis = entries is None
    if entries is None:
        redis_pools = fetch_pools(redis) if fetch_pools is not None else ()
        if not redis_pools:
            raise ConfigError(":pools:: must be a list of at least one pool (the file has "
                              "none, and Redis's vmpooler__pools names none)")
        notes.notices.append(f":pools:: read from Redis ({len(redis_pools)} pools), "
                             "as the file has none")
        entries = (":pools:", list(redis_pools))
    path, data = entries
    labelled = [(f"vmpooler__pool__{p.get('name')}" if from_redis else f"{path}[{i}]", p)
                for i, p in enumerate(data)]
    pools = read_pools(root, labelled, names, domains, from_redis)
    used: dict[str, str] = {}
    for (where, _), p in zip(labelled, pools):
        used.setdefault(p.provider, f"{where}.provider")
    providers = read_providers(declared_providers, used, environ,
                               service.purge_unconfigured_resources, service.resources_allowlist)
    return Config(
        providers=providers.vspheres, dummies=providers.dummies, purges=providers.purges,
        redis=redis, service=service, pools=pools,
        auth=_auth(root.sub("auth")) if root.present("auth") else None,
        graphite=_graphite(root.sub("graphite")) if root.present("graphite") else None,
        statsd=_statsd(root.sub("statsd")) if root.present("statsd") else None,
        prometheus=_prometheus(root.sub("prometheus")) if root.present("prometheus") else None,
        rate_limits=_rate_limits(root.sub("rate_limits")),
        tagfilter=_tagfilter(root.sub("tagfilter")), layout=generation,
        warnings=_tracing(root.sub("tracing")) + notes.all_warnings(),
        notices=tuple(notes.notices))


def _dns_configs(s: Section) -> dict[str, str | None]:
    """``:dns_configs:``: each name's domain (None: the pool takes :config: domain)."""
    domains: dict[str, str | None] = {}
    for key in list(s.data):
        name = str(key).strip(":")
        entry = s.sub(name)
        entry.require("dns_class")
        dns_class = entry.read(values.string, "dns_class")
        if dns_class != DYNAMIC_DNS:
            s.notes.warnings.append(
                f"{entry.where('dns_class')}: {dns_class!r} is not served: vmpoolerd "
                f"registers no names (as with {DYNAMIC_DNS}); its domain still applies")
        domains[name] = entry.read(values.string, "domain") if entry.has("domain") else None
    return domains


def _redis(s: Section) -> RedisConfig:
    fields = s.fields({"server": ("server", values.string), "port": ("port", values.port),
                       "password": ("password", values.string),
                       "db": ("db", values.port_or_zero),
                       "data_ttl_hours": ("data_ttl", values.positive_number),
                       "sentinels": ("sentinels", values.addresses),
                       "master_name": ("master_name", values.name)})
    s.not_served(NOT_SERVED + " (vmpoolerd keeps its own connections)",
                 "connection_pool_size", "connection_pool_timeout", "reconnect_attempts")
    return RedisConfig(**fields)


def _auth(s: Section) -> LdapConfig:
    s.require("provider")
    s.read(values.one_of("ldap"), "provider")
    ldap = s.sub("ldap")
    ldap.require("host", "base")
    fields = ldap.fields({
        "host": ("host", values.string), "port": ("port", values.port),
        "base": ("base", values.string_list(values.string)),
        "user_object": ("user_object", values.string_list(values.string)),
        "ca_file": ("ca_file", values.string),
        "max_binds": ("max_binds", values.positive_int)})
    if ldap.has("encryption"):
        fields["encryption"] = _encryption(ldap)
    if ldap.has("service_account_hash"):
        fields["service_account"] = _service_account(ldap.child("service_account_hash"))
    fields.update(s.fields({
        "administrators": ("administrators", values.string_list(values.string)),
        "administrator_groups": ("administrator_groups", values.string_list(values.string))}))
    return LdapConfig(**fields)


def _encryption(ldap: Section) -> str:
    """``encryption``: a name, or net-ldap's hash ``{:method: :simple_tls}``."""
    if not isinstance(ldap.data["encryption"], Mapping):
        return str(ldap.read(values.one_of(*ENCRYPTIONS), "encryption"))
    method = ldap.child("encryption")
    method.require("method")
    return str(method.read(_ldap_method, "method"))


def _ldap_method(where: str, value: Any) -> str:
    return values.one_of(*LDAP_METHODS)(
        where, value.lstrip(":") if isinstance(value, str) else value)


def _service_account(account: Section) -> ServiceAccount:
    """``service_account_hash`` with ``user_dn`` and ``password`` (either spelling)."""
    account.require("user_dn", "password")
    return ServiceAccount(**account.fields({"user_dn": ("user_dn", values.string),
                                            "password": ("password", values.string)}))


def _graphite(s: Section) -> GraphiteConfig:
    s.require("server")
    return GraphiteConfig(**s.fields({"server": ("server", values.string),
                                      "port": ("port", values.port),
                                      "prefix": ("prefix", values.string)}))


def _statsd(s: Section) -> StatsdConfig:
    s.require("server")
    return StatsdConfig(**s.fields({"server": ("server", values.string),
                                    "port": ("port", values.port),
                                    "prefix": ("prefix", values.string)}))


def _prometheus(s: Section) -> PrometheusConfig:
    return PrometheusConfig(**s.fields({
        "endpoint": ("prometheus_endpoint", values.path),
        "prometheus_prefix": ("prometheus_prefix", values.string),
        "prefix": ("prefix", values.string)}))


def _rate_limits(s: Section) -> tuple[tuple[str, RateLimit], ...]:
    """3.x's limits per kind of request, each replaced by ``:rate_limits: :kind:``."""
    limits = dict(RATE_LIMIT_DEFAULTS)
    for kind in limits:
        if s.present(kind):
            entry = s.child(spelling(s.data, kind))
            entry.require("limit", "period")
            limits[kind] = RateLimit(entry.read(values.positive_int, "limit"),
                                     entry.read(values.positive_int, "period"))
    return tuple(limits.items())


def _tracing(s: Section) -> tuple[str, ...]:
    """``:tracing:`` (3.x's OpenTelemetry export): read, not served."""
    enabled = str(s.data.get("enabled", "false")).lower() == "true"
    s.known("enabled", "jaeger_host")
    return (f"{s.path}: {NOT_SERVED} (vmpoolerd exports no traces)",) if enabled else ()


def _tagfilter(s: Section) -> tuple[tuple[str, re.Pattern[str]], ...]:
    filters = []
    for tag in list(s.data):
        where = s.where(str(tag))
        try:
            filters.append((str(tag), re.compile(s.read(values.string, tag))))
        except re.error as e:
            raise ConfigError(f"{where}: not a regular expression: {e}") from None
    return tuple(filters)


SERVICE_KEYS: Mapping[str, tuple[str, Check]] = {
    "site_name": ("site_name", values.string), "logfile": ("logfile", values.string),
    "port": ("port", values.port), "host": ("host", values.string),
    "listen": ("listen", values.listen),
    "task_limit": ("task_limit", values.positive_int),
    "timeout_minutes": ("timeout", values.positive_number),
    "vm_checktime_minutes": ("vm_checktime", values.positive_number),
    "vm_lifetime_hours": ("vm_lifetime", values.positive_number),
    "vm_lifetime_auth_hours": ("vm_lifetime_auth", values.positive_number),
    "allowed_tags": ("allowed_tags", values.string_list(values.string)),
    "domain": ("domain", values.string), "prefix": ("prefix", values.prefix),
    "clone_target": ("clone_target", values.string),
    "ready_ttl_minutes": ("ready_ttl", values.positive_number),
    "check_loop_delay_min": ("check_loop_delay_min", values.positive_number),
    "check_loop_delay_max": ("check_loop_delay_max", values.positive_number),
    "check_loop_delay_decay": ("check_loop_delay_decay", values.positive_number),
    "ready_check_port": ("ready_check_port", values.port_or_zero),
    "ready_check_address": ("ready_check_address", values.one_of("hostname", "ip")),
    "max_request_vms": ("max_request_vms", values.positive_int),
    "max_lifetime_upper_limit_hours": ("max_lifetime_upper_limit", values.positive_int),
    "experimental_features": ("experimental_features", values.boolean),
    "max_ondemand_instances_per_request": ("max_ondemand_instances_per_request",
                                           values.positive_int),
    "ondemand_clone_limit": ("ondemand_clone_limit", values.positive_int),
    "ondemand_request_ttl_minutes": ("ondemand_request_ttl", values.positive_number),
    "max_ondemand_requests_per_user": ("max_ondemand_requests_per_user", values.positive_int),
    "max_ondemand_requests": ("max_ondemand_requests", values.positive_int),
    "create_linked_clones": ("create_linked_clones", values.boolean),
    "purge_unconfigured_resources": ("purge_unconfigured_resources", values.boolean),
    "resources_allowlist": ("resources_allowlist", values.string_list(values.string)),
    "check_ready_vm_hostname_for_mismatch": ("check_ready_vm_hostname_for_mismatch",
                                             values.boolean),
    "rate_limiting_enabled": ("rate_limiting_enabled", values.boolean),
    "trusted_proxies": ("trusted_proxies", values.string_list(values.trusted_proxy)),
    "template_folders": ("template_folders", values.string_list(values.folder_path)),
}
# :config: keys 3.x reads that vmpoolerd does not serve: named once in the start-up log.
SERVICE_NOT_SERVED = (
    "migration_limit", "timeout_notification", "max_tries", "retry_factor", "create_folders",
    "usage_stats", "request_logger", "create_template_delta_disks", "manage_host_selection",
    "host_selection_max_age", "utilization_limit", "backend_weight", "dns_servers")


def _service(s: Section, generation: str) -> ServiceConfig:
    fields = s.fields(SERVICE_KEYS)
    s.known("extra_config")  # read before, by sources.merge_extra_files
    s.not_served(NOT_SERVED, *SERVICE_NOT_SERVED)
    s.not_served("an older name that vmpooler 3.x no longer reads: no purge follows from it "
                 "(use purge_unconfigured_resources)", "purge_unconfigured_folders")
    if "vm_lifetime_hours" in fields:
        fields.setdefault("vm_lifetime_auth_hours", fields["vm_lifetime_hours"])
    service = ServiceConfig(**{**service_defaults(generation), **fields})
    if service.check_loop_delay_max < service.check_loop_delay_min:
        raise ConfigError(
            f"{s.where('check_loop_delay_max')}: must not be less than check_loop_delay_min")
    if service.check_loop_delay_decay < 1:
        raise ConfigError(f"{s.where('check_loop_delay_decay')}: must be at least 1")
    return service
