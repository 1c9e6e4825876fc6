"""
Checks of single values: each takes the key's path (for its error) and the
value, and returns the value typed, or raises ConfigError naming the key.
No check puts the value itself in its error unless the value is a name
(never a password or token).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from twisted.internet.endpoints import serverFromString

from .records import ConfigError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a whole name: fullmatch
# Checkout answers put pools beside these keys (docs/compatibility.rst, "API v1").
RESERVED_NAMES = ("ok", "domain")


def string(where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: must be a string")
    text = str(value)
    if not text:
        raise ConfigError(f"{where}: must not be empty")
    return text


def name(where: str, value: Any) -> str:
    text = string(where, value)
    if not NAME_PATTERN.fullmatch(text) or len(text) > 200:
        raise ConfigError(
            f"{where}: must be letters, digits, '.', '_' or '-' "
            f"(at most 200), not {text!r}")
    return text


def pool_name(where: str, value: Any) -> str:
    text = name(where, value)
    if text in RESERVED_NAMES:
        raise ConfigError(f"{where}: {text!r} is reserved in API answers")
    return text


def integer(minimum: int) -> Callable[[str, Any], int]:
    def check(where: str, value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ConfigError(f"{where}: must be {kind}")
        return value
    return check


positive_int = integer(1)
port_or_zero = integer(0)


def port(where: str, value: Any) -> int:
    port = positive_int(where, value)
    if port > 65535:
        raise ConfigError(f"{where}: must be a port number (1-65535)")
    return port


def positive_number(where: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value != value or value == float("inf"):
        raise ConfigError(f"{where}: must be a positive number")
    return float(value)


def fraction(where: str, value: Any) -> float:
    number = positive_number(where, value)
    if number >= 1:
        raise ConfigError(f"{where}: must be a number between 0 and 1 (such as 0.99), "
                          f"not {value!r}")
    return number


def listen(where: str, value: Any) -> str:
    """A server endpoint description that Twisted can build (its key and
    certificate files read, for ssl), checked without listening."""
    description = string(where, value)
    try:
        serverFromString(_NoReactor(), description)
    except Exception as e:
        raise ConfigError(f"{where}: not a server endpoint description Twisted can use "
                          f"({description!r}): {e}") from None
    return description


class _NoReactor:
    """What an endpoint is built on to be checked: it never listens."""


def boolean(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false")
    return value


def one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(where: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(choices)}")
        return str(value)
    return check


def string_list(item: Callable[[str, Any], str]) -> Callable[[str, Any], tuple[str, ...]]:
    def check(where: str, value: Any) -> tuple[str, ...]:
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConfigError(f"{where}: must not be empty")
        return tuple(item(f"{where}[{i}]", v) for i, v in enumerate(values))
    return check


def trusted_proxy(where: str, value: Any) -> str:
    """An address, a network (``10.0.0.0/8``, ``fd00::/8``) or ``unix`` (the
    UNIX socket's peer): Note [Client addresses] in api/clients.py."""
    text = string(where, value).strip()
    if text == "unix":
        return text
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ConfigError(f"{where}: must be an address, a network (address/prefix) or "
                          f"'unix', not {text!r}") from None


def folder_path(where: str, value: Any) -> str:
    """A folder's inventory path ('Templates/linux'), without '.' or '..'
    parts; kept without its outer slashes."""
    text = string(where, value).strip().strip("/")
    if not text or any(part in ("", ".", "..") for part in text.split("/")):
        raise ConfigError(f"{where}: must be a folder's path ('Templates/linux'), "
                          f"not {value!r}")
    return text


def non_negative_int(where: str, value: Any) -> int:
    return integer(0)(where, value)


def seconds(where: str, value: Any) -> float:
    """A number of seconds, 0 or more."""
    if value == 0:
        return 0.0
    return positive_number(where, value)


def percent(where: str, value: Any) -> int:
    number = integer(0)(where, value)
    if number > 100:
        raise ConfigError(f"{where}: must be a percentage (0-100)")
    return number


def prefix(where: str, value: Any) -> str:
    return "" if value == "" else name(where, value)


def path(where: str, value: Any) -> str:
    """A URL path (``/prometheus``)."""
    text = string(where, value)
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise ConfigError(f"{where}: must be a path starting with '/', not {text!r}")
    return text


def paths(where: str, value: Any) -> tuple[str, ...]:
    """A path, a list of paths, or paths separated by commas (vmpooler's way)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    return string_list(string)(where, value)


def address(where: str, value: Any) -> tuple[str, int]:
    """``host:port`` (a Sentinel's)."""
    host, colon, number = string(where, value).rpartition(":")
    if not colon or not host:
        raise ConfigError(f"{where}: must be host:port, not {value!r}")
    return host.strip("[]"), port(where, number)


def addresses(where: str, value: Any) -> tuple[tuple[str, int], ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{where}: must list at least one Sentinel (host:port)")
    return tuple(address(f"{where}[{i}]", v) for i, v in enumerate(values))
