"""
Where the configuration comes from, with vmpooler 3.x's precedence
(docs/compatibility.rst, "Configuration"), and reading it:

1. ``--config PATH`` (vmpoolerd's option), else
2. ``$VMPOOLER_CONFIG``: the YAML *text* itself; then no file and no
   ``extra_config`` is read, else
3. ``$VMPOOLER_CONFIG_FILE``, else ``etc/vmpooler.yaml``.

A file's ``:config: extra_config`` (or ``$EXTRA_CONFIG``, which replaces
it) names more files, separated by commas; each is merged in turn into
what was read before it (:func:`vmpoolerd.config.merge.deep_merge`).

vmpoolerd once took ``$VMPOOLER_CONFIG`` for a path: a value that is one
line naming a file that exists is still read as that file, with a warning.

Errors name the source (the path, or ``$VMPOOLER_CONFIG``) and never
quote its text: a YAML error gives its line and column only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import yaml

from .layouts import spelling
from .merge import deep_merge
from .records import ConfigError
from .values import paths

DEFAULT_CONFIG_PATH = "etc/vmpooler.yaml"
TEXT_VARIABLE = "VMPOOLER_CONFIG"
FILE_VARIABLE = "VMPOOLER_CONFIG_FILE"
EXTRA_VARIABLE = "EXTRA_CONFIG"


@dataclass(frozen=True)
class Source:
    """The main configuration: a file (``path``), or the text of ``$VMPOOLER_CONFIG``."""

    label: str  # how errors name it: the path, or "$VMPOOLER_CONFIG"
    path: str | None  # None: the text is $VMPOOLER_CONFIG's
    warnings: tuple[str, ...] = ()


def find_source(option: str | None, environ: Mapping[str, str]) -> Source:
    """The main configuration, by 3.x's precedence (see the module)."""
    text = environ.get(TEXT_VARIABLE)
    if option:
        ignored = (f"${TEXT_VARIABLE}: ignored: --config names the file",) if text else ()
        return Source(option, option, ignored)
    if text:
        if "\n" not in text.strip() and os.path.isfile(text.strip()):
            return Source(text.strip(), text.strip(), (
                f"${TEXT_VARIABLE}: names a file; it now holds the YAML text itself, as in "
                f"vmpooler 3.x: name the file in ${FILE_VARIABLE}",))
        return Source(f"${TEXT_VARIABLE}", None)
    path = environ.get(FILE_VARIABLE) or DEFAULT_CONFIG_PATH
    return Source(path, path)


def config_path(option: str | None, environ: Mapping[str, str]) -> str:
    """The main configuration's label: its path, or ``$VMPOOLER_CONFIG``."""
    return find_source(option, environ).label


def load_yaml(text: str, label: str = "") -> Mapping[Any, Any]:
    """
    The YAML mapping of sections in ``text`` (``label``: where it came
    from, for errors).  An error says where, never what the text holds.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{label}not valid YAML: {e.problem or e.context}{at}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{label}not valid YAML") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{label}the configuration must be a YAML mapping of sections")
    return raw


def read_text(path: str, label: str = "") -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{label}{path}: cannot be read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}{path}: is not UTF-8 text") from None


def read_source(source: Source, environ: Mapping[str, str]) -> Mapping[Any, Any]:
    """The main configuration with its extra files merged in (files only)."""
    if source.path is None:
        return load_yaml(environ[TEXT_VARIABLE])
    return merge_extra_files(load_yaml(read_text(source.path)), source.path, environ)


def extra_files(raw: Mapping[Any, Any], environ: Mapping[str, str]) -> Sequence[str]:
    """The extra files: ``$EXTRA_CONFIG``, else ``:config: extra_config``."""
    if environ.get(EXTRA_VARIABLE):
        return paths(f"${EXTRA_VARIABLE}", environ[EXTRA_VARIABLE])
    config = raw.get(spelling(raw, "config"))
    if not isinstance(config, Mapping) or config.get("extra_config") is None:
        return ()
    return paths(":config:.extra_config", config["extra_config"])


def merge_extra_files(raw: Mapping[Any, Any], path: str | None,
                      environ: Mapping[str, str]) -> Mapping[Any, Any]:
    """
    ``raw`` with each extra file merged in, in order.  A relative path is
    found in the working directory (3.x), else beside the main file
    (vmpoolerd's until now).  Extra files' own ``extra_config`` is not followed.
    """
    where = f"${EXTRA_VARIABLE}" if environ.get(EXTRA_VARIABLE) else ":config:.extra_config"
    merged = raw
    for name in extra_files(raw, environ):
        full = name
        beside = os.path.join(os.path.dirname(path or ""), name)
        if not os.path.isabs(name) and not os.path.exists(name) and os.path.exists(beside):
            full = beside
        try:
            text = read_text(full)
        except ConfigError as e:
            raise ConfigError(f"{where}: {name}: {str(e).split(': ', 1)[1]}") from None
        merged = deep_merge(merged, load_yaml(text, f"{where}: {name}: "))
    return merged


def pool_from_redis(fields: Mapping[str, str]) -> dict[str, Any]:
    """
    A pool as 3.x keeps it in Redis (``vmpooler__pool__<name>``: every
    value a string, ``alias`` joined by commas, switches ``true``/``false``)
    as the file would write it.
    """
    pool: dict[str, Any] = dict(fields)
    if "alias" in pool:
        pool["alias"] = [a for a in pool["alias"].split(",") if a]
        if not pool["alias"]:
            del pool["alias"]
    for key, value in pool.items():
        if value in ("true", "false"):
            pool[key] = value == "true"
    return pool
