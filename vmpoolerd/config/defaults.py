"""
Each generation's defaults, for its own layout (``layouts.layout``).

A 2016 file (a single ``:vsphere:``) starts from :class:`ServiceConfig`'s
own defaults, which are the 2016 vmpooler's and vmpoolerd's until now; a
3.x file (``:providers:``) from 3.x's, which differ only where listed in
:data:`THREE_X` (3.9.1's ``lib/vmpooler.rb``).  The file's keys and then
the environment override either.  ``docs/compatibility.rst``
("Defaults") sets the two side by side, key by key.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

from . import layouts
from .records import ServiceConfig

# ServiceConfig field -> 3.x's default, where it differs from 2016's.
THREE_X: Mapping[str, Any] = {
    # Ready VMs are checked every minute, not every 15.
    "vm_checktime_minutes": 1.0,
    # A ready VM older than an hour is replaced (2016: kept however old).
    "ready_ttl_minutes": 60.0,
    # Clones are linked clones unless told not to (2016: full copies).
    "create_linked_clones": True,
    # No ceiling on the lifetime a client may ask for (vmpoolerd's 2016: two weeks).
    "max_lifetime_upper_limit_hours": None,
}

GENERATION_2016: Mapping[str, Any] = {
    f.name: f.default for f in fields(ServiceConfig)}


def service_defaults(layout: str) -> dict[str, Any]:
    """The ``:config:`` defaults of a file of ``layout`` (ServiceConfig fields)."""
    if layout == layouts.THREE_X:
        return {**GENERATION_2016, **THREE_X}
    return dict(GENERATION_2016)
