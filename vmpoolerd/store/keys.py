"""
Every Redis key and channel the daemon uses, by what it holds.

The names are vmpooler's own (docs/compatibility.rst, "Redis"), so that a
vmpooler and a vmpoolerd can share one Redis.  No module outside
``vmpoolerd.store`` names a key; the Lua scripts build the per-pool and
per-VM keys from the same prefix.
"""

from __future__ import annotations

PREFIX = "vmpooler__"
# A checkout anywhere publishes its pool's name here (wakes the maintainers).
CHECKOUT_CHANNEL = f"{PREFIX}checkout"
# The marker of the Redis the daemons write to, and why its state is in
# doubt (Note [Redis generations] in generation.py).
GENERATION = f"{PREFIX}generation"
DOUBTFUL = f"{PREFIX}doubtful"
# The clones in flight: name -> the epoch second its reservation runs out
# (Note [Clone reservations] in lua/clone_reserve.lua).
CLONING = f"{PREFIX}cloning"
# The sets a pool's VMs are in, as the planner names them.
POOL_SETS = ("pending", "ready", "running", "completed", "discovered")


def vm(host: str) -> str:
    """The VM's hash (template, times, tags, token, snapshots, disks)."""
    return f"{PREFIX}vm__{host}"


def pool_set(state: str, pool: str) -> str:
    """The set of ``pool``'s VMs in ``state`` (one of POOL_SETS)."""
    return f"{PREFIX}{state}__{pool}"


def clone_pause(pool: str) -> str:
    """Set while the pool's clones are paused, failing (JSON: failures,
    reason, until)."""
    return f"{PREFIX}clone_pause__{pool}"


def lease(pool: str) -> str:
    """The pool's lease: the id of the manager maintaining it, while it
    lasts (Note [Pool leases] in manager/leases.py)."""
    return f"{PREFIX}lease__{pool}"


def empty(pool: str) -> str:
    """Set while the pool has no ready VM (vmpooler's flag)."""
    return f"{PREFIX}empty__{pool}"


def tasks(kind: str) -> str:
    """The queued disk, snapshot or snapshot-revert requests."""
    return f"{PREFIX}tasks__{kind}"


def tasks_working(kind: str) -> str:
    """The requests of ``kind`` being worked on: member -> when taken."""
    return f"{PREFIX}tasks__{kind}__working"


def token(value: str) -> str:
    return f"{PREFIX}token__{value}"


def tag(day: str) -> str:
    """The day's tag counts (``YYYY-MM-DD``)."""
    return f"{PREFIX}tag__{day}"


def boot(day: str) -> str:
    """The day's boot times, ``<pool>:<host>`` to seconds."""
    return f"{PREFIX}boot__{day}"


def checkout_batch_prefix(unique: str) -> str:
    """Where a store's checkout batches are marked (see checkout.lua)."""
    return f"{PREFIX}checkout_batch__{unique}_"


def demand(pool: str) -> str:
    """The pool's checkouts by hour (asked:<hour>, hit:<hour>) and their
    folded history (Note [Counting demand] in checkout.lua)."""
    return f"{PREFIX}demand__{pool}"


# The config API (Note [Live pool config] in lua/config_set.lua): the
# kinds of live override, vmpooler 3.x's names, and the set vmpooler keeps
# of the pools whose override of that kind was deleted ('' for none).
OVERRIDES = {
    "poolsize": f"{PREFIX}pool__undo_size_override",
    "template": f"{PREFIX}pool__undo_template_override",
    "clone_target": "",
}
# The pools a reset is asked for (POST /poolreset).
POOL_RESET = f"{PREFIX}poolreset"
# On-demand requests waiting to be provisioned (Note [On-demand requests]
# in lua/ondemand_create.lua).
PROVISIONING = f"{PREFIX}provisioning__request"
# What a new on-demand request publishes on CHECKOUT_CHANNEL.
ONDEMAND_WAKEUP = ":ondemand"
