"""Names of a package loaded on first use (PEP 562): a light import of the package (a
command that reads a capture, the pytest plugin's start-up) does not pay for the
modules behind the names it never asks for."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__all__ = ["lazy_names"]


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package`: name → the module it comes from (absolute,
    or relative to `package` when it starts with a dot)."""

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return __getattr__
