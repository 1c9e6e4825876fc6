"""
The tree speaks of itself: no comment, docstring, test or doc points at
a document outside the repository (the project's own account of what it
is compatible with is docs/compatibility.rst).
"""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Spelt in pieces, so that this file does not match itself.
OUTSIDE = ("CON" + "TRACT", "../" + "shared", "NOTES" + "-")
TEXT = (".py", ".lua", ".rst", ".md", ".go", ".yaml", ".example", ".json", ".js", ".cfg")


def _files() -> list[str]:
    found = [os.path.join(ROOT, "README.rst"), os.path.join(ROOT, "Makefile")]
    for top in ("vmpoolerd", "tests", "bench", "docs", "etc", "twisted"):
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            found += [os.path.join(folder, name) for name in names if name.endswith(TEXT)]
    return found


class WordsTests(TestCase):
    def test_nothing_points_outside_the_repository(self) -> None:
        found = []
        for path in _files():
            with open(path, encoding="utf-8", errors="replace") as f:
                for number, line in enumerate(f, 1):
                    if any(word in line for word in OUTSIDE):
                        found.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
        self.assertEqual(found, [])
