"""mitmproxy's built-in addons, imported one by one.

`import mitmproxy.addons.core` first runs `mitmproxy/addons/__init__.py`, which imports
all 31 built-in addons and with them flask and jinja2 (onboarding), ldap3 and bcrypt
(proxy auth), werkzeug (map local) and pyparsing (flow filters): a third of a second or
more of every proxy's start-up (`tapproxy record`, `pytest --tapproxy`), for addons
tapproxy does not run. Only the package's own module is set up without that code; the
first use of anything it defines (`default_addons`, by mitmdump or a user's script) runs
it then, so the package behaves as mitmproxy made it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["builtin_addon"]

_PACKAGE = "mitmproxy.addons"


def builtin_addon(name: str) -> ModuleType:
    """The module `mitmproxy.addons.<name>`, without importing the other addons."""
    if _PACKAGE not in sys.modules:
        _install_package()
    return importlib.import_module(f"{_PACKAGE}.{name}")


def _install_package() -> None:
    spec = importlib.util.find_spec(_PACKAGE)
    assert spec is not None and spec.loader is not None and spec.submodule_search_locations
    package = importlib.util.module_from_spec(spec)
    folder = Path(spec.submodule_search_locations[0])
    submodules: set[str] = set()

    def complete(attr: str):
        # `from mitmproxy.addons import core` asks for `core` first: a submodule not
        # imported yet must read as missing, so that the import system imports it.
        if not submodules:
            submodules.update(p.stem if p.suffix == ".py" else p.name
                              for p in folder.iterdir() if not p.name.startswith("_"))
        if attr in submodules or attr.startswith("__"):
            raise AttributeError(f"module {_PACKAGE!r} has no attribute {attr!r}")
        del package.__dict__["__getattr__"]
        spec.loader.exec_module(package)  # the package's own code, once
        return getattr(package, attr)

    package.__getattr__ = complete  # PEP 562: only for names not defined yet
    sys.modules[_PACKAGE] = package
    parent = sys.modules.get("mitmproxy")
    if parent is not None:  # as the import system does for a package it imported
        parent.addons = package
