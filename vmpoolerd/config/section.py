"""
A mapping of the configuration with its key path, so that every error
names the key, and every key nobody asked for is reported by its path.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .layouts import display, spelling
from .records import ConfigError

Check = Callable[[str, Any], Any]


class Notes:
    """
    What one parse has to say besides errors: its sections' unknown keys,
    its warnings and notices, and where the environment set a key
    (``origins``: (section path, key) -> ``$NAME``), so that an error names
    the variable.
    """

    def __init__(self, origins: Mapping[tuple[str, str], str] | None = None) -> None:
        self.sections: list[Section] = []
        self.warnings: list[str] = []
        self.notices: list[str] = []
        self.origins = dict(origins or {})

    def all_warnings(self) -> tuple[str, ...]:
        return tuple(self.warnings) + tuple(
            f"{s.where(display(key))}: unknown key, ignored"
            for s in self.sections for key in s.data if key not in s.seen)


class Section:
    """
    A mapping with its key path; the keys asked for are remembered, so that
    the others can be reported unknown.
    """

    def __init__(self, path: str, data: Any, notes: Notes) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: must be a mapping")
        self.path = path
        self.data = data
        self.notes = notes
        self.seen: set[Any] = set()
        notes.sections.append(self)

    def where(self, key: str) -> str:
        """The key's path; and the variable that set it, if one did."""
        path = f"{self.path}.{key}" if self.path else key
        origin = self.notes.origins.get((self.path, key))
        return f"{path} (from {origin})" if origin else path

    def known(self, *keys: Any) -> None:
        """Count ``keys`` as read (they are, elsewhere)."""
        self.seen.update(keys)

    def not_served(self, why: str, *keys: str) -> None:
        """Count ``keys`` as read, and warn of each one set: vmpoolerd does not serve it."""
        for key in keys:
            if self.has(key):
                self.notes.warnings.append(f"{self.where(key)}: {why}")

    def has(self, key: str) -> bool:
        self.seen.add(key)
        return self.data.get(key) is not None

    def require(self, *keys: str) -> None:
        for key in keys:
            if not self.has(key):
                raise ConfigError(f"{self.where(key)}: is required")

    def read(self, check: Check, key: str) -> Any:
        """The value of ``key`` (set), checked."""
        self.seen.add(key)
        return check(self.where(key), self.data[key])

    def fields(self, readers: Mapping[str, tuple[str, Check]]) -> dict[str, Any]:
        """
        The fields of a config class whose keys are set here, read and
        checked (``readers``: field name -> YAML key and check).  Absent
        keys are left out, so that the defaults apply.
        """
        return {name: self.read(check, key) for name, (key, check) in readers.items()
                if self.has(key)}

    def present(self, name: str) -> bool:
        """Whether the ``:name:`` sub-section is set."""
        key = spelling(self.data, name)
        return key is not None and self.data[key] is not None

    def sub(self, name: str) -> Section:
        """The ``:name:`` sub-section (empty if absent), in any spelling."""
        key = spelling(self.data, name)
        if key is not None:
            self.seen.add(key)
        return self.nested(self.where(f":{name}:"), self.data.get(key))

    def child(self, key: str) -> Section:
        """The mapping under ``key``, whose own keys may be written ``:name:`` or ``name``."""
        value = self.data[key]
        self.seen.add(key)
        if isinstance(value, Mapping):
            value = {str(k).strip(":"): v for k, v in value.items()}
        return self.nested(self.where(display(key)), value)

    def nested(self, path: str, data: Any) -> Section:
        return Section(path, data, self.notes)
