"""
Providers as 3.x has them: ``:providers:`` maps a name to its options and
``provider_class`` (default: the name).  The 2016 top-level ``:vsphere:``
is the provider named ``vsphere`` unless ``:providers:`` has one so.

Only the providers some pool uses are read (and checked); the others are
named in a notice and left alone, whatever their class, as 3.x leaves
them.  A pool whose provider's class vmpoolerd does not serve is a
start-up error naming the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .layouts import bare, display, spelling
from .records import ConfigError, DummyConfig, PurgeConfig, VsphereConfig
from .section import Check, Section
from . import values

VSPHERE, DUMMY = "vsphere", "dummy"
PROVIDER_CLASSES = (VSPHERE, DUMMY)
DEFAULT_PROVIDER = "vsphere"

VSPHERE_KEYS: Mapping[str, tuple[str, Check]] = {
    "server": ("server", values.string), "username": ("username", values.string),
    "password": ("password", values.string), "port": ("port", values.port),
    "insecure": ("insecure", values.boolean), "datacenter": ("datacenter", values.string)}


def _dummy_keys() -> dict[str, tuple[str, Check]]:
    keys: dict[str, tuple[str, Check]] = {
        "filename": ("filename", values.string),
        "connection_pool_size": ("connection_pool_size", values.positive_int),
        "connection_pool_timeout": ("connection_pool_timeout", values.positive_number),
        "is_ready_timeout": ("is_ready_timeout", values.positive_number)}
    for action in ("createvm", "createdisk", "createsnapshot", "revertsnapshot",
                   "destroyvm", "migratevm"):
        keys[f"{action}_max_time"] = (f"{action}_max_time", values.seconds)
        keys[f"{action}_fail_percent"] = (f"{action}_fail_percent", values.percent)
    for name in ("vmready_fail_percent", "getvm_poweroff_percent", "getvm_rename_percent",
                 "migratevm_couldmove_percent"):
        keys[name] = (name, values.percent)
    keys["destroyvm_max_shutdown_time"] = ("destroyvm_max_shutdown_time", values.seconds)
    return keys


DUMMY_KEYS: Mapping[str, tuple[str, Check]] = _dummy_keys()


@dataclass(frozen=True)
class Declared:
    """A provider as the file declares it: its section, not yet read."""

    name: str
    kind: str  # its provider_class
    section: Section
    legacy: bool = False  # the 2016 :vsphere:


def declared(root: Section) -> dict[str, Declared]:
    """Every provider the file declares, by name (not yet read or checked)."""
    found: dict[str, Declared] = {}
    if root.present("providers"):
        section = root.sub("providers")
        for key in list(section.data):
            name = values.name(section.where(display(key)), bare(key))
            entry = section.sub(name)
            kind = entry.read(values.string, "provider_class") \
                if entry.has("provider_class") else name
            found.setdefault(name, Declared(name, kind, entry))
    if root.present("vsphere"):
        if DEFAULT_PROVIDER in found:
            root.known(spelling(root.data, "vsphere"))
            root.notes.warnings.append(
                f":vsphere:: ignored: :providers: has a provider named {DEFAULT_PROVIDER!r}")
        else:
            found = {DEFAULT_PROVIDER: Declared(DEFAULT_PROVIDER, VSPHERE, root.sub("vsphere"),
                                                legacy=True), **found}
    if not found:
        raise ConfigError(":vsphere:: is required (or :providers:)")
    return found


def default_provider(names: Sequence[str]) -> str:
    """A pool's provider when it names none: the only one, else ``vsphere``."""
    return names[0] if len(names) == 1 else DEFAULT_PROVIDER


@dataclass(frozen=True)
class Providers:
    vspheres: tuple[tuple[str, VsphereConfig], ...]
    dummies: tuple[tuple[str, DummyConfig], ...]
    purges: tuple[tuple[str, PurgeConfig], ...]


def read_providers(providers: Mapping[str, Declared], used: Mapping[str, str],
                   environ: Mapping[str, str], global_purge: bool,
                   global_allowlist: tuple[str, ...]) -> Providers:
    """
    The providers the pools use (``used``: provider -> the path of the
    first pool that names it, for errors), read and checked.
    """
    vspheres: list[tuple[str, VsphereConfig]] = []
    dummies: list[tuple[str, DummyConfig]] = []
    purges: list[tuple[str, PurgeConfig]] = []
    for name, provider in providers.items():
        if name not in used:
            provider.section.known(*provider.section.data)
            provider.section.notes.notices.append(
                f"provider {name!r} (class {provider.kind!r}): no pool uses it; left alone")
            continue
        if provider.kind == VSPHERE:
            vspheres.append((name, _vsphere(provider.section, environ.get("VSPHERE_PASSWORD")
                                            if provider.legacy else None)))
        elif provider.kind == DUMMY:
            dummies.append((name, DummyConfig(**provider.section.fields(DUMMY_KEYS))))
        else:
            raise ConfigError(
                f"{used[name]}: the pool's provider {name!r} is of class {provider.kind!r}, "
                f"which vmpoolerd does not serve (it serves {', '.join(PROVIDER_CLASSES)})")
        purges.append((name, _purge(provider.section, global_purge, global_allowlist)))
    return Providers(tuple(vspheres), tuple(dummies), tuple(purges))


def _vsphere(s: Section, env_password: str | None) -> VsphereConfig:
    """A vCenter's keys; ``env_password`` ($VSPHERE_PASSWORD) wins over the file's."""
    s.require("server", "username")
    if not env_password:
        s.require("password")
    fields = s.fields(VSPHERE_KEYS)
    if env_password:
        fields["password"] = env_password
    return VsphereConfig(**fields)


def _purge(s: Section, global_purge: bool, global_allowlist: tuple[str, ...]
           ) -> PurgeConfig:
    """
    The provider's purge: its own ``purge_unconfigured_resources``, else
    the global one (3.x's fallback; but a provider's ``false`` is kept,
    where 3.x would purge); the folders to spare: its
    ``resources_allowlist`` or ``folder_whitelist`` (3.x reads the older
    name first) and the global allowlist, all of them.
    """
    enabled = s.read(values.boolean, "purge_unconfigured_resources") \
        if s.has("purge_unconfigured_resources") else global_purge
    allowlist: tuple[str, ...] = ()
    for key in ("folder_whitelist", "resources_allowlist"):
        if s.has(key):
            allowlist += s.read(values.string_list(values.string), key)
    s.not_served("an older name that vmpooler 3.x no longer reads: no purge follows from "
                 "it (use purge_unconfigured_resources)", "purge_unconfigured_folders")
    return PurgeConfig(enabled, tuple(dict.fromkeys(allowlist + global_allowlist)))


def pool_provider(s: Section, names: Sequence[str], pool: str) -> str:
    """The provider a pool names (checked against those declared)."""
    provider = s.read(values.string, "provider") if s.has("provider") else \
        default_provider(names)
    if provider not in names:
        raise ConfigError(f"{s.where('provider')}: pool {pool!r} names the provider "
                          f"{provider!r}; the providers are {', '.join(names)}")
    return provider

