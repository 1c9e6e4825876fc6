"""
How a file writes its sections, and which generation's layout it is.

vmpooler writes sections ``:pools:`` (PyYAML reads that as the string
``":pools"``, the last colon being YAML's own); plain ``pools:`` is read
too.  A file with ``:providers:`` is laid out as vmpooler 3.x lays it out,
and gets 3.x's defaults (:mod:`vmpoolerd.config.defaults`); any other is
the 2016 layout.
"""

from __future__ import annotations

from typing import Any, Mapping

THREE_X = "3.x"
LAYOUT_2016 = "2016"


def spellings(name: str) -> tuple[str, ...]:
    """Every way a file may write the section ``:name:``."""
    return (f":{name}", f":{name}:", name)


def spelling(data: Mapping[Any, Any], name: str) -> Any:
    """The key ``:name:`` is written with in ``data``; None if absent."""
    for key in spellings(name):
        if key in data:
            return key
    return None


def display(key: Any) -> str:
    """A key as the file writes it: ``":name"`` is ``:name:``."""
    text = str(key)
    return f"{text}:" if text.startswith(":") and not text.endswith(":") else text


def bare(key: Any) -> str:
    """A key without vmpooler's colons: ``":name"`` is ``name``."""
    return str(key).strip(":")


def layout(data: Mapping[Any, Any]) -> str:
    """Whose layout ``data`` is: 3.x's (it has ``:providers:``) or 2016's."""
    key = spelling(data, "providers")
    return THREE_X if key is not None and data[key] is not None else LAYOUT_2016
