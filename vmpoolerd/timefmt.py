"""
Timestamps as vmpooler writes them in Redis: ``YYYY-MM-DD HH:MM:SS +ZZZZ``,
local time with its offset (Ruby's ``Time#to_s``).  Reading is lenient:
ISO 8601 and naive stamps are accepted too (naive ones are taken as local).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timezone

_FORMATS = (
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M:%S.%f %z",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
)


def format_time(seconds: float) -> str:
    """Seconds since the epoch as ``2015-04-28 19:17:47 -0700``."""
    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def utc_offset(seconds: float) -> float:
    """Seconds local time is ahead of UTC at ``seconds``."""
    offset = datetime.fromtimestamp(seconds).astimezone().utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def hour_of(seconds: float, offset: float) -> int:
    """Hours since the epoch, in the local time ``offset`` seconds ahead of
    UTC (the hours demand is counted by)."""
    return math.floor((seconds + offset) / 3600)


def local_date(seconds: float) -> date:
    return datetime.fromtimestamp(seconds).astimezone().date()


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch, or ``None`` when ``text`` is not a time."""
    if not text:
        return None
    text = text.strip()
    for fmt in _FORMATS:
        try:
            stamp = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    else:
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if stamp.tzinfo is None:
        stamp = stamp.astimezone()
    return stamp.astimezone(timezone.utc).timestamp()
