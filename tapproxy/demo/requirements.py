"""What only the demo needs, checked before anything starts."""

from __future__ import annotations

import importlib.util
import shutil

__all__ = ["missing_requirements"]


def missing_requirements() -> str | None:
    """One line naming what is missing and how to get it (within 80 columns), or None."""
    modules = [name for m, name in (("grpc", "grpcio"), ("pytest", "pytest"))
               if importlib.util.find_spec(m) is None]
    node = shutil.which("node") is None
    if modules and node:
        return "the demo needs Node.js and pip install 'tapproxy[demo]'"
    if modules:
        return f"the demo needs {' and '.join(modules)}: pip install 'tapproxy[demo]'"
    if node:
        return "the demo needs node (Node.js) on PATH: apt-get install nodejs"
    return None
