"""
Every Redis key and channel the daemon uses, by what it holds.

The names are vmpooler's own (docs/compatibility.rst, "Redis"), so that a
vmpooler and a vmpoolerd can share one Redis.  No module outside
``vmpoolerd.store`` names a key.

Note [One key layout]: the Lua scripts name no key themselves.  Each is
run after a prelude (prelude.py) whose table ``K`` is generated from this
module's ``LUA`` table: ``K.vm(host)`` is built from :func:`vm` itself, so
that the two languages cannot spell a key differently.  A test
(tests/test_store_lua.py) fails when a script spells the prefix, uses a
builder this table lacks, or a builder builds other than Python does.
"""

from __future__ import annotations

from typing import Callable

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
# The on-demand clones among them (Note [On-demand VMs] in ondemand_create.lua).
ODCLONING = f"{PREFIX}odcloning"
# The sets a pool's VMs are in, as the planner names them.
POOL_SETS = ("pending", "ready", "running", "completed", "discovered")
# Each pool's last boot time, by pool.
LASTBOOT = f"{PREFIX}lastboot"
# The managers alive (each also has its manager() key while it lives).
MANAGERS = f"{PREFIX}managers"
# vmpooler 3.x's manager records here the template it prepared for each
# pool (pool -> template); vmpoolerd only reads it (GET /config's
# template_ready).
PREPARED_TEMPLATES = f"{PREFIX}template__prepared"
# The names of the pools configured, as vmpooler 3.x keeps them (a 3.x API
# finds the pools here; a file without :pools: is read from here).
POOLS = f"{PREFIX}pools"


def vm(host: str) -> str:
    """The VM's hash (template, times, tags, token, snapshots, disks)."""
    return f"{PREFIX}vm__{host}"


def pool_config(pool: str) -> str:
    """The pool's configuration as 3.x keeps it: its keys, ``alias``
    comma-joined, and its ``domain`` (published.py)."""
    return f"{PREFIX}pool__{pool}"


def pool_set(state: str, pool: str) -> str:
    """The set of ``pool``'s VMs in ``state`` (one of POOL_SETS)."""
    return f"{PREFIX}{state}__{pool}"


def active(pool: str) -> str:
    """The pool's checked-out VMs: hostname -> checkout time."""
    return f"{PREFIX}active__{pool}"


def failure_counts(pool: str) -> str:
    """The pool's failures counted by kind (Note [Failures explained])."""
    return f"{PREFIX}failure_counts__{pool}"


def failures(pool: str) -> str:
    """The pool's last failures, newest first (JSON each)."""
    return f"{PREFIX}failures__{pool}"


def dashboard(pool: str) -> str:
    """The pool's sampled ready and running counts (dashboard_sample.lua)."""
    return f"{PREFIX}dashboard__{pool}"


def clone_pause(pool: str) -> str:
    """Set while the pool's clones are paused, failing (JSON: failures,
    reason, until)."""
    return f"{PREFIX}clone_pause__{pool}"


def lease(pool: str) -> str:
    """The pool's lease: the id of the manager maintaining it, while it
    lasts (Note [Pool leases] in manager/leases.py)."""
    return f"{PREFIX}lease__{pool}"


def manager(identity: str) -> str:
    """Exists while the manager ``identity`` lives (lease_round.lua)."""
    return f"{PREFIX}manager__{identity}"


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


def token_vms(value: str) -> str:
    """The hostnames checked out with the token ``value`` (Note [Token
    index] in lua/preamble/vms.lua).  Not ``token__<t>__vms``: vmpooler
    lists tokens by the pattern ``vmpooler__token__*`` and reads each match
    as a hash (as token_scan.lua does)."""
    return f"{PREFIX}tokenvms__{value}"


def tag(day: str) -> str:
    """The day's tag counts (``YYYY-MM-DD``)."""
    return f"{PREFIX}tag__{day}"


def boot(day: str) -> str:
    """The day's boot times, ``<pool>:<host>`` to seconds."""
    return f"{PREFIX}boot__{day}"


def clone(day: str) -> str:
    """The day's clone times, ``<pool>:<host>`` to seconds."""
    return f"{PREFIX}clone__{day}"


def ratelimit(subject: str, window: str) -> str:
    """Attempts of ``subject`` counted in the fixed window ``window``."""
    return f"{PREFIX}ratelimit__{subject}__{window}"


def checkout_batch_prefix(unique: str) -> str:
    """Where a store's checkout batches are marked (see checkout.lua)."""
    return f"{PREFIX}checkout_batch__{unique}_"


def demand(pool: str) -> str:
    """The pool's checkouts by hour (asked:<hour>, hit:<hour>) and their
    folded history (Note [Counting demand] in checkout.lua)."""
    return f"{PREFIX}demand__{pool}"


def demand_refused(pool: str, client: str) -> str:
    """Set while a refusal of ``client`` (a token's owner, '' anonymous) has
    counted in the pool's demand (Note [Refusals counted] in checkout.lua)."""
    return f"{PREFIX}demand_refused__{pool}__{client}"


# The config API (Note [Live pool config] in lua/config_set.lua): the
# kinds of live override, vmpooler 3.x's names, and the set vmpooler keeps
# of the pools whose override of that kind was deleted ('' for none).
UNDO_SIZE_OVERRIDE = f"{PREFIX}pool__undo_size_override"
UNDO_TEMPLATE_OVERRIDE = f"{PREFIX}pool__undo_template_override"
OVERRIDES = {
    "poolsize": UNDO_SIZE_OVERRIDE,
    "template": UNDO_TEMPLATE_OVERRIDE,
    "clone_target": "",
}


def config(kind: str) -> str:
    """The live override of ``kind`` (a key of OVERRIDES): pool -> value."""
    return f"{PREFIX}config__{kind}"


# The template each pool's VMs were last cloned from (pool_drain.lua).
TEMPLATE_CLONED = f"{PREFIX}pool__template_cloned"
# The pools a reset is asked for (POST /poolreset).
POOL_RESET = f"{PREFIX}poolreset"
# On-demand requests no manager has taken yet, and those being provisioned
# (vmpooler 3.x's): id -> the epoch second it was asked (Note [On-demand
# requests] in lua/ondemand_create.lua).
PROVISIONING = f"{PREFIX}provisioning__request"
PROCESSING = f"{PREFIX}provisioning__processing"
# The clones still to start for taken requests (vmpooler 3.x's):
# "alias:pool:count:id" -> when queued (Note [On-demand records]).
ODCREATE = f"{PREFIX}odcreate__task"
# What a new on-demand request publishes on CHECKOUT_CHANNEL.
ONDEMAND_WAKEUP = ":ondemand"


def odrequest(request_id: str) -> str:
    """An on-demand request's hash (requested, token, status...)."""
    return f"{PREFIX}odrequest__{request_id}"


def odvms(request_id: str, alias: str, pool: str) -> str:
    """The request's VMs handed out for ``alias`` from ``pool`` (vmpooler
    3.x's set; Note [On-demand records] in lua/preamble/ondemand.lua)."""
    return f"{PREFIX}{request_id}__{alias}__{pool}"


def odclaim(request_id: str) -> str:
    """The id of the manager provisioning the request, while it does."""
    return f"{PREFIX}odclaim__{request_id}"


def odpending(request_id: str) -> str:
    """The request's VMs being cloned."""
    return f"{PREFIX}odpending__{request_id}"


def odready(request_id: str) -> str:
    """The request's VMs ready, not yet handed out."""
    return f"{PREFIX}odready__{request_id}"


def ondemand(pool: str) -> str:
    """The pool's VMs that on-demand requests are provisioning."""
    return f"{PREFIX}ondemand__{pool}"


# What the Lua prelude's table K holds (Note [One key layout]): every key
# family above, by the name the scripts use.
LUA: dict[str, str | Callable[..., str]] = {
    "CHECKOUT_CHANNEL": CHECKOUT_CHANNEL, "ONDEMAND_WAKEUP": ONDEMAND_WAKEUP,
    "GENERATION": GENERATION, "DOUBTFUL": DOUBTFUL, "CLONING": CLONING,
    "ODCLONING": ODCLONING, "LASTBOOT": LASTBOOT, "MANAGERS": MANAGERS, "POOLS": POOLS,
    "POOL_RESET": POOL_RESET, "PROVISIONING": PROVISIONING, "PROCESSING": PROCESSING,
    "ODCREATE": ODCREATE, "TEMPLATE_CLONED": TEMPLATE_CLONED,
    "PREPARED_TEMPLATES": PREPARED_TEMPLATES, "UNDO_SIZE_OVERRIDE": UNDO_SIZE_OVERRIDE,
    "UNDO_TEMPLATE_OVERRIDE": UNDO_TEMPLATE_OVERRIDE,
    "vm": vm, "pool_set": pool_set, "active": active, "failure_counts": failure_counts,
    "pool_config": pool_config,
    "failures": failures, "dashboard": dashboard, "clone_pause": clone_pause,
    "lease": lease, "manager": manager, "empty": empty, "tasks": tasks,
    "tasks_working": tasks_working, "token": token, "token_vms": token_vms, "tag": tag,
    "boot": boot, "clone": clone, "ratelimit": ratelimit, "demand": demand,
    "demand_refused": demand_refused, "config": config,
    "odrequest": odrequest, "odvms": odvms, "odclaim": odclaim, "odpending": odpending,
    "odready": odready, "ondemand": ondemand, "checkout_batch_prefix": checkout_batch_prefix,
}
