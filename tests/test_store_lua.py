"""
The Lua scripts' one key layout and one table of answers (Note [One key
layout] in vmpoolerd/store/keys.py): no script spells a key, and what the
prelude builds in Redis is what keys.py builds in Python.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from vmpoolerd.store import keys
from vmpoolerd.store.errors import VmChange
from vmpoolerd.store.prelude import lua_builder, prelude
from vmpoolerd.store.script_specs import SCRIPTS, Script
from vmpoolerd.store.scripts import Scripts, load_scripts

from .redis_server import fresh_redis

LUA = resources.files("vmpoolerd.store").joinpath("lua")
# Arguments that exercise every builder: plain, and with Lua's specials.
ARGS = ("pool-a", "host.example.com", "a'b\\c", "%s..*", "")


def lua_files() -> dict[str, str]:
    files = {f"lua/{entry.name}": entry.read_text() for entry in LUA.iterdir()
             if entry.name.endswith(".lua")}
    files.update({f"lua/preamble/{entry.name}": entry.read_text()
                  for entry in LUA.joinpath("preamble").iterdir()})
    return files


def code_of(source: str) -> str:
    """The Lua without its comments."""
    return "\n".join(re.sub(r"--.*$", "", line) for line in source.split("\n"))


class SourceTests(SynchronousTestCase):
    def test_no_script_spells_the_prefix(self) -> None:
        spelled = [name for name, source in lua_files().items()
                   if keys.PREFIX in code_of(source)]
        self.assertEqual(spelled, [], "build keys with K (Note [One key layout])")

    def test_every_builder_a_script_uses_is_in_keys(self) -> None:
        used = {name for source in lua_files().values()
                for name in re.findall(r"\bK\.(\w+)", code_of(source))}
        self.assertEqual(sorted(used - set(keys.LUA)), [])
        self.assertEqual(len(load_scripts()), len(load_scripts(fenced=True)))

    def test_vm_changes_answer_from_the_table(self) -> None:
        for name in ("vm_update.lua", "vm_return.lua", "queue_task.lua", "preamble/vms.lua"):
            returns = re.findall(r"\breturn\s+(?:nil, )?(\S+)",
                                 code_of(LUA.joinpath(name).read_text()))
            self.assertTrue(returns)
            self.assertEqual([r for r in returns if r not in ("refused", "pool")
                              and r[2:] not in VmChange.__members__], [], name)

    def test_keys_py_names_every_family_for_lua(self) -> None:
        families = {name for name, value in vars(keys).items()
                    if (callable(value) and getattr(value, "__module__", "") == keys.__name__)
                    or (isinstance(value, str) and value.startswith(keys.PREFIX))}
        self.assertEqual(sorted(families - set(keys.LUA) - {"PREFIX"}), [])

    def test_a_builder_is_the_python_function(self) -> None:
        self.assertEqual(lua_builder("vm", keys.vm),
                         "function K.vm(host) return 'vmpooler__vm__' .. host end")
        self.assertEqual(lua_builder("CLONING", keys.CLONING), "K.CLONING = 'vmpooler__cloning'")

    def test_an_unknown_builder_is_refused_at_load(self) -> None:
        with self.assertRaises(KeyError):
            prelude("return K.nonesuch('x')")

    def test_the_run_out_filter_is_written_once(self) -> None:
        """The clones in flight are judged in preamble/clones.lua only."""
        judging = [name for name, source in lua_files().items()
                   if "HGETALL', K.CLONING" in code_of(source)]
        self.assertEqual(judging, ["lua/preamble/clones.lua"])


class DeclarationTests(SynchronousTestCase):
    """Note [Declared script arguments] in store/script_specs.py."""

    def test_no_script_indexes_argv(self) -> None:
        indexing = [name for name, source in lua_files().items()
                    if "ARGV[" in source or "KEYS[" in source]
        self.assertEqual(indexing, [], "name the argument in script_specs.py")

    def test_every_script_is_declared(self) -> None:
        scripts = {name[4:-4] for name in lua_files() if "/preamble/" not in name}
        self.assertEqual(sorted(scripts), sorted(SCRIPTS))

    def test_a_call_is_ordered_by_the_declaration(self) -> None:
        script = Script("s", keys=("k",), args=("a", "b"), tails=("c", "d"))
        self.assertEqual(script.arrange({"d": ["y", "z"], "b": 2, "c": ["x"], "a": 1, "k": "K"}),
                         (["K"], [1, 2, 1, "x", "y", "z"]))

    def test_a_missing_or_extra_name_is_refused(self) -> None:
        script = SCRIPTS["vm_return"]
        with self.assertRaises(TypeError):
            script.arrange({"host": "h"})
        with self.assertRaises(TypeError):
            script.arrange({"host": "h", "owner": "*", "pool": "p"})

    def test_optional_names_may_be_left_out(self) -> None:
        script = SCRIPTS["request_limit"]
        self.assertEqual(script.arrange({"counter": "c", "period": 60}), (["c"], [60]))

    def test_a_bad_declaration_is_refused(self) -> None:
        for bad in ({"args": ("end",)}, {"args": ("a", "a")}, {"args": ("on",)},
                    {"args": ("a", "b"), "optional": frozenset({"a"})},
                    {"args": ("a",), "numbers": frozenset({"b"})}):
            with self.assertRaises(ValueError, msg=str(bad)):
                Script("s", **bad)  # type: ignore[arg-type]


class RedisTests(TestCase):
    """What the prelude builds, run in Redis, against keys.py."""

    async def setUp(self) -> None:  # type: ignore[override]  # trial awaits it
        self.redis = await fresh_redis(self)

    async def run_lua(self, body: str, *args: Any) -> Any:
        source = prelude(body) + "\n" + body
        return await Scripts(self.redis, reactor)._call(
            self.redis.execute_command("EVAL", source, 0, *args))

    async def test_every_key_is_built_as_in_python(self) -> None:
        for name, value in keys.LUA.items():
            if isinstance(value, str):
                self.assertEqual(await self.run_lua(f"return K.{name}"), value, name)
                continue
            arity = value.__code__.co_argcount
            for arg in ARGS:
                args = (arg,) * arity
                calls = ", ".join(f"ARGV[{i + 1}]" for i in range(arity))
                self.assertEqual(await self.run_lua(f"return K.{name}({calls})", *args),
                                 value(*args), name)

    async def test_declared_arguments_are_locals(self) -> None:
        script = Script("s", keys=("k",), args=("a", "n"), tails=("c", "d"),
                        numbers=frozenset({"n"}))
        body = "return cjson.encode({k, a, n + 1, c, d})"
        keys_, args = script.arrange({"k": "K", "a": "x", "n": 41, "c": ["p", "q"], "d": []})
        for fenced, extra in ((False, []), (True, ["lease", "holder"])):
            source = prelude(body, fenced, script) + "\n" + body
            await self.redis.execute_command("SET", "lease", "holder")
            answer = await Scripts(self.redis, reactor)._call(self.redis.execute_command(
                "EVAL", source, len(keys_), *keys_, *extra, *args))
            self.assertEqual(json.loads(answer), ["K", "x", 42, ["p", "q"], {}])

    async def test_the_answers_are_the_enum(self) -> None:
        for answer in VmChange:
            self.assertEqual(await self.run_lua(f"return R.{answer.name}"), int(answer))
