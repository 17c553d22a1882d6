"""One registry type for every extension point (gates, steps, targets, routers).

Each registry knows its built-ins as an explicit, ordered list of modules. Loading them is the
registry's job, done once and in that order, so the order of the entries (the order gates are
shown in `conveyor why` and on the dashboard) is the declared order, never the order in which
some module happened to be imported first. A plugin registers after the built-ins.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from conveyor.errors import InvalidInput

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, in the declared order of the built-ins, then plugins in registration order."""

    def __init__(self, what: str, builtins: tuple[str, ...]) -> None:
        self.what = what  # e.g. "gate": used in the error for an unknown name
        self.builtins = builtins  # module names, each registering its entries when imported
        self._entries: dict[str, T] = {}
        self._loaded = False
        self._loading = False

    def register(self, name: str, entry: T) -> T:
        self._entries[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        def register(entry: T) -> T:
            return self.register(name, entry)

        return register

    def load(self) -> None:
        """Import the built-in modules in the declared order, then order the entries so: the
        built-ins by their module's place in the list, then anything registered from elsewhere."""
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            owners: dict[str, int] = {}
            for position, module in enumerate(self.builtins):
                before = set(self._entries)
                importlib.import_module(module)
                for name in self._entries:
                    if name not in before:
                        owners[name] = position
            # a built-in module imported before load() registered then: find it by its module
            for name, entry in self._entries.items():
                module = getattr(entry, "__module__", None) or type(entry).__module__
                if name not in owners and module in self.builtins:
                    owners[name] = self.builtins.index(module)
            ordered = sorted(self._entries.items(), key=lambda kv: owners.get(kv[0], len(self.builtins)))
            self._entries = dict(ordered)
            self._loaded = True
        finally:
            self._loading = False

    def get(self, name: str) -> T:
        self.load()
        if name not in self._entries:
            raise InvalidInput(
                f"{self.what} {name!r} is not available", fix=f"use one of: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        self.load()
        return list(self._entries)

    def values(self) -> list[T]:
        self.load()
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load()
        return len(self._entries)
