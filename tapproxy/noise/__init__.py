"""The one noise model: which values and fields are volatile (ids, timestamps, nonces).

Pure functions of capture records, no I/O: baseline comparison, diff, replay matching
and contract drafting all mask with it.
"""

# Names load on first use (PEP 562): the recorder's live metrics need `path_template`
# alone, not the model (and the capture reader it brings) at every proxy's start-up.

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "NoiseModel": "model", "RouteKey": "model", "header_pointer": "model",
    "request_key": "model", "route_key": "model",
    "path_template": "paths",
    "PointerGlob": "pointers", "escape": "pointers", "parse_pointer_glob": "pointers",
    "unescape": "pointers", "walk": "pointers",
    "mask_text": "values", "value_kind": "values",
}

__all__ = [
    "NoiseModel",
    "PointerGlob",
    "RouteKey",
    "escape",
    "header_pointer",
    "mask_text",
    "parse_pointer_glob",
    "path_template",
    "request_key",
    "route_key",
    "unescape",
    "value_kind",
    "walk",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
