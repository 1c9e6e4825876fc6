"""
``:pools:``: each pool's keys, and the rules between pools (names,
aliases, folders).  When the file has no ``:pools:``, 3.x's pools in Redis
(``vmpooler__pools``, ``vmpooler__pool__<name>``) are read the same way;
the wiring fetches them (``vmpoolerd/tap.py``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .layouts import spelling
from .providers import pool_provider
from .records import ConfigError, PoolConfig
from .section import Check, Section
from . import values

POOL_KEYS: Mapping[str, tuple[str, Check]] = {
    "name": ("name", values.pool_name), "template": ("template", values.string),
    "folder": ("folder", values.string), "datastore": ("datastore", values.string),
    "size": ("size", values.non_negative_int),
    "alias": ("alias", values.string_list(values.pool_name)),
    "resource_pool": ("pool", values.string), "clone_target": ("clone_target", values.string),
    "timeout_minutes": ("timeout", values.positive_number),
    "ready_ttl_minutes": ("ready_ttl", values.positive_number),
    "create_linked_clone": ("create_linked_clone", values.boolean),
    "datacenter": ("datacenter", values.string),
    "check_hostname_for_mismatch": ("check_hostname_for_mismatch", values.boolean),
    "size_policy": ("size_policy", values.one_of("static", "demand")),
    "min_size": ("min_size", values.integer(0)),
    "hit_rate": ("hit_rate", values.fraction),
    "template_folders": ("template_folders", values.string_list(values.folder_path)),
}
# Pool keys 3.x reads that vmpoolerd does not serve: named once in the start-up log.
NOT_SERVED = ("snapshot_mainMem_ioBlockPages", "snapshot_mainMem_iotype", "customize",
              "check_loop_delay_min", "check_loop_delay_max", "check_loop_delay_decay")


def pool(s: Section, providers: Sequence[str], domains: Mapping[str, str | None],
         from_redis: bool = False) -> PoolConfig:
    s.require("name", "template", "folder", "datastore", "size")
    fields = s.fields(POOL_KEYS)
    name = fields["name"]
    provider = pool_provider(s, providers, name)
    if s.has("dns_plugin"):
        plugin = s.read(values.string, "dns_plugin")
        if plugin not in domains:
            raise ConfigError(f"{s.where('dns_plugin')}: pool {name!r} names the DNS config "
                              f"{plugin!r}, which :dns_configs: does not have")
        fields["domain"] = domains[plugin]
        fields["dns_plugin"] = plugin
    if from_redis and s.has("domain"):
        # 3.x writes each pool's domain beside its keys.
        fields.setdefault("domain", s.read(values.string, "domain"))
    s.not_served("read by vmpooler 3.x, not served by vmpoolerd; ignored", *NOT_SERVED)
    min_size = fields.get("min_size", min(1, fields["size"]))
    if min_size > fields["size"]:
        raise ConfigError(f"{s.where('min_size')}: pool {name!r}'s min_size must not be "
                          f"more than its size ({fields['size']})")
    fields["min_size"] = min_size
    return PoolConfig(provider=provider, **fields)


def pool_entries(root: Section) -> tuple[str, list[Any]] | None:
    """The file's ``:pools:`` (its path and entries); None when it has none."""
    key = spelling(root.data, "pools")
    root.known(key)
    data = root.data.get(key)
    if data is None:
        return None
    if not isinstance(data, list) or not data:
        raise ConfigError(":pools:: must be a list of at least one pool")
    return ":pools:", data


def pools(root: Section, entries: Sequence[tuple[str, Any]], providers: Sequence[str],
          domains: Mapping[str, str | None], from_redis: bool = False
          ) -> tuple[PoolConfig, ...]:
    """Every pool (``entries``: each one's path and mapping), checked together."""
    found = tuple(pool(root.nested(path, entry), providers, domains, from_redis)
                  for path, entry in entries)
    paths = [path for path, _ in entries]
    names: set[str] = set()
    for path, p in zip(paths, found):
        if p.name in names:
            raise ConfigError(f"{path}.name: {p.name!r} is used twice")
        names.add(p.name)
    for path, p in zip(paths, found):
        for a in p.alias:
            if a in names:
                raise ConfigError(f"{path}.alias: {a!r} is already a pool's name")
    # Each maintainer takes a VM of its folder that its pool does not know
    # for a stranger, and destroys it: a shared folder would lose VMs.
    # vSphere paths are read without their outer slashes (vsphere.split_path);
    # pools on different vCenters may have folders of the same name.
    folders: dict[tuple[str, str], str] = {}
    for path, p in zip(paths, found):
        folder = (p.provider, p.folder.strip("/"))
        if folder in folders:
            raise ConfigError(f"{path}.folder: {p.folder!r} is already the folder "
                              f"of pool {folders[folder]!r}")
        folders[folder] = p.name
    return found
