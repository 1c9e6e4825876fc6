"""
The Lua each script runs after (Note [One key layout] in keys.py): the
key builders ``K`` generated from keys.LUA, the answers ``R`` from
errors.VmChange, and the rules several scripts share
(``lua/preamble/clones.lua``, ``vms.lua``; ``ondemand.lua`` for the
scripts that call its ``od_`` functions), then the script's arguments as
named locals (Note [Declared script arguments] in script_specs.py); a lease
holder's scripts also check ``lua/preamble/lease.lua`` (Note [Pool leases])
before their own code.
"""

from __future__ import annotations

import inspect
import re
from importlib import resources
from typing import Callable

from . import keys
from .errors import VmChange
from .script_specs import Script

_MARK = re.compile("\0(\\d+)\0")
_USED = re.compile(r"\bK\.(\w+)")
_ONDEMAND = re.compile(r"\bod_\w+\(")


def lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lua_builder(name: str, value: str | Callable[..., str]) -> str:
    """One entry of ``K``: a constant, or a function built from the Python
    one by calling it with marks where its arguments go."""
    if isinstance(value, str):
        return f"K.{name} = {lua_string(value)}"
    params = list(inspect.signature(value).parameters)
    parts = _MARK.split(value(*(f"\0{i}\0" for i in range(len(params)))))
    pieces = [params[int(part)] if odd else lua_string(part)
              for odd, part in ((i % 2 == 1, p) for i, p in enumerate(parts))
              if odd or part]
    return f"function K.{name}({', '.join(params)}) return {' .. '.join(pieces)} end"


def _preamble(name: str) -> str:
    return resources.files(__package__).joinpath("lua", "preamble", name).read_text()


# A lease holder's calls start with the lease's key and the holder's id
# (Scripts.fenced_by); the script's declared arguments follow.
FENCE = "local fence_key, fence_holder = ARGV[1], ARGV[2]"


def prelude(script: str, fenced: bool = False, declared: Script | None = None) -> str:
    """What runs before ``script``: only the builders it (or the shared
    rules) uses, so that a call defines no more functions than it needs;
    the arguments as ``declared``."""
    shared = _preamble("clones.lua") + _preamble("vms.lua")
    if _ONDEMAND.search(script):  # Note [On-demand records]
        shared += _preamble("ondemand.lua")
    used = sorted(set(_USED.findall(shared + script)))
    unknown = [name for name in used if name not in keys.LUA]
    if unknown:
        raise KeyError(f"keys.LUA has no {', '.join(unknown)}")
    answers = ", ".join(f"{answer.name} = {int(answer)}" for answer in VmChange)
    return "\n".join([
        "local K = {}", *(lua_builder(name, keys.LUA[name]) for name in used),
        f"local R = {{{answers}}}", shared, FENCE if fenced else "",
        declared.lua_locals(offset=2 if fenced else 0) if declared else "",
        _preamble("lease.lua") if fenced else ""])
