"""The one way quest-lab's registries are extended: a class decorator per registry and plugin discovery.

    LAWS: dict[str, type[Law]] = {}
    register_law = class_registrar(LAWS, "law")      # @register_law("quest") class QuestLaw(Law): ...
    import_plugins(__package__, lambda m: m.startswith("law_") and m != "law_base")

Used by laws (`analysis/law_base.py`), cost models (`analysis/cost.py`), questions (`analysis/questions.py`), executors
(`quest_lab/sweep/executors.py`) and trackers (`quest_lab/tracking.py`).  Imports nothing heavy.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)


def class_registrar(registry: dict[str, T], kind: str) -> Callable[[str], Callable[[T], T]]:
    """A decorator factory: `@register(name)` sets `cls.name = name` and adds the class to `registry`;
    a second, different class under the same name is a ValueError naming both."""

    def register(name: str) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            if name in registry and registry[name] is not cls:
                raise ValueError(f"{kind} {name!r} registered twice ({registry[name].__name__}, {cls.__name__})")
            cls.name = name
            registry[name] = cls
            return cls

        return deco

    return register


def import_plugins(package: str, keep: Callable[[str], bool]) -> None:
    """Import every module of `package` whose name `keep` accepts (each registers itself on import)."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if keep(info.name):
            importlib.import_module(f"{package}.{info.name}")
