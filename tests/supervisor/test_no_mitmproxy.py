"""The supervisor side never imports mitmproxy (DESIGN.md): it must stay light enough
to run beside several recorder workers, and the process-lookup helper runs from it."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import tapproxy.supervisor

_PACKAGE = Path(tapproxy.supervisor.__file__).parent


def _modules() -> list[str]:
    return [f"tapproxy.supervisor.{m.name}" for m in pkgutil.iter_modules([str(_PACKAGE)])]


def test_importing_every_module_loads_no_mitmproxy():
    modules = _modules()
    assert len(modules) >= 10
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mitmproxy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_no_module_imports_mitmproxy_even_on_first_use():
    """Not even inside a function: what needs mitmproxy is the worker side's
    (tapproxy.proxy), which a supervisor module may only load when it runs a worker."""
    found = []
    for path in sorted(_PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}:{node.lineno} {n}" for n in names
                      if n.split(".")[0] == "mitmproxy"]
    assert found == []
