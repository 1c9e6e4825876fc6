"""
What each Lua script of ``lua/`` takes and answers, declared once.

Note [Declared script arguments]: a script is called by name with keyword
arguments (``Scripts._script("vm_failed", pool=..., host=...)``), and
reads them as Lua locals of the same names, which the prelude (prelude.py)
defines from the declaration below; no script indexes ``KEYS`` or ``ARGV``
by number, and no Python call counts positions, so the two languages
cannot drift apart.  A call with a name missing or not declared raises
TypeError before Redis is asked.

A declaration lists, in order: the ``keys`` (KEYS), the ``args`` (ARGV),
then ``tails``: lists of any length, each but the last sent after its
length, read in Lua as tables.  ``optional`` names (the last keys, or the
last args) may be left out, and are then nil in Lua.  ``numbers`` are
args Lua reads with ``tonumber``.  ``answer`` decodes what the script
returns.  Names are Lua locals: none is a Lua keyword, nor ``on`` (the
connection argument of ``_script``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

LUA_KEYWORDS = frozenset(
    "and break do else elseif end false for function goto if in local nil not or "
    "repeat return then true until while".split())


def same(answer: Any) -> Any:
    return answer


def as_list(answer: Any) -> list[Any]:
    """A Lua table; an empty one arrives as nil."""
    return list(answer or [])


def as_json(answer: Any) -> Any:
    return json.loads(answer)


@dataclass(frozen=True)
class Script:
    name: str
    keys: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    tails: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    answer: Callable[[Any], Any] = same

    def __post_init__(self) -> None:
        names = [*self.keys, *self.args, *self.tails]
        bad = [n for n in names if not n.isidentifier() or n in LUA_KEYWORDS or n == "on"]
        if bad or len(set(names)) != len(names):
            raise ValueError(f"script {self.name}: bad or repeated names {names}")
        for part in (self.keys, self.args):
            required = [n for n in part if n not in self.optional]
            if list(part[:len(required)]) != required:
                raise ValueError(f"script {self.name}: optional names must come last")
        if not self.numbers <= set(self.args) - self.optional:
            raise ValueError(f"script {self.name}: numbers must be required args")
        if not self.optional <= set(self.keys) | set(self.args):
            raise ValueError(f"script {self.name}: optional names must be keys or args")

    def arrange(self, named: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV for a call, in the declared order."""
        names = (*self.keys, *self.args, *self.tails)
        missing = [n for n in names if n not in named and n not in self.optional]
        extra = sorted(set(named) - set(names))
        if missing or extra:
            raise TypeError(f"script {self.name}: missing {missing}, not declared {extra}")
        keys = [named[n] for n in self.keys if n in named]
        args = [named[n] for n in self.args if n in named]
        for tail in self.tails[:-1]:
            args += [len(named[tail]), *named[tail]]
        if self.tails:
            args += list(named[self.tails[-1]])
        return keys, args

    def lua_locals(self, offset: int = 0) -> str:
        """The Lua that names the arguments (after ``offset`` leading ARGV
        the script does not declare: the lease's, Note [Pool leases])."""
        lines = [f"local {n} = KEYS[{i}]" for i, n in enumerate(self.keys, 1)]
        for i, n in enumerate(self.args, offset + 1):
            lines.append(f"local {n} = tonumber(ARGV[{i}])" if n in self.numbers
                         else f"local {n} = ARGV[{i}]")
        if self.tails:
            first = offset + len(self.args) + 1
            lines.append(f"local {', '.join(self.tails)} = "
                         f"{', '.join('{}' for _ in self.tails)}")
            lines.append(f"do local i = {first}")
            for tail in self.tails[:-1]:
                lines.append(f"  local n = tonumber(ARGV[i]); i = i + 1\n"
                             f"  for j = i, i + n - 1 do {tail}[#{tail} + 1] = ARGV[j] end\n"
                             f"  i = i + n")
            last = self.tails[-1]
            lines.append(f"  for j = i, #ARGV do {last}[#{last} + 1] = ARGV[j] end\nend")
        return "\n".join(lines)


def _n(*names: str) -> frozenset[str]:
    return frozenset(names)


SCRIPTS: dict[str, Script] = {s.name: s for s in [
    Script("adopt", args=("now",), tails=("pools",), answer=int),
    Script("checkout", keys=("batch_key",),
           args=("requests", "undo_window", "generation_id", "generation_count"),
           answer=as_json),
    Script("checkout_undo", keys=("batch_key",), args=("window", "hosts"),
           optional=_n("batch_key", "hosts"), answer=int),
    Script("clone_end", args=("pool", "host", "outcome", "seconds", "day")),
    Script("clone_reserve", args=("pool", "limit", "size", "now", "epoch", "lease"),
           tails=("names",), numbers=_n("limit", "size", "epoch", "lease"), answer=as_list),
    Script("cloning", args=("epoch",), numbers=_n("epoch"), answer=as_list),
    Script("command", tails=("command",)),
    Script("config_read", tails=("pools",), answer=as_list),
    Script("config_set", args=("kind",), tails=("settings",), answer=as_list),
    Script("config_unset", args=("kind", "pool", "undo_set"), answer=bool),
    Script("dashboard_read", args=("since",), tails=("pool_names",), numbers=_n("since")),
    Script("dashboard_sample", args=("now", "horizon", "ttl", "gap"), tails=("pools",),
           numbers=_n("now", "horizon", "ttl", "gap"), answer=int),
    Script("demand_save", keys=("key",),
           args=("model", "version", "keep_seconds", "keep_from", "shown"),
           numbers=_n("keep_from"), answer=bool),
    Script("generation", args=("known_id", "known_n", "new_id", "with_pools"),
           tails=("pools",), numbers=_n("known_n", "with_pools")),
    Script("held"),
    Script("lease_release", args=("id",), tails=("pools",)),
    Script("lease_round", args=("id", "ttl", "deadline"), tails=("pools", "reserved"),
           numbers=_n("ttl"), answer=lambda held: frozenset(held or [])),
    Script("move", args=("change",), answer=bool),
    Script("ondemand_claim", args=("id", "manager", "life", "epoch"), answer=bool),
    Script("ondemand_create",
           args=("id", "requested", "epoch", "token", "user", "user_dn", "asker", "client",
                 "asker_bound", "bound"),
           numbers=_n("asker_bound", "bound"), answer=int),
    Script("ondemand_end", args=("id", "status", "message", "keep"), answer=int),
    Script("ondemand_handout", args=("id", "now", "keep"), answer=bool),
    Script("ondemand_read", args=("id",)),
    Script("ondemand_reserve",
           args=("id", "alias", "pool", "limit", "od_limit", "now", "epoch", "lease"),
           tails=("names",), numbers=_n("limit", "od_limit", "epoch", "lease"),
           answer=as_list),
    Script("ondemand_vm", args=("id", "host", "pool", "outcome", "now", "reason", "epoch"),
           answer=bool),
    Script("pool_drain", args=("pool", "seen", "template", "reset"), answer=int),
    Script("pool_state", args=("pool", "epoch"), numbers=_n("epoch"), answer=as_json),
    Script("pools_publish", args=("published",), answer=as_list),
    Script("queue_task", keys=("vm_key", "tasks"),
           args=("member", "needs_field", "owner", "per_vm", "most"),
           numbers=_n("per_vm", "most"), answer=int),
    Script("password_settle", args=("user", "address", "window_index", "outcome", "known_for"),
           numbers=_n("known_for")),
    Script("password_try",
           args=("now", "user", "address", "per_pair", "per_address", "per_user", "window"),
           numbers=_n("now", "per_pair", "per_address", "per_user", "window")),
    Script("request_limit", keys=("counter", "token_key", "address_counter"),
           args=("period",), optional=_n("token_key", "address_counter"),
           numbers=_n("period")),
    Script("status", tails=("pool_names",)),
    Script("summary", args=("what",), tails=("dates",), answer=as_json),
    Script("task_pop", keys=("tasks_key", "working_key"), args=("now", "lease"),
           numbers=_n("now", "lease")),
    Script("token_delete", keys=("token_key", "index_key"), args=("dn", "user"), answer=int),
    Script("token_index", args=("pool", "cursor", "count"), numbers=_n("count"), answer=str),
    Script("token_scan", args=("cursor", "dn", "user")),
    Script("token_touch", keys=("token_key",), args=("now",)),
    Script("token_vms", args=("token",), tails=("pools",)),
    Script("vm_failed", args=("pool", "host", "kind", "reason", "now", "keep"),
           numbers=_n("keep")),
    Script("vm_info", args=("host",)),
    Script("vm_record", keys=("vm_key",), args=("field", "value", "mode")),
    Script("vm_return", args=("host", "owner"), answer=int),
    Script("vm_update",
           args=("host", "tags_key", "change_json", "owner", "history_seconds", "most_tags"),
           numbers=_n("most_tags"), answer=int),
]}
