"""One explicit registry per plug-in kind (algorithms, models, attacks, readers, densities).

A plain dict filled by explicit imports in each package's ``__init__``; no folder scanning.
The file name, the registry key and the CLI value are the same word, in snake_case
(``near_duplicate``, ``zero_knowledge``, ``cpu_small``): keys are also finding kinds and JSON
values. Two kinds name things that have their own spelling and keep it: densities are formulas
(``1.5-x``) and built-in datasets are named as the datasets are (``fashion-mnist``).
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from audit.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """``Registry("algorithm")``; ``reg.register("fixmatch", FixMatch)``; ``reg.get("fixmach")``
    raises ``Unknown algorithm 'fixmach'. Available: fixmatch, mixmatch, ...``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = item
        return item

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:attr"`` under ``name``, imported at its first :meth:`get`:
        listing the names (a CLI's ``--help``) then imports none of the plug-ins (nor torch)."""
        self.register(name, _Lazy(target))  # type: ignore[arg-type]

    def __call__(self, name: str):
        """Decorator form: ``@REGISTRY("fixmatch")``."""

        def deco(item: T) -> T:
            return self.register(name, item)

        return deco

    def get(self, name: str) -> T:
        try:
            item = self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"Unknown {self.kind} '{name}'. Available: {', '.join(self.names())}."
            ) from None
        if isinstance(item, _Lazy):
            item = self._items[name] = item.load()
        return item

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class _Lazy:
    def __init__(self, target: str) -> None:
        self.target = target

    def load(self):
        import importlib

        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)
