"""
What the configuration is once read and checked: frozen records, passed
down from start-up; nothing reads configuration from a global.

The defaults written on these classes are the 2016 layout's; a 3.x-layout
file starts from :data:`vmpoolerd.config.defaults.THREE_X` instead (where
the two generations differ, and why, is listed there and in
``docs/compatibility.rst``, "Configuration").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property


class ConfigError(ValueError):
    """
    The configuration cannot be used; the message names the key (or the
    environment variable), and never a secret or the YAML text.
    """


@dataclass(frozen=True)
class PurgeConfig:
    """
    One provider's purge (``purge_unconfigured_resources``) as 3.x reads it:
    the provider's own key, else ``:config:``'s; the folders it must spare
    (``resources_allowlist``, or its older name ``folder_whitelist``, and
    vmpoolerd's global ``:config: resources_allowlist`` too).
    """

    enabled: bool
    allowlist: tuple[str, ...]


@dataclass(frozen=True)
class VsphereConfig:
    server: str
    username: str
    password: str = field(repr=False)
    port: int = 443
    insecure: bool = False
    datacenter: str | None = None


@dataclass(frozen=True)
class DummyConfig:
    """
    vmpooler 3.x's ``dummy`` provider's options (``providers/dummy.rb``):
    in-memory VMs whose actions take up to ``*_max_time`` seconds (a random
    delay, none when unset) and fail in ``*_fail_percent`` of cases.
    """

    filename: str | None = None
    connection_pool_size: int = 1
    connection_pool_timeout: float = 10.0
    is_ready_timeout: float = 5.0
    createvm_max_time: float | None = None
    createvm_fail_percent: int | None = None
    vmready_fail_percent: int | None = None
    getvm_poweroff_percent: int | None = None
    getvm_rename_percent: int | None = None
    createdisk_max_time: float | None = None
    createdisk_fail_percent: int | None = None
    createsnapshot_max_time: float | None = None
    createsnapshot_fail_percent: int | None = None
    revertsnapshot_max_time: float | None = None
    revertsnapshot_fail_percent: int | None = None
    destroyvm_max_shutdown_time: float | None = None
    destroyvm_max_time: float | None = None
    destroyvm_fail_percent: int | None = None
    migratevm_couldmove_percent: int | None = None
    migratevm_max_time: float | None = None
    migratevm_fail_percent: int | None = None


@dataclass(frozen=True)
class RedisConfig:
    server: str = "localhost"
    port: int = 6379
    password: str | None = field(default=None, repr=False)
    db: int = 0
    data_ttl_hours: float = 168.0
    # Redis Sentinel (docs/compatibility.rst, "Several daemons"): the Sentinels' ``host:port`` (then
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
    # :auth: administrators (Note [Administrators] in api/admins.py): user
    # names or DNs, and the DNs of groups whose members are administrators.
    administrators: tuple[str, ...] = ()
    administrator_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class GraphiteConfig:
    server: str
    port: int = 2003
    prefix: str = "vmpooler"


@dataclass(frozen=True)
class StatsdConfig:
    """``:statsd:``: where 3.x's counters, gauges and timers go (UDP)."""

    server: str
    port: int = 8125
    prefix: str = "vmpooler"


@dataclass(frozen=True)
class PrometheusConfig:
    """``:prometheus:``: 3.x's metric table, served at ``endpoint``."""

    endpoint: str = "/prometheus"
    prometheus_prefix: str = "vmpooler"
    prefix: str = "vmpooler"


@dataclass(frozen=True)
class RateLimit:
    limit: int
    period_seconds: int


# 3.9.1's api/rate_limiter.rb, per kind of request; ``:rate_limits:`` replaces a kind's.
RATE_LIMIT_DEFAULTS: tuple[tuple[str, RateLimit], ...] = (
    ("global_per_ip", RateLimit(100, 60)), ("authenticated", RateLimit(500, 60)),
    ("vm_creation", RateLimit(20, 60)), ("vm_deletion", RateLimit(50, 60)))


@dataclass(frozen=True)
class PoolConfig:
    name: str
    template: str
    folder: str
    datastore: str
    size: int  # 0: the pool is kept empty (a site parks it), and is not "empty" in /status
    alias: tuple[str, ...] = ()
    resource_pool: str | None = None
    clone_target: str | None = None
    timeout_minutes: float | None = None
    ready_ttl_minutes: float | None = None
    provider: str = "vsphere"  # the name of its provider in :providers:
    domain: str | None = None  # its dns_plugin's domain; None: :config: domain
    dns_plugin: str | None = None  # the :dns_configs: entry it names, if any
    create_linked_clone: bool | None = None  # None: :config: create_linked_clones
    datacenter: str | None = None  # None: its provider's
    # None: :config: check_ready_vm_hostname_for_mismatch
    check_hostname_for_mismatch: bool | None = None
    # Note [Sizing from demand] in manager/sizing_plan.py: "demand" sizes the
    # pool between min_size and size for the share of hits hit_rate.
    size_policy: str = "static"
    min_size: int = 1
    hit_rate: float = 0.99
    # The folders a new template (POST /config/pooltemplate) may lie under;
    # None: :config: template_folders (Note [Template overrides] in api/config_routes.py).
    template_folders: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ServiceConfig:
    """The ``:config:`` section (the 2016 layout's defaults; see the module)."""

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
    ready_ttl_minutes: float | None = None  # None: ready VMs are never replaced for age
    check_loop_delay_min: float = 5.0
    check_loop_delay_max: float = 60.0
    check_loop_delay_decay: float = 2.0
    ready_check_port: int = 22
    ready_check_address: str = "hostname"
    # The longest lifetime a PUT may give a VM, in hours (None: no ceiling).
    max_lifetime_upper_limit_hours: int | None = 336
    experimental_features: bool = False
    max_ondemand_instances_per_request: int = 10
    ondemand_clone_limit: int = 10
    ondemand_request_ttl_minutes: float = 5.0
    # vmpoolerd's own: on-demand requests outstanding (asked, not yet ready,
    # failed or deleted) per asker (token user, else client address) and
    # for all (Note [Outstanding on-demand requests]).
    max_ondemand_requests_per_user: int = 20
    max_ondemand_requests: int = 500
    create_linked_clones: bool = False
    # The global purge switch and allowlist; each provider's: Config.purge_for.
    purge_unconfigured_resources: bool = False
    resources_allowlist: tuple[str, ...] = ()
    max_request_vms: int = 100
    check_ready_vm_hostname_for_mismatch: bool = True
    rate_limiting_enabled: bool = False
    # Note [Client addresses] in api/clients.py: the peers whose
    # X-Forwarded-For is believed (addresses, networks, "unix").
    trusted_proxies: tuple[str, ...] = ()
    # Note [Template overrides] in api/config_routes.py: the folders a new template
    # may lie under, for pools that name none (empty: any folder).
    template_folders: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    # Each vSphere provider some pool uses, by name; a 2016 file's
    # :vsphere: is the one named "vsphere".  Providers no pool uses are
    # left out (and named in ``notices``).
    providers: tuple[tuple[str, VsphereConfig], ...]
    redis: RedisConfig
    service: ServiceConfig
    pools: tuple[PoolConfig, ...]
    auth: LdapConfig | None = None
    graphite: GraphiteConfig | None = None
    tagfilter: tuple[tuple[str, re.Pattern[str]], ...] = ()
    # What start-up should log once: unknown keys (with their path), keys read but not served.
    warnings: tuple[str, ...] = ()
    # What start-up should say, not a problem: providers left alone, where the pools came from.
    notices: tuple[str, ...] = ()
    # Each dummy provider some pool uses, by name.
    dummies: tuple[tuple[str, DummyConfig], ...] = ()
    # Each used provider's purge, by name.
    purges: tuple[tuple[str, PurgeConfig], ...] = ()
    statsd: StatsdConfig | None = None
    prometheus: PrometheusConfig | None = None
    rate_limits: tuple[tuple[str, RateLimit], ...] = RATE_LIMIT_DEFAULTS
    # "3.x" when the file has :providers:, else "2016": whose defaults apply.
    layout: str = "2016"

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

    def dummy(self, name: str) -> DummyConfig:
        """The dummy provider named ``name`` (KeyError if none is)."""
        return dict(self.dummies)[name]

    def purge_for(self, provider: str) -> PurgeConfig:
        """The purge of the provider named ``provider`` (off if no pool uses it)."""
        return dict(self.purges).get(provider, PurgeConfig(False, ()))

    def rate_limit(self, kind: str) -> RateLimit:
        """The limit of one kind of request (``vm_creation``, ...); else global_per_ip's."""
        limits = dict(self.rate_limits)
        return limits.get(kind, limits["global_per_ip"])

    def domain_for(self, pool: str) -> str | None:
        """The domain of the pool's VMs: its dns_plugin's, else :config: domain."""
        return self.pool(pool).domain or self.service.domain

    def linked_clones(self, pool: str) -> bool:
        """Whether the pool's clones are linked clones."""
        own = self.pool(pool).create_linked_clone
        return self.service.create_linked_clones if own is None else own

    def template_folders(self, pool: str) -> tuple[str, ...]:
        """The folders a new template of the pool may lie under (empty: any)."""
        own = self.pool(pool).template_folders
        return self.service.template_folders if own is None else own

    def checks_hostname(self, pool: str) -> bool:
        """Whether the pool's ready VMs are checked for a foreign hostname
        (Note [A foreign hostname] in manager/pool_plan.py)."""
        return checks_hostname(self.pool(pool), self.service)


def checks_hostname(pool: PoolConfig, service: ServiceConfig) -> bool:
    """Whether ``pool``'s ready VMs are checked for a foreign hostname: its own
    ``check_hostname_for_mismatch``, else ``:config:
    check_ready_vm_hostname_for_mismatch`` (Note [A foreign hostname] in
    manager/pool_plan.py)."""
    own = pool.check_hostname_for_mismatch
    return service.check_ready_vm_hostname_for_mismatch if own is None else own
