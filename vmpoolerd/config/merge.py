"""
Merging an ``extra_config`` file into the main one, as vmpooler 3.x does
(its ``parsed_config.deep_merge(extra)``, deep_merge 1.2 without the bang):

- a mapping is merged key by key, recursively;
- two lists are joined: the main file's items, then the extra file's
  that are not already there (Ruby's ``Array#|``);
- where both set a value that cannot be merged (a string, a number, a
  list against a mapping ...), the main file's is kept;
- where the main file's value is null or false, the extra file's is taken
  (Ruby counts both as unset there).

Sections are matched in any spelling (``:config:`` and ``config:`` are one
section), the main file's spelling kept.
"""

from __future__ import annotations

from typing import Any, Mapping

from .layouts import bare


def deep_merge(main: Any, extra: Any) -> Any:
    """``extra`` merged into ``main``; neither is changed."""
    if extra is None:
        return main
    if main is None or main is False:
        return extra
    if isinstance(main, Mapping) and isinstance(extra, Mapping):
        return _merge_mappings(main, extra)
    if isinstance(main, list) and isinstance(extra, list):
        return main + [item for item in extra if item not in main]
    return main


def _merge_mappings(main: Mapping[Any, Any], extra: Mapping[Any, Any]) -> dict[Any, Any]:
    merged = dict(main)
    names = {bare(key): key for key in main}
    for key, value in extra.items():
        own = names.get(bare(key), key)
        merged[own] = deep_merge(merged.get(own), value)
    return merged
