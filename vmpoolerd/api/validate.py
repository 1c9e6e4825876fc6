"""
Checking what clients send: pure functions from request data to values,
raising :class:`ApiError` (4xx) for anything malformed.  Nothing here
touches Redis, so a bad request never changes state.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, Callable, Mapping, Sequence

from ..config import Config
from .errors import ApiError

# Each pattern must match a whole value (fullmatch: "$" would let a final
# newline through).
HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
TOKEN = re.compile(r"[A-Za-z0-9]{1,128}")
SNAPSHOT = re.compile(r"[A-Za-z0-9._-]{1,128}")
DIGITS = re.compile(r"[0-9]{1,9}")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_NAME = 200
MAX_TAG_KEY = 255
MAX_TAG_VALUE = 4096
MAX_TAGS = 64  # in one request, and on one VM
MAX_LISTED = 1000  # names listed in a refusal
BAD_JSON = "JSON payload could not be parsed"  # vmpooler 3.x's message


def parse_json_object(body: bytes, what: str) -> dict[str, Any] | None:
    """A JSON object, or ``None`` for an empty body."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, f"{what} is not valid JSON",
                       v3={"message": BAD_JSON}) from None
    if not isinstance(data, dict):
        raise ApiError(400, f"{what} must be a JSON object")
    return data


def positive_integer(value: Any, what: str) -> int:
    """A positive integer given as a JSON number or a string of digits."""
    if isinstance(value, str) and DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 \
            or value > 999_999_999:
        raise ApiError(400, f"{what} must be a positive integer")
    return value


MAX_POOL_SIZE = 10_000
MAX_SETTING = 255  # characters of a template path or clone target


def pool_size(value: Any, what: str) -> int:
    """A live pool size: an integer from 0 (no VM kept ready) up."""
    if isinstance(value, str) and DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not \
            0 <= value <= MAX_POOL_SIZE:
        raise ApiError(400, f"{what} must be an integer from 0 to {MAX_POOL_SIZE}")
    return value


def pool_setting(value: Any, what: str) -> str:
    """A template path or clone target: printable text, not blank."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SETTING \
            or not value.isprintable() or not _is_text(value):
        raise ApiError(400, f"{what} must be printable text of 1 to {MAX_SETTING} "
                            "characters")
    return value.strip()


def template(value: Any, what: str) -> str:
    """A template's path: a pool setting with a folder ('Folder/name')."""
    path = pool_setting(value, what)
    if "/" not in path.strip("/"):
        raise ApiError(400, f"{what} must be a template's path, 'Folder/name'")
    return path


def known_pool(config: Config, name: str) -> str:
    if name not in config.pool_names:
        raise ApiError(404, f"unknown pool: {name[:MAX_NAME]!r}")
    return name


def pool_values(config: Config, body: bytes, check: Callable[[Any, str], Any],
                faults: str = "") -> dict[str, Any]:
    """
    ``{"pool": value, ...}``: every pool known (else 404, naming them) and
    every value good (else 400), so that a body with one bad entry changes
    nothing.  A refusal lists the pools at fault for v3 under ``faults``
    (vmpooler 3.x's key), unknown ones first.
    """
    data = parse_json_object(body, "the request body")
    if not data:
        raise ApiError(400, "give the pools and their values as a JSON object, "
                            'such as {"pool": "value"}')
    unknown = sorted(name for name in data if name not in config.pool_names)
    if unknown:
        shown = ", ".join(repr(name[:MAX_NAME]) for name in unknown[:10])
        raise ApiError(404, f"unknown pool: {shown}",
                       v3={faults: [n[:MAX_NAME] for n in unknown[:MAX_LISTED]]}
                       if faults else None)
    values: dict[str, Any] = {}
    bad: list[str] = []
    first: ApiError | None = None
    for name, value in data.items():
        try:
            values[name] = check(value, f"the value of {name!r}")
        except ApiError as e:
            first, bad = first or e, bad + [name]
    if first is not None:
        raise first.with_v3(**({faults: bad} if faults else {}))
    return values


def checkout_counts_from_body(body: bytes) -> dict[str, int]:
    data = parse_json_object(body, "the request body") or {}
    return {name: positive_integer(count, f"the count of {name[:MAX_NAME]!r}")
            for name, count in data.items()}


def checkout_counts_from_path(names: str) -> dict[str, int]:
    """``a+a+b`` as ``{"a": 2, "b": 1}``."""
    counts: dict[str, int] = {}
    for name in names.split("+"):
        if not name:
            raise ApiError(400, "empty pool name in the path")
        counts[name] = counts.get(name, 0) + 1
    return counts


def checkout_plan(config: Config, counts: Mapping[str, int]
                  ) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    """
    ``(name, count, pools)`` for each name asked for; 404 for a name that is
    no pool or alias, or for no name at all; 400 past ``max_request_vms``.
    """
    if not counts:
        raise ApiError(404, "no pool was requested")
    plan = tuple((name, count, config.pools_for(name)) for name, count in counts.items())
    unknown = [name for name, _, pools in plan if not pools]
    if unknown:
        shown = ", ".join(repr(n[:MAX_NAME]) for n in unknown[:10])
        raise ApiError(404, f"unknown pool: {shown}")
    limit = config.service.max_request_vms
    if sum(counts.values()) > limit:
        raise ApiError(400, f"a request may ask for at most {limit} VMs")
    return plan


def hostname(config: Config, value: str, domains: Sequence[str] = ()) -> str:
    """
    A VM name, ``<name>.<domain>`` accepted for ``:config: domain`` and
    for ``domains`` (the pools' own); 400 when malformed.
    """
    for domain in (config.service.domain, *domains):
        if domain and value.endswith("." + domain):
            value = value[: -len(domain) - 1]
            break
    if not HOSTNAME.fullmatch(value):
        raise ApiError(400, "malformed hostname")
    return value


def token(value: str) -> str:
    if not TOKEN.fullmatch(value):
        raise ApiError(400, "malformed token")
    return value


def snapshot_name(value: str) -> str:
    if not SNAPSHOT.fullmatch(value):
        raise ApiError(400, "malformed snapshot name")
    return value


def vm_changes(config: Config, body: bytes) -> tuple[int | None, dict[str, str]]:
    """
    The ``lifetime`` (hours) and ``tags`` of a ``PUT /vm/<host>``; 400 for
    anything else, for wrong types, and for tags ``allowed_tags`` forbids.
    Tag values are passed through ``:tagfilter:``.
    """
    data = parse_json_object(body, "the request body")
    if not data:
        raise ApiError(400, "nothing to change: give lifetime and/or tags")
    extra = sorted(set(data) - {"lifetime", "tags"})
    if extra:
        raise ApiError(400, f"unknown parameter: {', '.join(k[:MAX_NAME] for k in extra)}")
    lifetime = positive_integer(data["lifetime"], "lifetime") if "lifetime" in data else None
    limit = config.service.max_lifetime_upper_limit_hours
    if lifetime is not None and limit is not None and lifetime > limit:
        raise ApiError(400, f"lifetime must be at most {limit} hours")
    tags: dict[str, str] = {}
    if "tags" in data:
        raw = data["tags"]
        if not isinstance(raw, dict):
            raise ApiError(400, "tags must be an object of strings")
        if len(raw) > MAX_TAGS:
            raise ApiError(400, f"at most {MAX_TAGS} tags may be given at once")
        allowed = config.service.allowed_tags
        for key, value in raw.items():
            if not key or len(key) > MAX_TAG_KEY or "\0" in key or not _is_text(key):
                raise ApiError(400, "a tag name must be 1 to 255 characters of text")
            if not isinstance(value, str) or len(value) > MAX_TAG_VALUE or not _is_text(value):
                raise ApiError(400, f"the value of tag {key!r} must be text "
                               f"of at most {MAX_TAG_VALUE} characters")
            if allowed is not None and key not in allowed:
                raise ApiError(400, f"tag {key!r} is not allowed")
            tags[key] = filter_tag(config, key, value)
    return lifetime, tags


def _is_text(value: str) -> bool:
    """Not a lone surrogate (JSON can carry one; UTF-8 and Redis cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def filter_tag(config: Config, key: str, value: str) -> str:
    """vmpooler's ``:tagfilter:``: a matching value becomes its captures."""
    for tag, pattern in config.tagfilter:
        if tag == key:
            match = pattern.search(value)
            if match and match.groups():
                return "".join(g or "" for g in match.groups())
    return value


def day(value: str, what: str) -> date:
    if not DAY.fullmatch(value):
        raise ApiError(400, f"{what} must be a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{what} is not a real date") from None
